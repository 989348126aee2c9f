"""What people do with the queue: list signals, put one back (`retry`), take one out (`drop`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import InputError, LedgerBusyError, UsageError
from ..ledger.store import Ledger
from ..workspace import Workspace
from . import store
from .worker import try_claim


@dataclass(frozen=True)
class SignalRecord:
    """One signal and its current state, as `vhc signals list` shows it."""

    signal_id: str
    received_at: datetime
    source: str
    external_id: str
    exchange: str
    symbol: str
    side: str
    type: str
    amount: Any
    price: Any
    status: str
    attempt: int
    next_attempt_at: datetime | None
    updated_at: datetime
    reason: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SignalRecord:
        try:
            details = json.loads(row["details"] or "{}")
        except ValueError:
            details = {}
        waiting = row["status"] in ("refused", "dead", "dropped", "retry", "unknown")
        reason = (details.get("reason") or details.get("message")) if waiting else None
        return cls(
            signal_id=row["signal_id"],
            received_at=row["timestamp"],
            source=row["source"],
            external_id=row["external_id"],
            exchange=row["exchange"],
            symbol=row["symbol"],
            side=row["side"],
            type=row["type"],
            amount=row["amount"],
            price=row["price"],
            status=row["status"],
            attempt=int(row["attempt"]) - int(row["base_attempt"]),
            next_attempt_at=row["next_attempt_at"],
            updated_at=row["updated_at"],
            reason=str(reason) if reason else None,
        )


def list_signals(ws: Workspace, status: str | None = None) -> list[SignalRecord]:
    """Every signal (or those with `status`), oldest first."""
    if status is not None and status not in store.STATUSES:
        raise UsageError(f"unknown status {status!r}: use one of {', '.join(store.STATUSES)}")
    with ws.open_ledger() as ledger:
        return [SignalRecord.from_row(r) for r in store.states(ledger, status=status)]


def get_signal(ws: Workspace, ref: str) -> tuple[SignalRecord, list[dict[str, Any]]]:
    """One signal and every event of its life, oldest first (details as objects)."""
    with ws.open_ledger() as ledger:
        row = _find(ledger, ref)
        events = store.events(ledger, row["signal_id"])
    for event in events:
        try:
            event["details"] = json.loads(event["details"] or "{}")
        except ValueError:
            event["details"] = {}
    return SignalRecord.from_row(row), events


def _find(ledger: Ledger, ref: str) -> dict[str, Any]:
    row = store.find(ledger, ref)
    if row is None:
        raise InputError(f"no signal {ref!r} in the queue (see `vhc signals list`)")
    return row


def retry(ws: Workspace, ref: str, actor: str | None = None) -> SignalRecord:
    """Put a dead, refused or waiting signal back in the queue, due now, with fresh attempts."""
    with ws.open_ledger() as ledger:
        row = _find(ledger, ref)
        with try_claim(ws, row["signal_id"]) as claimed:
            if not claimed:
                raise LedgerBusyError(f"signal {row['signal_id']} is being worked on right now")
            if row["status"] in ("executed", "dropped", "queued", "working"):
                raise UsageError(
                    f"signal {row['signal_id']} is {row['status']}: only dead, refused, retry "
                    "or unknown signals can be retried"
                )
            store.add_event(
                ledger,
                row["signal_id"],
                "requeued",
                "queued" if row["attempt"] <= row["resolved_attempt"] else "unknown",
                attempt=int(row["attempt"]),
                details={"by": actor or "vhc signals retry", "was": row["status"]},
            )
        return SignalRecord.from_row(_find(ledger, row["signal_id"]))


def drop(ws: Workspace, ref: str, reason: str, actor: str | None = None) -> SignalRecord:
    """Take a signal out of the queue for good, with the reason on the record."""
    if not reason.strip():
        raise UsageError("--reason must say why the signal is dropped")
    with ws.open_ledger() as ledger:
        row = _find(ledger, ref)
        with try_claim(ws, row["signal_id"]) as claimed:
            if not claimed:
                raise LedgerBusyError(f"signal {row['signal_id']} is being worked on right now")
            if row["status"] in ("executed", "dropped"):
                raise UsageError(f"signal {row['signal_id']} is already {row['status']}")
            if row["attempt"] > row["resolved_attempt"]:
                raise UsageError(
                    f"signal {row['signal_id']} has an order whose fate is not known yet; run "
                    "`vhc signals work --once` (or `vhc trade recover`) first"
                )
            store.add_event(
                ledger,
                row["signal_id"],
                "dropped",
                "dropped",
                attempt=int(row["attempt"]),
                details={"reason": reason.strip(), "by": actor or "vhc signals drop"},
            )
        return SignalRecord.from_row(_find(ledger, row["signal_id"]))
