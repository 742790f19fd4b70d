"""`make test` leaves no package-lock.json behind (issue 11's report: it did).

npm writes a lockfile on install unless told not to; package.json pins buf exactly, so
the Makefile installs with --no-package-lock. By the time pytest runs, `make test` has
done its installs (node_modules with buf) and `make lint`, so a lockfile would be here.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_installs_leave_no_lockfile_behind() -> None:
    assert (REPO / "node_modules" / ".bin" / "buf").exists(), "make test installs buf first"
    assert not (REPO / "package-lock.json").exists()
