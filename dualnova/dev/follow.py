"""`dualnova up --logs`: the processes' log files followed in the terminal, one line per record.

The files stay the record (JSON lines, as the services write them); what is
shown is the same record made short for a person: time, process, level,
message, then the other fields as key=value. A line that is not JSON (a
traceback) is shown as it is. Following starts at each file's end as it was
when the follower was made, so a reused --log-dir does not replay old runs,
and it survives a file that appears late or grows again after a restart.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["LogFollower", "readable"]

_INTERVAL_S = 0.2
# Fields every record has and the short line shows in its own columns (or not at all).
_OWN_COLUMNS = ("time", "level", "message", "service", "logger")


class LogFollower:
    """Follow `files` (label -> path) on a thread; `write` gets each new line, readable."""

    def __init__(self, files: Mapping[str, Path], write: Callable[[str], None]) -> None:
        self._write = write
        self._offsets = {label: (path, _size(path)) for label, path in files.items()}
        self._pending = {label: b"" for label in files}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-follower", daemon=True)
        self._width = max((len(label) for label in files), default=0)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Show what was written up to now, then stop following."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(_INTERVAL_S):
            self._read_all()
        self._read_all()

    def _read_all(self) -> None:
        """One round over every file; the round's records shown in time order across files."""
        batch: list[tuple[str, int, str]] = []
        for label, (path, offset) in self._offsets.items():
            try:
                with path.open("rb") as file:
                    file.seek(offset)
                    chunk = file.read()
            except FileNotFoundError:
                continue
            if not chunk:
                continue
            self._offsets[label] = (path, offset + len(chunk))
            *lines, rest = (self._pending[label] + chunk).split(b"\n")
            self._pending[label] = rest
            # A line without a time (a traceback's) stays right after the record before it.
            when = ""
            for line in lines:
                text = line.decode(errors="replace").rstrip("\r")
                if text:
                    when = _time_of(text) or when
                    batch.append((when, len(batch), readable(label.ljust(self._width), text)))
        for _, _, shown in sorted(batch):
            self._write(shown)


def readable(label: str, line: str) -> str:
    """`11:01:00.126 gateway  info  gateway stopping on SIGINT address=...` from a JSON record."""
    record = _record(line)
    if record is None:
        return f"{label}  {line}"
    clock = str(record.get("time", ""))[11:23]
    fields = " ".join(f"{key}={value}" for key, value in record.items() if key not in _OWN_COLUMNS)
    text = f"{clock} {label}  {record.get('level', ''):<7} {record.get('message', '')}"
    return f"{text}  {fields}" if fields else text


def _record(line: str) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _time_of(line: str) -> str:
    """The record's ISO time (sorts as text), or "" for a line that is not a record."""
    record = _record(line)
    return str(record.get("time", "")) if record is not None else ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
