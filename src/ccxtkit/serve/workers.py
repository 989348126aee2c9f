"""The signal workers inside `vhc serve`: threads that each run `signals.worker.work_once`.

Each loop takes at most one signal (`limit=1`), so a stop request is honoured between signals,
never in the middle of one: a signal being sent is finished and recorded before its thread
exits. One bad signal (or a ledger that is busy for a while) is logged and the loop goes on;
the server never dies of it. The queue is in the ledger, so what a stopped or killed worker
had not taken is taken by the next one; `work_once` resolves what a kill left half-done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ccxtkit.logs import log, redact
from ccxtkit.workspace import Workspace

#: After an unexpected failure, a worker waits this long before trying again (seconds).
FAILURE_PAUSE_SECONDS = 2.0


class WorkerPool:
    """`count` threads taking queued signals one at a time until `stop()`."""

    def __init__(self, ws: Workspace, count: int, poll_seconds: float) -> None:
        self.ws = ws
        self.count = count
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the threads."""
        from ccxtkit.signals.worker import work_once

        for i in range(self.count):
            t = threading.Thread(
                target=self._loop, args=(work_once,), name=f"vhc-signal-worker-{i}"
            )
            t.daemon = True  # a hung exchange call must not keep a stopped server alive forever
            t.start()
            self._threads.append(t)

    def alive(self) -> int:
        """How many worker threads are running."""
        return sum(t.is_alive() for t in self._threads)

    def stop(self, timeout: float = 60.0) -> None:
        """Ask every thread to stop after its current signal, and wait for them."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
            if t.is_alive():
                log.warning("serve: %s still busy after %s s at shutdown", t.name, timeout)

    def _loop(self, work: Callable[..., Any]) -> None:
        while not self._stop.is_set():
            try:
                done = work(self.ws, limit=1)
            except Exception as exc:  # noqa: BLE001 - one bad signal must not stop the worker
                log.error(
                    "serve: signal worker failed: %s: %s", type(exc).__name__, redact(str(exc))
                )
                self._stop.wait(FAILURE_PAUSE_SECONDS)
                continue
            if not done:  # nothing was due
                self._stop.wait(self.poll_seconds)
