"""The signal workers inside `vhc serve`: threads that each run `signals.worker.run_worker`.

Each worker takes one signal a pass, so a stop request is honoured between signals, never in
the middle of one: a signal being sent is finished and recorded before its thread exits. Idle
workers are woken by intake in this process (`signals.wake`) or every `poll_seconds`. One bad
signal (or a busy ledger) is logged by `run_worker` and the loop goes on; a worker that dies
anyway is logged here and shows in `/system/health`. The queue is in the ledger, so what a
stopped or killed worker had not taken is taken by the next one, and what a kill left
half-done is resolved by the next pass through the order's client order id.
"""

from __future__ import annotations

import threading

from ccxtkit.logs import log, redact
from ccxtkit.workspace import Workspace


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
        for i in range(self.count):
            t = threading.Thread(target=self._run, name=f"vhc-signal-worker-{i}")
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

    def _run(self) -> None:
        from ccxtkit.signals.worker import run_worker

        try:
            run_worker(self.ws, self._stop, poll_seconds=self.poll_seconds, batch=1)
        except BaseException as exc:  # logged, then /system/health says degraded
            log.error("serve: signal worker died: %s: %s", type(exc).__name__, redact(str(exc)))
            raise
