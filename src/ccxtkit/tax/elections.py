"""Lot-selection elections on the record, and which method governs each sale (pure rules).

From 2025 a method other than FIFO is a standing specific-identification order: it counts
only for sales after it was recorded. Before 2025 the report's method (or the config's) applies
unless an election covers the sale.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ccxtkit.errors import InputError, UsageError

from .lots import Method

if TYPE_CHECKING:
    from ccxtkit.workspace import Workspace

ELECTION_EVENT = "tax.election"
#: Sales from this date follow Rev. Proc. 2024-28: per-wallet basis, standing orders only.
STANDING_ORDER_RULE_FROM = date(2025, 1, 1)


@dataclass(frozen=True, slots=True)
class Election:
    """A recorded standing order: `method` for sales on or after `effective_from`."""

    method: Method
    effective_from: date
    recorded_at: datetime  # UTC, naive (as the ledger stores it)


def parse_method(text: str) -> Method:
    """'fifo' | 'lifo' | 'hifo' (any case), or a clear error."""
    try:
        return Method(text.strip().lower())
    except ValueError:
        raise UsageError(f"unknown method {text!r}: use fifo, lifo or hifo") from None


def parse_elections(rows: Iterable[Mapping[str, Any]]) -> list[Election]:
    """Elections from control_events rows (kind tax.election), oldest record first."""
    out: list[Election] = []
    for row in rows:
        try:
            details = json.loads(row["details"] or "{}")
            method = Method(str(details["method"]).lower())
            start = date.fromisoformat(str(details["effective_from"])[:10])
        except (ValueError, KeyError, TypeError):
            raise InputError(
                f"control event seq {row.get('seq')} (tax.election) has unreadable details "
                f"{row.get('details')!r}: record a new election with `vhc tax elect`"
            ) from None
        # recorded_at is stamped by the ledger itself, so an order cannot be backdated.
        out.append(Election(method, start, row.get("recorded_at") or row["timestamp"]))
    out.sort(key=lambda e: e.recorded_at)
    return out


def check_new_election(method: Method, effective_from: date, today: date) -> None:
    """A standing order cannot reach back: from 2025 it must start today or later."""
    if effective_from < today and effective_from >= STANDING_ORDER_RULE_FROM:
        raise UsageError(
            f"an election effective {effective_from} would reach back before today ({today}): "
            "from 2025 a lot-selection order counts only for later sales; use --from "
            f"{today} or a later date"
        )
    del method  # every method may be elected; FIFO records a return to the default


def election_in_force(elections: list[Election], sold: datetime, sold_day: date) -> Election | None:
    """The election governing a sale: latest effective date, then latest recorded.

    From 2025 an election counts only if it was recorded before the sale.
    """
    best: Election | None = None
    for e in elections:
        if e.effective_from > sold_day:
            continue
        if sold_day >= STANDING_ORDER_RULE_FROM and e.recorded_at > sold:
            continue
        if best is None or (e.effective_from, e.recorded_at) >= (
            best.effective_from,
            best.recorded_at,
        ):
            best = e
    return best


def method_for_sale(
    elections: list[Election], sold: datetime, sold_day: date, fallback: Method
) -> Method:
    """The method for one sale: the election in force, else FIFO from 2025, else `fallback`."""
    e = election_in_force(elections, sold, sold_day)
    if e is not None:
        return e.method
    return Method.FIFO if sold_day >= STANDING_ORDER_RULE_FROM else fallback


def methods_on_record(elections: list[Election], year: int) -> set[Method]:
    """Methods the record imposes on some sale in `year` (empty: the year is free to choose)."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    found: set[Method] = set()
    in_force_at_start = [e for e in elections if e.effective_from <= start]
    if in_force_at_start:
        latest = max(in_force_at_start, key=lambda e: (e.effective_from, e.recorded_at))
        found.add(latest.method)
    elif start >= STANDING_ORDER_RULE_FROM:
        found.add(Method.FIFO)
    found.update(e.method for e in elections if start < e.effective_from <= end)
    return found


def record_election(
    ws: Workspace, method: str, effective_from: date | None, now: datetime
) -> dict[str, Any]:
    """Check and append a `tax.election` control event; returns what was recorded."""
    chosen = parse_method(method)
    today = now.date()
    start = effective_from or today
    check_new_election(chosen, start, today)
    details = {"method": chosen.value, "effective_from": start.isoformat()}
    with ws.open_ledger() as ledger:
        seq = ledger.record_event(ELECTION_EVENT, details, subject=chosen.value)
    return {**details, "seq": seq}
