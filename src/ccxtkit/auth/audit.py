"""Control events on the record: kill-switch events never wait (outbox), the rest do.

Only the kinds in `ledger.outbox.OUTBOX_KINDS` may fall back to the outbox, and they fall back
on any ledger failure (busy, damaged, disk full): the kill switch must be on the record even
when the ledger is not. Every other control event waits for the ledger like any writer and
fails (exit 6 or 7) if it cannot be written; it is never queued where anyone could forge it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ccxtkit.ledger.outbox import OUTBOX_KINDS, queue_event
from ccxtkit.ledger.store import default_actor, open_ledger
from ccxtkit.logs import log
from ccxtkit.workspace import Workspace

#: How long a kill-switch event waits for the ledger before queueing itself instead.
LEDGER_WAIT_SECONDS = 0.5

RecordedIn = Literal["ledger", "outbox", "nowhere"]


def record_control_event(
    ws: Workspace,
    kind: str,
    details: Mapping[str, Any],
    actor: str | None = None,
    subject: str | None = None,
    wait_seconds: float = LEDGER_WAIT_SECONDS,
) -> RecordedIn:
    """Append a control event to the ledger; an outbox kind is queued if the ledger fails.

    Returns where it went: "ledger", "outbox" (drained into the chain by the next writer), or
    "nowhere" when even the outbox could not be written (logged as critical).
    """
    who = actor or default_actor()
    if kind not in OUTBOX_KINDS:
        with ws.open_ledger() as ledger:
            ledger.record_event(kind, details, actor=who, subject=subject)
        return "ledger"
    try:
        with open_ledger(ws.ledger_path, wait_seconds=wait_seconds) as ledger:
            ledger.record_event(kind, details, actor=who, subject=subject)
        return "ledger"
    except Exception as exc:  # noqa: BLE001 - busy, damaged or full: the event must survive it
        log.warning("ledger not written (%s): %s queued in the outbox", _why(exc), kind)
        return queue_control_event(ws, kind, details, actor=who, subject=subject)


def queue_control_event(
    ws: Workspace,
    kind: str,
    details: Mapping[str, Any],
    actor: str | None = None,
    subject: str | None = None,
) -> RecordedIn:
    """Queue an outbox kind at once (fsynced), without touching the ledger lock."""
    try:
        path = ws.ledger_path
        queue_event(path, kind, details, actor=actor or default_actor(), subject=subject)
    except OSError as exc:
        log.critical("%s recorded nowhere: the outbox cannot be written (%s)", kind, exc)
        return "nowhere"
    return "outbox"


def _why(exc: Exception) -> str:
    from ccxtkit.errors import VhcError

    return exc.message if isinstance(exc, VhcError) else f"{type(exc).__name__}: {exc}"
