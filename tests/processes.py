"""What every process a test starts gets unless the test asks for something else.

These are passed to each process explicitly (`Stack`, `ServiceHandle` and the
support modules take env mappings), never set in the test process's own
os.environ, so nothing reaches a process by accident.
"""

from __future__ import annotations

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
