"""Deterministic answers and token counts: what the emulated model "says".

Pure functions, so tests compute the exact text and usage they must receive
(`compose_answer(model_id, request)`) instead of guessing.

Rules (other test suites rely on them; change them only with their owners):

- Token count of a text: `count_tokens(text)` = number of matches of
  `\\w+|[^\\w\\s]`, i.e. each run of letters/digits (Hangul included) is one
  token and every other non-space character (punctuation, each emoji) is one.
- Input tokens: sum of count_tokens over every `text` block of `system` and of
  every message (both roles).
- Prompt caching: the cacheable prefix is every text block (system first, then
  messages in order) before the last `cachePoint` block. Its tokens leave
  `inputTokens` and become `cacheWriteInputTokens` the first time (model,
  prefix) is seen and `cacheReadInputTokens` after that. The caller owns the
  cache state and passes `cache_hit`; `cache_key()` names the entry. Bedrock's
  minimum cacheable size is not emulated.
- Answer text: `질문: "<question>" — ` followed by Korean sentences and " 🚀".
  The question is the last user message's text blocks joined by spaces,
  whitespace collapsed, cut to 20 words (+ " …"). Micro adds three short
  sentences, Lite five, Pro (and Premier) eight, about three times Micro's
  length. Sentences are picked by a SHA-256 of the question, so different
  questions give different answers and the same question always the same one.
- Pieces: the text split as `\\S+\\s*` (a word with its trailing space); one
  piece is one contentBlockDelta and one output token.
- Stop sequences cut the text before the earliest occurrence of any of them
  (stop reason "stop_sequence"); then more than maxTokens pieces are cut to
  maxTokens ("max_tokens"); otherwise "end_turn".
- totalTokens = input + output + cacheRead + cacheWrite (as Bedrock reports).
- Guard-content text counts as text (input tokens, the question), and so
  do a toolUse's input and a toolResult's text and JSON (input tokens; JSON
  serialized compactly).
- Which answer (first that applies): the guardrail intervenes (guardrails.py:
  BLOCKED_TEXT, "guardrail_intervened"); the last user turn holds tool
  results (tools.result_text, "end_turn"); the model calls a tool
  (tools.plan_call: block 0 "I will call {name}.", block 1 the toolUse whose
  input fragments are one output token each, block 2 EXPLAIN_TEXT if asked,
  "tool_use"); else the text above, after one sentence per image, document or
  video of the last user turn (content.describe); when that turn holds
  "[S<n>] " source blocks, the grounded answer (grounding.grounded_text)
  replaces the Korean text. Stop sequences and maxTokens apply to the text
  answers, not to a tool call or a block.
- Citation: a text answer to a turn with a document asking for citations
  carries grounding.citation (ConverseStream sends it after the first delta).
- The metadata also reports the guardrail trace (guardrails.trace) and the
  options the call ran with (options.applied).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bedrock_emulator import catalog, content, grounding, guardrails, options, tools
from bedrock_emulator.tools import ToolCall

ENDING = "🚀"
_TOKEN = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\S+\s*")
_ECHO_WORDS = 20

_OPENERS = (
    "핵심만 말하면, 작게 시작해서 자주 확인하는 것이 좋습니다.",
    "요점은 간단합니다: 먼저 측정하고 그다음에 고치세요.",
    "한 줄로 정리하면, 단순한 방법이 대개 이깁니다.",
    "결론부터 말하면, 충분히 해볼 만한 일입니다.",
)
_CLOSERS = (
    "더 자세한 내용은 Pro 모델에게 물어보세요.",
    "필요하면 이어서 질문해 주세요.",
    "도움이 되었길 바랍니다.",
    "빠른 답이 필요할 때 Micro가 있습니다.",
)
_POINTS = (
    "목표와 제약 조건을 분명히 적어 두면 선택지가 줄어듭니다.",
    "가장 작은 실험으로 가정을 검증하고 결과를 기록하세요.",
    "실패했을 때 되돌릴 방법을 미리 준비해 두는 것이 중요합니다.",
    "숫자로 확인할 수 있는 기준을 정하면 논쟁이 짧아집니다.",
    "자주 쓰는 경로부터 자동화하면 효과가 가장 큽니다.",
    "다른 사람이 읽을 수 있도록 결정의 이유를 남겨 두세요.",
)
_ORDINALS = ("첫째,", "둘째,", "셋째,")
_EXAMPLES = (
    "예를 들어, 하루에 한 번 결과를 비교하는 작은 대시보드만으로도 흐름이 보입니다.",
    "예를 들어, 요청 열 개로 먼저 시험해 보면 큰 비용 없이 문제를 찾을 수 있습니다.",
    "예를 들어, 같은 질문을 두 모델에 보내 답을 나란히 놓고 보면 차이가 분명해집니다.",
    "예를 들어, 로그에 요청 ID를 남기면 나중에 원인을 훨씬 빨리 찾습니다.",
)
_CAVEATS = (
    "주의할 점도 있습니다: 지연 시간과 비용은 함께 움직이므로 둘 다 지켜봐야 합니다.",
    "주의할 점도 있습니다: 재시도는 문제를 숨길 수 있으니 횟수를 기록하세요.",
    "주의할 점도 있습니다: 캐시는 빠르지만 오래된 답을 줄 수 있습니다.",
    "주의할 점도 있습니다: 한 번의 측정만으로 결론을 내리지 마세요.",
)
_SUMMARIES = (
    "요약하면, 작게 시작하고 측정하며 천천히 넓혀 가면 됩니다.",
    "요약하면, 분명한 기준과 빠른 피드백이 가장 좋은 도구입니다.",
    "요약하면, 단순하게 만들고 관찰할 수 있게 만드세요.",
    "요약하면, 오늘 할 수 있는 가장 작은 한 걸음부터 시작하세요.",
)


@dataclass(frozen=True)
class TextBlock:
    """A text content block: its pieces are its deltas."""

    pieces: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass(frozen=True)
class ToolUseBlock:
    """A toolUse content block: a contentBlockStart, then its input in fragments."""

    call: ToolCall


Block = TextBlock | ToolUseBlock


@dataclass(frozen=True)
class Answer:
    """One response: its content blocks, in order, and the usage Bedrock would report."""

    blocks: tuple[Block, ...]
    stop_reason: str
    input_tokens: int
    output_tokens: int
    cache_read: int
    cache_write: int
    # The metadata's trace.guardrail, when the request asked for a trace.
    guardrail_trace: dict[str, Any] | None = None
    # performanceConfig / serviceTier as the metadata reports them.
    applied: dict[str, Any] = field(default_factory=dict)
    # The contentBlockDelta `citation` sent after the first text delta (grounding.citation).
    citation: dict[str, Any] | None = None

    @property
    def pieces(self) -> tuple[str, ...]:
        """Every text delta, across the text blocks."""
        return tuple(p for b in self.blocks if isinstance(b, TextBlock) for p in b.pieces)

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(b.call for b in self.blocks if isinstance(b, ToolUseBlock))

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read + self.cache_write

    def usage(self) -> dict[str, int]:
        """The `usage` object of the metadata event / Converse response."""
        usage = {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.total_tokens,
        }
        if self.cache_read or self.cache_write:
            usage["cacheReadInputTokens"] = self.cache_read
            usage["cacheWriteInputTokens"] = self.cache_write
        return usage

    def reported(self) -> dict[str, Any]:
        """What the metadata event (and Converse response) carries beyond usage and metrics."""
        extra: dict[str, Any] = dict(self.applied)
        if self.guardrail_trace is not None:
            extra["trace"] = {"guardrail": self.guardrail_trace}
        return extra

    def content(self) -> list[dict[str, Any]]:
        """The Converse response's message content."""
        return [
            {"text": b.text}
            if isinstance(b, TextBlock)
            else {
                "toolUse": {
                    "toolUseId": b.call.tool_use_id,
                    "name": b.call.name,
                    "input": b.call.input,
                }
            }
            for b in self.blocks
        ]


def count_tokens(text: str) -> int:
    """The emulator's token count of one text (see the module rules)."""
    return len(_TOKEN.findall(text))


def split_pieces(text: str) -> tuple[str, ...]:
    """The deltas of a text (which never starts with a space); they join back to the text."""
    return tuple(_PIECE.findall(text))


def last_user_text(request: Mapping[str, Any]) -> str:
    """The text (and guard-content text) blocks of the last user message, joined by spaces."""
    for message in reversed(request.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            texts = (_block_text(b) for b in message.get("content") or [] if isinstance(b, Mapping))
            return " ".join(text for text in texts if text is not None)
    return ""


def _block_text(block: Mapping[str, Any]) -> str | None:
    """A block's text as the model reads it: a text block's, or a guard-content block's."""
    if isinstance(block.get("text"), str):
        return str(block["text"])
    guard = block.get("guardContent")
    if isinstance(guard, Mapping) and isinstance(guard.get("text"), Mapping):
        text = guard["text"].get("text")
        return text if isinstance(text, str) else None
    return None


def cache_key(model_id: str, request: Mapping[str, Any]) -> str | None:
    """The prompt-cache entry this request writes or reads, or None if it caches nothing."""
    prefix = _cacheable_prefix(request)
    if not prefix or sum(count_tokens(text) for text in prefix) == 0:
        return None
    material = json.dumps([_family_model(model_id).model_id, prefix], ensure_ascii=False)
    return hashlib.sha256(material.encode()).hexdigest()


def compose_answer(
    model_id: str,
    request: Mapping[str, Any],
    *,
    cache_hit: bool = False,
    raw_body: bytes | None = None,
) -> Answer:
    """The answer `model_id` gives to a (valid) Converse request.

    `cache_hit` says whether the request's cacheable prefix is already in the
    prompt cache; it only moves tokens between input, cache read and cache write.
    `raw_body` is the body as received (it names a tool call); without it, the
    bytes boto3 sends for `request` (json.dumps of it, as in the request log).
    """
    spec = _family_model(model_id)
    user_text = last_user_text(request)
    intervened = guardrails.intervenes(request, user_text)
    blocks, stop_reason = _answer_blocks(
        spec.family, request, user_text, intervened, raw_body or json.dumps(request).encode()
    )
    texts = _all_texts(request)
    total_input = sum(count_tokens(text) for text in texts)
    cacheable = sum(count_tokens(text) for text in _cacheable_prefix(request))
    output = sum(
        len(b.pieces) if isinstance(b, TextBlock) else len(b.call.fragments()) for b in blocks
    )
    cites = not intervened and all(isinstance(b, TextBlock) for b in blocks) and output > 0
    return Answer(
        blocks=blocks,
        stop_reason=stop_reason,
        input_tokens=total_input - cacheable,
        output_tokens=output,
        cache_read=cacheable if cache_hit else 0,
        cache_write=0 if cache_hit else cacheable,
        guardrail_trace=guardrails.trace(request, intervened),
        applied=options.applied(request),
        citation=grounding.citation(_last_user_blocks(request)) if cites else None,
    )


def _answer_blocks(
    family: str, request: Mapping[str, Any], user_text: str, intervened: bool, raw_body: bytes
) -> tuple[tuple[Block, ...], str]:
    if intervened:
        return (TextBlock(split_pieces(guardrails.BLOCKED_TEXT)),), "guardrail_intervened"
    inference_config = request.get("inferenceConfig") or {}
    result = tools.result_text(request)
    if result is not None:
        pieces, stop_reason = _apply_stops(split_pieces(result), inference_config)
        return (TextBlock(pieces),), stop_reason
    call = tools.plan_call(request, user_text, raw_body)
    if call is not None:
        blocks: list[Block] = [
            TextBlock(split_pieces(f"I will call {call.name}.")),
            ToolUseBlock(call),
        ]
        if call.explain:
            blocks.append(TextBlock(split_pieces(tools.EXPLAIN_TEXT)))
        return tuple(blocks), "tool_use"
    turn = _last_user_blocks(request)
    seen = content.describe(turn)
    grounded = grounding.grounded_text(family, turn)
    main = grounded if grounded is not None else _full_text(family, _normalise(user_text))
    text = " ".join([*seen, main])
    pieces, stop_reason = _apply_stops(split_pieces(text), inference_config)
    return (TextBlock(pieces),), stop_reason


def _last_user_blocks(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    for message in reversed(request.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return [b for b in message.get("content") or [] if isinstance(b, Mapping)]
    return []


def _family_model(model_id: str) -> catalog.ModelSpec:
    spec = catalog.resolve(model_id)
    if spec is None:
        raise ValueError(f"unknown model id {model_id!r}")
    return spec


def _normalise(question: str) -> str:
    words = question.split()
    if len(words) > _ECHO_WORDS:
        return " ".join(words[:_ECHO_WORDS]) + " …"
    return " ".join(words)


def _pick(bank: Sequence[str], digest: bytes, index: int) -> str:
    return bank[digest[index] % len(bank)]


def _full_text(family: str, question: str) -> str:
    digest = hashlib.sha256(question.encode()).digest()
    head = f'질문: "{question}" —' if question else "질문을 받았습니다 —"
    if family == "micro":
        body = [
            "짧게 답할게요.",
            _pick(_OPENERS, digest, 0),
            _pick(_CLOSERS, digest, 1),
        ]
    elif family == "lite":
        start = digest[2] % len(_POINTS)
        body = [
            "간단히 정리해 드릴게요.",
            _pick(_OPENERS, digest, 0),
            *_points(start, 2),
            _pick(_SUMMARIES, digest, 5),
        ]
    else:  # pro, premier: the detailed answer
        start = digest[2] % len(_POINTS)
        body = [
            "자세히 설명드리겠습니다.",
            _pick(_OPENERS, digest, 0),
            *_points(start, 3),
            _pick(_EXAMPLES, digest, 3),
            _pick(_CAVEATS, digest, 4),
            _pick(_SUMMARIES, digest, 5),
        ]
    return " ".join([head, *body, ENDING])


def _points(start: int, count: int) -> list[str]:
    return [f"{_ORDINALS[i]} {_POINTS[(start + i) % len(_POINTS)]}" for i in range(count)]


def _apply_stops(
    pieces: tuple[str, ...], inference_config: Mapping[str, Any]
) -> tuple[tuple[str, ...], str]:
    text = "".join(pieces)
    stop_reason = "end_turn"
    cuts = [text.find(seq) for seq in inference_config.get("stopSequences") or [] if seq]
    cuts = [cut for cut in cuts if cut >= 0]
    if cuts:
        pieces = _cut_at(pieces, min(cuts))
        stop_reason = "stop_sequence"
    max_tokens = inference_config.get("maxTokens")
    if isinstance(max_tokens, int) and len(pieces) > max_tokens:
        pieces = pieces[:max_tokens]
        stop_reason = "max_tokens"
    return pieces, stop_reason


def _cut_at(pieces: tuple[str, ...], position: int) -> tuple[str, ...]:
    kept: list[str] = []
    offset = 0
    for piece in pieces:
        if offset + len(piece) <= position:
            kept.append(piece)
            offset += len(piece)
            continue
        if position > offset:
            kept.append(piece[: position - offset])
        break
    return tuple(kept)


def _blocks(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """System blocks then every message's content blocks, in order."""
    blocks = [b for b in request.get("system") or [] if isinstance(b, Mapping)]
    for message in request.get("messages") or []:
        if isinstance(message, Mapping):
            blocks.extend(b for b in message.get("content") or [] if isinstance(b, Mapping))
    return blocks


def _all_texts(request: Mapping[str, Any]) -> list[str]:
    """Every text the model reads as input, tool inputs and tool results included."""
    texts = []
    for block in _blocks(request):
        text = _block_text(block)
        if text is not None:
            texts.append(text)
        use = block.get("toolUse")
        if isinstance(use, Mapping):
            texts.append(_compact(use.get("input")))
        result = block.get("toolResult")
        if isinstance(result, Mapping):
            for item in result.get("content") or []:
                if isinstance(item, Mapping) and isinstance(item.get("text"), str):
                    texts.append(item["text"])
                elif isinstance(item, Mapping) and "json" in item:
                    texts.append(_compact(item["json"]))
    return texts


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _cacheable_prefix(request: Mapping[str, Any]) -> list[str]:
    blocks = _blocks(request)
    points = [i for i, b in enumerate(blocks) if "cachePoint" in b]
    if not points:
        return []
    return [b["text"] for b in blocks[: points[-1]] if isinstance(b.get("text"), str)]
