"""`make demo`: the whole pair on the emulator, one DualChat, then stop.

Starts the emulator, the inference service and the gateway on free loopback
ports (the launcher `dualnova up` and the tests use), asks one question and
shows it exactly as `dualnova chat` does, then stops all three. Exit 0 when
both routes answered and every process stopped cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from dualnova.cli.render import run_chat
from dualnova.dev.stack import Stack, StackError

SAMPLE_QUESTION = "Amazon Bedrock의 Nova Micro와 Nova Pro는 어떻게 다른가요? 🤔"
# Fast enough for a demo, slow enough to watch both answers stream.
DEMO_PACE = 0.3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dualnova.dev.demo", description=__doc__)
    parser.add_argument("question", nargs="?", default=SAMPLE_QUESTION)
    parser.add_argument("--pace", type=float, default=DEMO_PACE)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="dualnova-demo-") as logs:
        # Children in their own process groups, as under `dualnova up`: a Ctrl-C reaches the
        # demo alone, which then stops each child once (no SIGTERM racing a SIGINT shutdown).
        stack = Stack(pace=args.pace, log_dir=Path(logs), isolate=True)
        try:
            stack.start()
        except StackError as error:
            print(f"demo: could not start the stack: {error}", file=sys.stderr)
            return 1
        print(
            f"emulator {stack.emulator.url}  inference {stack.inference.address}"
            f"  gateway {stack.gateway.address}\n"
            f"$ dualnova chat --gateway {stack.gateway.address} {args.question!r}\n",
            flush=True,
        )
        try:
            status = asyncio.run(run_chat(stack.gateway.address, args.question, timeout=60))
        finally:
            stopped = stack.stop()
    unclean = {name: code for name, code in stopped.items() if code != 0}
    if unclean:
        print(f"demo: processes did not stop cleanly: {unclean}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
