"""What every process a test starts gets unless the test asks for something else.

These are passed to each process explicitly (`Stack`, `ServiceHandle` and the
support modules take env mappings), never set in the test process's own
os.environ, so nothing reaches a process by accident.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Fast pacing: tests check content and order, not speed.
TEST_PACE = 0.02

# No background health probes landing in another test's emulator log, and no
# drain delay when a test stops a service. Health and shutdown tests set their
# own on top of these.
SERVICE_DEFAULTS: Mapping[str, str] = {
    "DUALNOVA_HEALTH_INTERVAL": "3600",
    "INFERENCE_SHUTDOWN_DELAY": "0",
    "GATEWAY_SHUTDOWN_DELAY": "0",
}


def terminal_environ() -> dict[str, str]:
    """This environment for a program on a pseudo-terminal, less COLUMNS and LINES.

    pytest-xdist's workers set them (80x24), and rich would take them over the size
    of the terminal the test made.
    """
    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
