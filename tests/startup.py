"""The start-up contract both services share: a bad setting is one stderr line and exit 2."""

from __future__ import annotations

import subprocess


def assert_refused_to_start(
    result: subprocess.CompletedProcess[str], prog: str, *words: str
) -> str:
    """`prog` exited 2 with exactly one line, `<prog>: configuration error: ...`, naming `words`."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(f"{prog}: configuration error: "), line
    for word in words:
        assert word in line, line
    return line
