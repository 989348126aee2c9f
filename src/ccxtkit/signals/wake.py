"""Waking the queue's workers in this process when intake queues a signal (no ledger polling).

Each accepted batch bumps a counter; an idle worker waits for the counter to change (or for its
poll interval, for retries that fall due), so a new signal is picked up at once and an idle
`vhc serve` does not take the ledger lock several times a second.
"""

from __future__ import annotations

import threading

_cv = threading.Condition()
_generation = 0


def notify_queued() -> None:
    """Intake queued something: wake every waiting worker."""
    global _generation
    with _cv:
        _generation += 1
        _cv.notify_all()


def generation() -> int:
    """How many times intake has queued something in this process."""
    with _cv:
        return _generation


def wait_for_queued(seen: int, timeout: float) -> int:
    """Wait until the counter differs from `seen` or `timeout` passes; returns the counter."""
    with _cv:
        _cv.wait_for(lambda: _generation != seen, timeout=timeout)
        return _generation
