"""The conversation `dualnova repl` holds: its turns, which answer continues, and the JSON of it.

Every turn keeps both routes' answers; the history sent on the next turn is
derived from the turns, never stored beside them, so `/continue` (which
re-decides the last turn) and `/save` cannot disagree about what was said.

Which answer continues a turn (`continued_with`):
- "micro" or "pro": that answer is the assistant turn both routes see next;
- "both": each route sees its own answer (the pro route's history travels in
  DualChatRequest.pro.messages, the RouteOverride's per-route conversation);
- None: neither route answered, so the turn is not part of the history.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dualnova.chat.v1 import chat_pb2
from dualnova.cli.render import ORDERINGS
from dualnova.gateway.v1 import gateway_pb2
from dualnova.routes import ROUTES

__all__ = [
    "BOTH",
    "CONTINUE_CHOICES",
    "Conversation",
    "RouteAnswer",
    "Turn",
    "cost_usd",
    "usage_dict",
]

BOTH = "both"
CONTINUE_CHOICES: tuple[str, ...] = (*ROUTES, BOTH)
TRANSCRIPT_FORMAT = "dualnova.repl.transcript.v1"


@dataclass
class RouteAnswer:
    """What one route said in one turn."""

    model_id: str = ""
    text: str = ""
    stop_reason: str = ""
    error_code: str = ""
    error_message: str = ""
    usage: chat_pb2.Usage | None = None
    time_to_first_token_ms: float | None = None
    latency_ms: float | None = None
    # The person stopped the route mid-answer (its text is the part that came).
    stopped: bool = False
    cost: chat_pb2.Cost | None = None

    @property
    def answered(self) -> bool:
        """A finished answer with text: the only kind that can be an assistant turn.

        A stopped route's partial text never is (it has no stop reason): the other
        route's answer continues, as when a route fails.
        """
        return bool(self.stop_reason) and not self.error_code and bool(self.text.strip())

    def to_json(self) -> dict[str, Any]:
        error = (
            {"code": self.error_code, "message": self.error_message} if self.error_code else None
        )
        return {
            "model_id": self.model_id,
            "text": self.text,
            "stop_reason": self.stop_reason or None,
            "error": error,
            "usage": usage_dict(self.usage),
            "time_to_first_token_ms": self.time_to_first_token_ms,
            "latency_ms": self.latency_ms,
            "stopped": self.stopped,
            "estimated_cost_usd": cost_usd(self.cost),
        }


@dataclass
class Turn:
    """One question and both routes' answers to it."""

    question: str
    system: list[str]
    ordering: str
    started_at: datetime
    elapsed_ms: float
    routes: dict[str, RouteAnswer]
    total_usage: chat_pb2.Usage | None = None
    total_cost: chat_pb2.Cost | None = None
    trace_id: str = ""
    continued_with: str | None = None

    def answer_for(self, route: str) -> str | None:
        """The assistant text `route` sees for this turn in its history, or None if excluded."""
        chosen = self.continued_with
        if chosen is None:
            return None
        # "both" is only ever chosen for a turn both routes answered.
        return self.routes[route if chosen == BOTH else chosen].text

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "system": list(self.system),
            "ordering": self.ordering,
            "started_at": self.started_at.isoformat(),
            "elapsed_ms": round(self.elapsed_ms, 3),
            "trace_id": self.trace_id,
            "continued_with": self.continued_with,
            "routes": {name: answer.to_json() for name, answer in self.routes.items()},
            "total_usage": usage_dict(self.total_usage),
            "total_estimated_cost_usd": cost_usd(self.total_cost),
        }


def resolve_continuation(preference: str, routes: dict[str, RouteAnswer]) -> str | None:
    """Which answer continues a turn, given the person's choice and which routes answered.

    The chosen route when it answered; otherwise whichever did (so one route's
    failure never drops the turn); None when neither answered.
    """
    answered = [name for name in ROUTES if routes[name].answered]
    if not answered:
        return None
    if preference == BOTH:
        return BOTH if len(answered) == len(ROUTES) else answered[0]
    return preference if preference in answered else answered[0]


@dataclass
class Conversation:
    """The turns so far and the person's standing choices (system prompt, ordering, route)."""

    system: list[str] = field(default_factory=list)
    ordering: str = "interleaved"
    continue_with: str = ROUTES[0]
    turns: list[Turn] = field(default_factory=list)

    def history(self, route: str) -> list[chat_pb2.Message]:
        """The conversation `route` has had so far, oldest first, user and assistant alternating."""
        messages = []
        for turn in self.turns:
            answer = turn.answer_for(route)
            if answer is None:
                continue
            messages.append(chat_pb2.Message(role=chat_pb2.ROLE_USER, text=turn.question))
            messages.append(chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, text=answer))
        return messages

    def request(self, question: str) -> gateway_pb2.DualChatRequest:
        """The DualChatRequest for the next question: the history, then the question.

        Both routes share `messages` while their histories agree; a route whose
        history differs (after `/continue both`) gets its own in its override.
        """
        asked = chat_pb2.Message(role=chat_pb2.ROLE_USER, text=question)
        per_route = {route: [*self.history(route), asked] for route in ROUTES}
        shared = per_route[ROUTES[0]]
        request = gateway_pb2.DualChatRequest(
            messages=shared, system=list(self.system), ordering=ORDERINGS[self.ordering]
        )
        for route, messages in per_route.items():
            if messages != shared:
                getattr(request, route).messages.extend(messages)
        return request

    def add(self, turn: Turn) -> None:
        """Record a finished turn; which answer continues it follows the standing choice."""
        turn.continued_with = resolve_continuation(self.continue_with, turn.routes)
        self.turns.append(turn)

    def choose(self, choice: str) -> str | None:
        """Make `choice` the standing choice, and re-decide the last turn by it.

        Returns what the last turn now continues with (None if there is no
        turn yet or it had no answer).
        """
        self.continue_with = choice
        if not self.turns:
            return None
        last = self.turns[-1]
        last.continued_with = resolve_continuation(choice, last.routes)
        return last.continued_with

    def clear(self) -> None:
        """Forget every turn; the system prompt, ordering and route choice stay."""
        self.turns.clear()

    def to_json(self, gateway: str) -> dict[str, Any]:
        return {
            "format": TRANSCRIPT_FORMAT,
            "gateway": gateway,
            "saved_at": datetime.now(UTC).isoformat(),
            "system": list(self.system),
            "ordering": self.ordering,
            "continue_with": self.continue_with,
            "turns": [turn.to_json() for turn in self.turns],
        }

    def save(self, path: Path, gateway: str) -> None:
        """Write the transcript to `path` whole or not at all: a failure leaves a file as it was.

        The file is its owner's alone (mode 0600, as mkstemp makes it): it holds the conversation.
        """
        text = json.dumps(self.to_json(gateway), ensure_ascii=False, indent=2) + "\n"
        directory = path.parent
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def cost_usd(cost: chat_pb2.Cost | None) -> float | None:
    """An estimated cost as the transcript writes it: US dollars (None when there was none)."""
    return None if cost is None else cost.total_usd


def usage_dict(usage: chat_pb2.Usage | None) -> dict[str, int] | None:
    """Usage as the transcript writes it (every count, zeros included)."""
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_write_input_tokens": usage.cache_write_input_tokens,
    }
