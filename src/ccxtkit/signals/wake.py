"""Waking the queue's workers in this process when intake queues signals (no ledger polling).

Each accepted signal adds one ticket and wakes one waiting worker, so a signal wakes one worker,
not all of them (the others would only find it claimed, and hold the ledger meanwhile). A
worker takes a ticket per pass; an idle one waits for a ticket (or for its poll interval, for
retries that fall due and signals queued by another process), so a new signal is picked up at
once and an idle `vhc serve` does not take the ledger several times a second.
"""

from __future__ import annotations

import threading

_cv = threading.Condition()
_tickets = 0

#: More tickets than this are not kept: workers busy with a burst pass again anyway.
MAX_TICKETS = 1000


def notify_queued(count: int = 1) -> None:
    """Intake queued `count` signals: wake as many waiting workers."""
    global _tickets
    if count <= 0:
        return
    with _cv:
        _tickets = min(MAX_TICKETS, _tickets + count)
        _cv.notify(count)


def take(timeout: float) -> bool:
    """Take a ticket, waiting up to `timeout` seconds (0: only if one is there); whether taken."""
    global _tickets
    with _cv:
        if timeout > 0:
            _cv.wait_for(lambda: _tickets > 0, timeout=timeout)
        if _tickets <= 0:
            return False
        _tickets -= 1
        return True


def pending() -> int:
    """Tickets not taken yet."""
    with _cv:
        return _tickets
