"""N processes of one service sharing one port, and the supervisor that runs them.

INFERENCE_WORKERS / GATEWAY_WORKERS above 1 start that many server processes
on one listen address, the way grpc's multiprocessing example does: every
worker binds with SO_REUSEPORT and the kernel spreads new connections over
them (a connection, and every call on it, stays with one worker).

The supervisor is the process the platform started and signals:
- it checks the port and holds it (dualnova.server.ports.reserve), so a taken port
  is one line and exit status 2, as for a single process;
- it starts each worker as a fresh `python -m <service>` (grpc does not
  survive fork, and the supervisor never loads grpc at all);
- it starts worker 0 alone and the rest once worker 0 serves, so a start-up
  failure (no AWS credentials, ...) is told once, by worker 0, with its
  status;
- it forwards SIGTERM and SIGINT to every worker; each drains exactly as a
  single process does (dualnova.server.shutdown), and the supervisor exits 0 when
  all of them exited 0.

A worker that exits on its own (a crash, the OOM killer) is not restarted:
the supervisor drains the others with SIGTERM and exits 1. The platform's
own restart (Kubernetes, ECS, systemd) then restarts the whole service with
its backoff, counts it and can alert on it; restarting in here would hide a
crash loop behind a process that looks alive, while health probes that land
on a surviving worker keep answering SERVING.
"""

from __future__ import annotations

import ctypes
import logging
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import FrameType

from dualnova.server import ports
from dualnova.server.settings import ConfigError, Setting, as_int

__all__ = [
    "EXIT_WORKER_FAILED",
    "MAX_WORKERS",
    "WORKER_VARIABLE",
    "WorkerRole",
    "setting",
    "supervise",
    "worker_role",
]

logger = logging.getLogger(__name__)

# Internal: set by the supervisor in each worker's environment, "<index>:<ready fd>:<pid>".
WORKER_VARIABLE = "DUALNOVA_WORKER"
# The supervisor's status when a worker died on its own.
EXIT_WORKER_FAILED = 1
MAX_WORKERS = 64
_READY = b"r"
_PR_SET_PDEATHSIG = 1


def setting(variable: str) -> Setting[int]:
    """The --workers setting of a service whose variable is `variable` (each has its own)."""
    return Setting(
        variable,
        "--workers",
        "server processes sharing the listen port (SO_REUSEPORT), e.g. one per core;"
        " each has its own limits and health probes",
        default=1,
        reader=as_int,
        minimum=1,
        maximum=MAX_WORKERS,
    )


class WorkerRole:
    """What a worker process knows about itself: its index and how to tell the supervisor."""

    def __init__(self, index: int, ready_fd: int, supervisor_pid: int) -> None:
        self.index = index
        self._ready_fd: int | None = ready_fd
        self._supervisor_pid = supervisor_pid

    def follow_supervisor(self) -> None:
        """Get SIGTERM (and so drain) when the supervisor dies, even by SIGKILL.

        Without it a killed supervisor would leave workers serving with nobody
        to stop them. Linux only; elsewhere a lost supervisor leaves them running.
        """
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != self._supervisor_pid:  # it died before prctl took hold
            os.kill(os.getpid(), signal.SIGTERM)

    def announce_ready(self) -> None:
        """Tell the supervisor this worker serves; once, later calls do nothing."""
        if self._ready_fd is None:
            return
        try:
            os.write(self._ready_fd, _READY)
        except OSError:
            pass  # the supervisor is gone; follow_supervisor's signal is on its way
        finally:
            os.close(self._ready_fd)
            self._ready_fd = None


def worker_role(env: Mapping[str, str]) -> WorkerRole | None:
    """This process's role when a supervisor started it, else None."""
    raw = env.get(WORKER_VARIABLE)
    if not raw:
        return None
    index, ready_fd, supervisor_pid = (int(part) for part in raw.split(":"))
    return WorkerRole(index, ready_fd, supervisor_pid)


@dataclass
class _Worker:
    index: int
    popen: subprocess.Popen[bytes]
    serving: bool = False
    status: int | None = None


def supervise(
    *,
    module: str,
    env: Mapping[str, str],
    count: int,
    listen_variable: str,
    listen: str,
) -> int:
    """Run `count` workers of `python -m module` on `listen` until they have all exited.

    Returns the supervisor's exit status: 0 when every worker drained and
    exited 0; worker 0's status when it could not start (it has said why);
    EXIT_WORKER_FAILED otherwise. Raises ConfigError when the port is taken.
    """
    if not hasattr(os, "pidfd_open"):
        raise ConfigError(f"{listen_variable}: several workers need Linux (SO_REUSEPORT)")
    reservation = ports.reserve(listen, listen_variable)
    try:
        worker_env = {**env, listen_variable: reservation.address}
        return _Supervisor(module, worker_env, count, reservation.address).run()
    finally:
        reservation.close()


class _Supervisor:
    """One selector loop: workers' ready pipes, their pidfds (exits) and the signal pipe."""

    def __init__(self, module: str, env: Mapping[str, str], count: int, address: str) -> None:
        self._module = module
        self._env = dict(env)
        self._count = count
        self._address = address
        self._workers: list[_Worker] = []
        self._selector = selectors.DefaultSelector()
        self._stopping = False
        self._failed: int | None = None

    def run(self) -> int:
        # Signals only wake the loop (set_wakeup_fd); forwarding happens in it, not in a
        # handler that could interrupt a log write.
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        previous_wakeup = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        previous = {sig: signal.signal(sig, _note_only) for sig in _FORWARDED}
        self._selector.register(wake_read, selectors.EVENT_READ, self._on_signals)
        try:
            self._spawn(0)
            while any(worker.status is None for worker in self._workers):
                for key, _ in self._selector.select():
                    key.data(key.fd)
                if self._workers[0].serving and len(self._workers) < self._count:
                    if not self._stopping:
                        for index in range(1, self._count):
                            self._spawn(index)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            self._selector.close()
            os.close(wake_read)
            os.close(wake_write)
        if self._failed is not None:
            return self._failed
        logger.info(f"all {self._count} workers stopped", extra={"address": self._address})
        return 0

    def _spawn(self, index: int) -> None:
        ready_read, ready_write = os.pipe()
        env = {**self._env, WORKER_VARIABLE: f"{index}:{ready_write}:{os.getpid()}"}
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", self._module],
                env=env,
                stdin=subprocess.DEVNULL,
                pass_fds=(ready_write,),
            )
        finally:
            os.close(ready_write)
        worker = _Worker(index, popen)
        self._workers.append(worker)
        pidfd = os.pidfd_open(popen.pid)
        self._selector.register(ready_read, selectors.EVENT_READ, self._ready_callback(worker))
        self._selector.register(pidfd, selectors.EVENT_READ, self._exit_callback(worker))

    def _ready_callback(self, worker: _Worker) -> Callable[[int], None]:
        def on_ready(fd: int) -> None:
            # A byte: it serves. End of file without one: it exited (its pidfd says how).
            if os.read(fd, 1) == _READY:
                worker.serving = True
                if len(self._workers) == self._count and all(w.serving for w in self._workers):
                    logger.info(
                        f"{self._count} workers serving",
                        extra={"address": self._address, "workers": self._count},
                    )
            self._selector.unregister(fd)
            os.close(fd)

        return on_ready

    def _exit_callback(self, worker: _Worker) -> Callable[[int], None]:
        def on_exit(fd: int) -> None:
            self._selector.unregister(fd)
            os.close(fd)
            worker.status = worker.popen.wait()
            self._judge(worker)

        return on_exit

    def _judge(self, worker: _Worker) -> None:
        status = worker.status
        pid = worker.popen.pid
        if self._stopping:
            # A worker stopped before it served had nothing to drain, however it ended.
            if status != 0 and worker.serving:
                logger.error(f"worker {worker.index} (pid {pid}) exited with status {status}")
                self._failed = EXIT_WORKER_FAILED
            return
        if worker.index == 0 and not worker.serving:
            # It could not start and has written its own line (status 2 for configuration).
            self._failed = status if status and status > 0 else EXIT_WORKER_FAILED
        else:
            logger.error(
                f"worker {worker.index} (pid {pid}) exited with status {status}; stopping"
                " the others and exiting, so the platform restarts the service"
            )
            self._failed = EXIT_WORKER_FAILED
        self._forward(signal.SIGTERM)

    def _on_signals(self, fd: int) -> None:
        for signum in os.read(fd, 64):
            if signum in _FORWARDED:
                sig = signal.Signals(signum)
                if not self._stopping:
                    logger.info(
                        f"forwarding {sig.name} to {len(self._workers)} workers",
                        extra={"address": self._address},
                    )
                self._forward(sig)

    def _forward(self, sig: signal.Signals) -> None:
        self._stopping = True
        for worker in self._workers:
            if worker.status is None:
                try:
                    worker.popen.send_signal(sig)
                except ProcessLookupError:
                    pass  # exited a moment ago; its pidfd reports it next


def _note_only(_signum: int, _frame: FrameType | None) -> None:
    """A handler that does nothing: the wakeup fd carries the signal to the loop."""


_FORWARDED = (signal.SIGTERM, signal.SIGINT)
