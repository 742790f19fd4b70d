"""`dualnova`: the entry point; each subcommand lives in its own module.

A subcommand module offers add_parser(subparsers), which registers its
arguments and sets `run` (args -> exit status) as the parser's default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dualnova.cli import chat, health, repl, up

COMMANDS = (chat, health, up, repl)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dualnova",
        description="Nova Micro and Nova Pro side by side, through the DualNova gateway.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the subcommand; returns the exit status (2: usage)."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
