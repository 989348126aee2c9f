"""Control events that must never wait on the ledger lock: straight in, or via the outbox."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ccxtkit.errors import LedgerBusyError
from ccxtkit.ledger.outbox import queue_event
from ccxtkit.ledger.store import default_actor, open_ledger
from ccxtkit.logs import log
from ccxtkit.workspace import Workspace

#: How long a control action waits for the ledger before queueing its event instead.
LEDGER_WAIT_SECONDS = 0.5


def record_control_event(
    ws: Workspace,
    kind: str,
    details: Mapping[str, Any],
    actor: str | None = None,
    subject: str | None = None,
    wait_seconds: float = LEDGER_WAIT_SECONDS,
) -> str:
    """Append a control event to the ledger, or queue it durably if the ledger is busy.

    Returns "ledger" or "outbox": the outbox is drained into the hash chain by the next
    process that opens the ledger, so the event is never lost and never waits.
    """
    who = actor or default_actor()
    try:
        with open_ledger(ws.ledger_path, wait_seconds=wait_seconds) as ledger:
            ledger.record_event(kind, details, actor=who, subject=subject)
        return "ledger"
    except LedgerBusyError:
        queue_event(ws.ledger_path, kind, details, actor=who, subject=subject)
        log.info("ledger busy: %s queued in the outbox", kind)
        return "outbox"


def queue_control_event(
    ws: Workspace,
    kind: str,
    details: Mapping[str, Any],
    actor: str | None = None,
    subject: str | None = None,
) -> None:
    """Queue a control event in the outbox at once (fsynced), without touching the ledger lock."""
    queue_event(ws.ledger_path, kind, details, actor=actor or default_actor(), subject=subject)
