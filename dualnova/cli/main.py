"""`dualnova`: the entry point; each subcommand lives in its own module.

A subcommand module offers add_parser(subparsers), which registers its
arguments and sets `run` (args -> exit status) as the parser's default.
`--version` is added here, to the top level and to every subcommand alike.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from dualnova.cli import chat, health, repl, up

COMMANDS = (chat, health, up, repl)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dualnova",
        description="Nova Micro and Nova Pro side by side, through the DualNova gateway.",
    )
    add_version(parser)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    for subparser in subparsers.choices.values():
        add_version(subparser)
    return parser


def version() -> str:
    """The installed distribution's version (pyproject's), as `dualnova --version` prints it."""
    try:
        return metadata.version("dualnova")
    except metadata.PackageNotFoundError:
        # Run from a source tree that was never installed (`pip install -e .` records it).
        return "unknown (not installed)"


def add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version", action="version", version=f"dualnova {version()}", help="print the version"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the subcommand; returns the exit status (2: usage)."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
