"""Key age: when each secret was last set (never its value), and whether it is due to rotate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccxtkit.errors import LedgerBusyError

if TYPE_CHECKING:
    from ccxtkit.ledger.store import Ledger

#: The control event that records a secret being stored.
EVENT_KIND = "secret.set"


def set_event(name: str, kind: str, backend: str, location: str) -> dict[str, Any]:
    """The details of a `secret.set` event: what and where, never the value."""
    return {"name": name, "kind": kind, "backend": backend, "location": location}


def record_set(
    ledger_path: Path, wait_seconds: float, details: dict[str, Any], now: datetime
) -> str:
    """Record a `secret.set` event; a busy ledger leaves it unrecorded (said in the result).

    Not queued in the outbox: that carries kill-switch events only (ledger.outbox).
    """
    from ccxtkit.ledger.store import open_ledger

    try:
        with open_ledger(ledger_path, wait_seconds) as ledger:
            seq = ledger.record_event(
                EVENT_KIND, details, subject=str(details["name"]), timestamp=now
            )
        return f"ledger seq {seq}"
    except LedgerBusyError:
        return "not recorded in the ledger (it was busy): its age may show as unknown"


def last_set_times(ledger: Ledger) -> dict[tuple[str, str], datetime]:
    """(kind, name) -> when it was last set, from the ledger's `secret.set` events (UTC)."""
    latest: dict[tuple[str, str], datetime] = {}
    for row in ledger.rows(
        "SELECT timestamp, details FROM control_events WHERE kind = ? ORDER BY seq",
        [EVENT_KIND],
    ):
        try:
            details = json.loads(row["details"] or "{}")
        except ValueError:
            continue
        key = (str(details.get("kind", "")), str(details.get("name", "")))
        latest[key] = as_utc(row["timestamp"])
    return latest


def as_utc(moment: datetime) -> datetime:
    """The ledger stores naive UTC; make it aware so it compares with backend timestamps."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def newest(*moments: datetime | None) -> datetime | None:
    """The latest of the known moments, or None if none is known."""
    known = [as_utc(m) for m in moments if m is not None]
    return max(known) if known else None


def age_days(set_at: datetime | None, now: datetime) -> int | None:
    """Whole days since the secret was set (None when unknown)."""
    if set_at is None:
        return None
    return max(0, (as_utc(now) - as_utc(set_at)) // timedelta(days=1))


def age_warning(name: str, set_at: datetime | None, now: datetime, max_age_days: int) -> str | None:
    """A rotation warning when the key is older than `max_age_days` (the seed says 90)."""
    days = age_days(set_at, now)
    if days is None or days <= max_age_days:
        return None
    return (
        f"{name}: key is {days} days old (rotation policy: {max_age_days} days); "
        f"create a new key at the exchange and run `vhc secrets set {name}`"
    )
