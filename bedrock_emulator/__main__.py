"""`python -m bedrock_emulator --host 127.0.0.1 --port N [--pace F]`."""

from __future__ import annotations

import argparse
import sys

from bedrock_emulator.server import serve
from dualnova.server import logs


def _pace(value: str) -> float:
    try:
        pace = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not pace >= 0 or pace == float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return pace


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bedrock_emulator",
        description="A local Amazon Bedrock (runtime and control plane) for offline use.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8787, help="TCP port (default 8787)")
    parser.add_argument(
        "--pace",
        type=_pace,
        default=1.0,
        help="multiplies every model's streaming delays; 0 streams at once (default 1.0)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logs.setup("bedrock_emulator")
    serve(args.host, args.port, args.pace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
