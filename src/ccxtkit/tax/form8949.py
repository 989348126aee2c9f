"""Form 8949 rows, boxes and Schedule D totals (pure). Cents appear only here.

Rounding: each row's proceeds and cost basis are rounded half-up to cents, the row's gain is
rounded proceeds minus rounded basis, and every total is the sum of the rounded rows, so the
printed rows always add up to the printed totals.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from ccxtkit.money import CENT, fmt

from .lots import Match, is_long_term

COLUMNS = (
    "description",
    "date_acquired",
    "date_sold",
    "proceeds",
    "cost_basis",
    "adjustment_code",
    "adjustment_amount",
    "gain_loss",
    "term",
    "box",
    "exchange",
)
#: From tax year 2025 Form 8949 has separate boxes for digital assets (G-L).
DIGITAL_BOXES_FROM = 2025
#: Per account: was the sale reported on a Form 1099-DA, and with basis?
REPORTING = ("none", "basis_reported", "basis_not_reported")
UNKNOWN_BASIS_NOTE = "BASIS UNKNOWN"
ZERO = Decimal(0)


@dataclass(slots=True)  # not frozen: built once per row, and frozen __init__ is slow
class Row:
    """One printed line of Form 8949 (amounts already in cents)."""

    description: str
    date_acquired: date
    date_sold: date
    proceeds: Decimal
    cost_basis: Decimal
    adjustment_code: str
    adjustment_amount: Decimal | None
    gain_loss: Decimal
    term: str  # short | long
    box: str
    exchange: str
    unknown_basis: bool = False


@dataclass
class Totals:
    """Schedule D figures of one term: sums of the rounded rows."""

    proceeds: Decimal = ZERO
    cost_basis: Decimal = ZERO
    gain: Decimal = ZERO
    rows: int = 0

    def add(self, row: Row) -> None:
        self.proceeds += row.proceeds
        self.cost_basis += row.cost_basis
        self.gain += row.gain_loss
        self.rows += 1


@dataclass
class Schedule:
    """Short- and long-term totals, and totals per box."""

    short_term: Totals = field(default_factory=Totals)
    long_term: Totals = field(default_factory=Totals)
    by_box: dict[str, Totals] = field(default_factory=dict)


def box_for(long_term: bool, year: int, reporting: str = "none") -> str:
    """The Form 8949 check box of a digital-asset sale.

    Before 2025: C (short) / F (long), sales not reported on a Form 1099-B.
    From 2025: G/J reported on a 1099-DA with basis, H/K on a 1099-DA without basis,
    I/L not reported on a 1099-DA.
    """
    if year < DIGITAL_BOXES_FROM:
        return "F" if long_term else "C"
    short, long_ = {
        "basis_reported": ("G", "J"),
        "basis_not_reported": ("H", "K"),
    }.get(reporting, ("I", "L"))
    return long_ if long_term else short


def local_date(moment: datetime, zone: tzinfo | None) -> date:
    """The calendar date of a naive-UTC ledger time in the taxpayer's time zone."""
    if zone is None:
        return moment.date()
    from datetime import UTC

    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(zone).date()


#: Every time zone in use today is offset by a multiple of 15 minutes, so the local date is
#: constant within a 15-minute slot: converting once per slot is exact and much cheaper.
_SLOT_US = 15 * 60 * 1_000_000


@lru_cache(maxsize=1 << 18)
def _slot_date(slot: int, zone: tzinfo | None) -> date:
    from datetime import UTC

    moment = datetime.fromtimestamp(slot * _SLOT_US / 1_000_000, tz=UTC)
    return moment.date() if zone is None else moment.astimezone(zone).date()


def to_row(m: Match, zone: tzinfo | None, reporting: Mapping[str, str]) -> Row:
    """Round one match to a printed row."""
    if m.acquired_ts or m.sold_ts:
        acquired = _slot_date(m.acquired_ts // _SLOT_US, zone)
        sold = _slot_date(m.sold_ts // _SLOT_US, zone)
    else:
        acquired, sold = local_date(m.acquired, zone), local_date(m.sold, zone)
    long_term = is_long_term(acquired, sold)
    proceeds = m.proceeds.quantize(CENT, ROUND_HALF_UP)  # money.cents, inlined: hot path
    basis = m.cost.quantize(CENT, ROUND_HALF_UP)
    what = f"{fmt(m.qty)} {m.asset}"
    if m.kind == "fee":
        what += " (spent on a fee)"
    if m.unknown_basis:
        what += f" ({UNKNOWN_BASIS_NOTE})"
    return Row(
        description=what,
        date_acquired=acquired,
        date_sold=sold,
        proceeds=proceeds,
        cost_basis=basis,
        adjustment_code="",
        adjustment_amount=None,
        gain_loss=proceeds - basis,
        term="long" if long_term else "short",
        box=box_for(long_term, sold.year, reporting.get(m.wallet, "none")),
        exchange=m.wallet,
        unknown_basis=m.unknown_basis,
    )


def schedule(rows: Iterable[Row]) -> Schedule:
    """Totals as sums of the rounded rows."""
    out = Schedule()
    for row in rows:
        (out.long_term if row.term == "long" else out.short_term).add(row)
        out.by_box.setdefault(row.box, Totals()).add(row)
    return out


def to_csv(rows: Iterable[Row]) -> str:
    """The rows in DESIGN.md's columns; dates ISO (YYYY-MM-DD), amounts with two decimals."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        adj = "" if r.adjustment_amount is None else f"{r.adjustment_amount:.2f}"
        writer.writerow(
            [
                r.description,
                r.date_acquired.isoformat(),
                r.date_sold.isoformat(),
                f"{r.proceeds:.2f}",
                f"{r.cost_basis:.2f}",
                r.adjustment_code,
                adj,
                f"{r.gain_loss:.2f}",
                r.term,
                r.box,
                r.exchange,
            ]
        )
    return buf.getvalue()
