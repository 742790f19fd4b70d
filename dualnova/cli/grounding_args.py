"""`--ground`, `--knowledge-base ID` and their options: the DualChat's grounding, from the flags.

`--ground` retrieves from the server's default knowledge base (the inference
service's DUALNOVA_KNOWLEDGE_BASE_ID); `--knowledge-base ID` names one. The
other flags shape that Retrieve and go with one of the two. Each is checked
here by the services' own rule (validate_grounding), so a bad value is a
usage error naming the flag before anything is sent.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

from dualnova.chat.v1 import chat_pb2
from dualnova.routes import ROUTES
from dualnova.server.content_rules import InvalidRequest
from dualnova.server.conversation import MAX_RESULTS, validate_grounding
from dualnova.server.settings import ConfigError

__all__ = ["SEARCH_TYPES", "GroundingChoice", "add_grounding_arguments", "grounding_choice"]

SEARCH_TYPES = {"hybrid": chat_pb2.SEARCH_TYPE_HYBRID, "semantic": chat_pb2.SEARCH_TYPE_SEMANTIC}
# validate_grounding's field names, as the flags that set them.
_FLAGS = {
    "grounding.knowledge_base_id": "--knowledge-base",
    "grounding.number_of_results": "--results",
    "grounding.search_type": "--search",
    "grounding.filter_json": "--filter",
}


@dataclass(frozen=True)
class GroundingChoice:
    """The request's grounding, and the routes that answer without it."""

    grounding: chat_pb2.Grounding
    skip: frozenset[str] = frozenset()


def add_grounding_arguments(parser: argparse.ArgumentParser) -> None:
    """The grounding flags `dualnova chat` and `dualnova repl` share."""
    group = parser.add_argument_group(
        "grounding", "answer from passages of a Bedrock Knowledge Base (one Retrieve per question)"
    )
    which = group.add_mutually_exclusive_group()
    which.add_argument("--knowledge-base", metavar="ID", help="retrieve from the knowledge base ID")
    which.add_argument(
        "--ground",
        action="store_true",
        help="retrieve from the server's default knowledge base (DUALNOVA_KNOWLEDGE_BASE_ID)",
    )
    # The Retrieve's shape; each goes with one of the two above.
    shaping: dict[str, dict[str, Any]] = {
        "--results": {
            "metavar": "N",
            "help": f"passages to retrieve, 1 to {MAX_RESULTS} (default 5)",
        },
        "--search": {
            "choices": tuple(SEARCH_TYPES),
            "help": "hybrid or semantic search (default: the knowledge base's own)",
        },
        "--filter": {
            "metavar": "JSON",
            "help": "Retrieve's metadata filter as a JSON object, e.g."
            ' \'{"equals": {"key": "lang", "value": "ko"}}\'',
        },
    }
    for flag, options in shaping.items():
        group.add_argument(flag, **options)
    for route in ROUTES:
        group.add_argument(
            f"--{route}-no-grounding",
            action="store_true",
            help=f"{route} answers the plain question, without the passages",
        )


def grounding_choice(args: argparse.Namespace) -> GroundingChoice | None:
    """The grounding the flags ask for (None without --ground or --knowledge-base).

    ConfigError naming the flag for a bad value, or an option given without either.
    """
    skip = frozenset(route for route in ROUTES if getattr(args, f"{route}_no_grounding"))
    if not args.ground and args.knowledge_base is None:
        given = [
            flag
            for flag, value in (
                ("--results", args.results),
                ("--search", args.search),
                ("--filter", args.filter),
                *((f"--{route}-no-grounding", route in skip) for route in ROUTES),
            )
            if value
        ]
        if given:
            raise ConfigError(f"{given[0]} goes with --ground or --knowledge-base ID")
        return None
    if skip == frozenset(ROUTES):
        raise ConfigError(
            "--micro-no-grounding and --pro-no-grounding together leave nothing grounded;"
            " drop --ground / --knowledge-base instead"
        )
    grounding = chat_pb2.Grounding(
        knowledge_base_id="" if args.ground else args.knowledge_base,
        number_of_results=_results(args.results),
        search_type=SEARCH_TYPES[args.search] if args.search else chat_pb2.SEARCH_TYPE_UNSPECIFIED,
        filter_json=_filter(args.filter),
    )
    if args.knowledge_base is not None and not args.knowledge_base:
        raise ConfigError("--knowledge-base must not be empty (--ground uses the server's default)")
    try:
        validate_grounding(grounding)
    except InvalidRequest as error:
        raise ConfigError(f"{_FLAGS.get(error.field, error.field)} {error.reason}") from None
    return GroundingChoice(grounding, skip)


def _results(value: str | None) -> int:
    if value is None:
        return 0
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"--results expects a whole number, got {value!r}") from None
    if not 1 <= number <= MAX_RESULTS:
        raise ConfigError(f"--results must be between 1 and {MAX_RESULTS}, got {number}")
    return number


def _filter(value: str | None) -> str:
    if value is None:
        return ""
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise ConfigError(f"--filter is not JSON: {error}") from None
    if not isinstance(parsed, dict) or not parsed:
        raise ConfigError('--filter must be a JSON object such as {"equals": {...}}')
    return json.dumps(parsed, ensure_ascii=False, separators=(",", ":"))
