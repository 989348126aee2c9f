"""`vhc ledger sync`: backfill an account's fills, deposits and withdrawals from the exchange.

The range is read in time windows, one kind at a time. Each window is fetched with the ledger
closed (the gateway follows the exchange's pagination to the end), then written in one short
transaction together with a chained `ledger.sync.cursor` event naming how far that kind is
covered, so a crash loses at most the window in flight and the next run resumes there.
Windows adapt: a busy window halves the next one, a quiet one doubles it. Binance's fills
are read market by market from trade id 0 whenever a range is longer than a week
(exchanges/quirks.py), so there the fills are one window: windows would re-read them all.

Each movement is recorded once, by (exchange, the exchange's own id): a re-run adds nothing.
A known id whose content differs is a conflict: kept out, recorded as a `trade.conflict` or
`transfer.conflict` event, and counted, never stored twice. Transfers still pending are not
recorded (rows are never updated later): the cursor of that kind stays before the earliest
one, so a later run picks it up once it completes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import crashpoints
from ..exchanges.base import ExchangeClient, Trade, Transfer
from ..exchanges.fees import apply_ledger_fees
from ..logs import log
from ..workspace import Workspace
from .store import Ledger

KINDS = ("trades", "deposits", "withdrawals")
CURSOR_EVENT = "ledger.sync.cursor"
DONE_EVENT = "ledger.sync"
SOURCE = "sync"
#: A resumed run re-reads this much before the cursor: history that lands late is not missed.
OVERLAP = timedelta(minutes=10)
FIRST_WINDOW = timedelta(days=30)
MIN_WINDOW = timedelta(hours=1)
MAX_WINDOW = timedelta(days=366)
#: Rows per window the adaptation aims at (a batch commits in well under a second).
TARGET_ROWS = 5000
_CHUNK = 1000

#: (kind, pages fetched so far, rows so far) after each page or batch: the progress bar.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Cursor:
    """History of one kind is recorded from `since` up to (not including) `through`."""

    since: datetime
    through: datetime


@dataclass
class Written:
    """What one batch (or one import) did to the ledger."""

    added: int = 0
    known: int = 0
    conflicts: list[str] = field(default_factory=list)


@dataclass
class SyncResult:
    """What `vhc ledger sync` did."""

    exchange: str
    since: datetime
    until: datetime
    added: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    known: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    resumed_from: dict[str, datetime] = field(default_factory=dict)
    cursors: dict[str, Cursor] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    batches: int = 0
    pages: int = 0
    fetch_seconds: float = 0.0
    write_seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 when a conflict needs a person, else 0."""
        return 1 if self.conflicts else 0


# -- cursors ---------------------------------------------------------------------------------
def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_cursors(ledger: Ledger, exchange: str) -> dict[str, Cursor]:
    """The latest recorded cursor of each kind for the account (none before its first sync)."""
    found: dict[str, Cursor] = {}
    for (details,) in ledger.query(
        "SELECT details FROM control_events WHERE kind IN (?, ?) AND subject = ? ORDER BY seq",
        [CURSOR_EVENT, DONE_EVENT, exchange],
    ):
        try:
            data = json.loads(details)
            for kind, c in (data.get("cursors") or {}).items():
                since, through = (
                    datetime.fromisoformat(c["since"]),
                    datetime.fromisoformat(c["through"]),
                )
                found[kind] = Cursor(_utc(since), _utc(through))
        except (TypeError, ValueError, KeyError, AttributeError):
            continue  # not written by this code: ignore rather than trust it
    return found


def resume_point(cursor: Cursor | None, since: datetime) -> tuple[datetime, datetime]:
    """(where to start reading, where the coverage starts) for a run asked to begin at `since`."""
    if cursor is not None and cursor.since <= since < cursor.through:
        return max(since, cursor.through - OVERLAP), cursor.since
    return since, since


def _cursor_details(cursors: dict[str, Cursor], kind: str, added: int) -> dict[str, Any]:
    return {
        "kind": kind,
        "added": added,
        "cursors": {
            k: {"since": c.since.isoformat(), "through": c.through.isoformat()}
            for k, c in sorted(cursors.items())
        },
    }


# -- writing: shared with the exchange CSV importers --------------------------------------------
def same_fill(stored: tuple[Any, ...], t: Trade) -> bool:
    """The ledger's row of this id is this fill: symbol, side and amount, and price or cost.

    A ledger export (kraken Ledgers) gives the cost, not the price; its price is derived, so
    either one matching exactly is the same fill.
    """
    symbol, side, amount, price, cost = stored
    same = (symbol.upper(), side, amount) == (t.symbol.upper(), t.side, t.amount)
    return same and (price == t.price or cost == t.cost)


def record_history(
    ledger: Ledger,
    exchange: str,
    trades: Sequence[Trade],
    transfers: Sequence[Transfer],
    source: str,
    note: str,
    notes: Mapping[str, str] | None = None,
) -> Written:
    """Append the fills and completed transfers the ledger lacks; conflicts become events."""
    from ..reconcile.adopt import transfer_row
    from ..trading.recording import _record_conflict, record_fills

    out = Written()
    fresh: dict[str, Trade] = {}
    for i in range(0, len(trades), _CHUNK):
        part = trades[i : i + _CHUNK]
        marks = ", ".join("?" for _ in part)
        stored = {
            str(r[0]): r[1:]
            for r in ledger.query(
                "SELECT trade_id, symbol, side, amount, price, cost FROM trades "
                f"WHERE exchange = ? AND trade_id IN ({marks})",
                [exchange, *(t.id for t in part)],
            )
        }
        for t in part:
            row = stored.get(t.id)
            if row is None:
                fresh.setdefault(t.id, t)
            elif same_fill(row, t):
                out.known += 1
            else:
                _record_conflict(ledger, exchange, t, row[:4])
                out.conflicts.append(f"trade {t.id}")
    out.added += record_fills(ledger, exchange, list(fresh.values()), source)
    done = [t for t in transfers if t.status == "ok"]
    stored_t: dict[tuple[str, str], tuple[Any, ...]] = {}
    for i in range(0, len(done), _CHUNK):
        chunk = done[i : i + _CHUNK]
        marks = ", ".join("?" for _ in chunk)
        for tid, kind, asset, amount, fee in ledger.query(
            "SELECT transfer_id, kind, asset, amount, fee FROM transfers "
            f"WHERE exchange = ? AND transfer_id IN ({marks})",
            [exchange, *(x.id for x in chunk)],
        ):
            stored_t[(str(kind), str(tid))] = (str(asset).upper(), amount, fee)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for x in done:
        key = (x.kind, x.id)
        known = stored_t.get(key)
        if known is None:
            if key not in rows:
                text = (notes or {}).get(x.id, note)
                rows[key] = {**transfer_row(exchange, x, text), "source": source}
            continue
        asset, amount, fee = known
        gross = amount + (fee or 0)
        if asset == x.asset.upper() and x.amount in (amount, gross):
            out.known += 1
            continue
        details = {
            "exchange": exchange, "transfer_id": x.id, "kind": x.kind,
            "ledger": {"asset": asset, "amount": amount, "fee": fee},
            "exchange_transfer": {"asset": x.asset, "amount": x.amount, "fee": x.fee},
        }  # fmt: skip
        log.warning(
            "%s %s %s conflicts with the ledger's row of that id: not recorded; settle it by "
            "hand (`vhc ledger log` shows transfer.conflict)", exchange, x.kind, x.id,
        )  # fmt: skip
        ledger.record_event("transfer.conflict", details, subject=f"{exchange}:{x.id}")
        out.conflicts.append(f"{x.kind} {x.id}")
    ledger.append("transfers", list(rows.values()))
    out.added += len(rows)
    return out


# -- reading ------------------------------------------------------------------------------------
def _fetch(
    client: ExchangeClient, kind: str, start: datetime, end: datetime
) -> tuple[list[Trade], list[Transfer]]:
    if kind == "trades":
        fills = client.fetch_my_trades(start, end)
        if fills:
            # kraken labels every fee with the quote; its own ledger says what was charged.
            fills = apply_ledger_fees(fills, client.fetch_ledger(start, end))
        return fills, []
    if kind == "deposits":
        return [], client.fetch_deposits(start, end)
    return [], client.fetch_withdrawals(start, end)


def _next_width(width: timedelta, rows: int) -> timedelta:
    if rows > TARGET_ROWS:
        return max(MIN_WINDOW, width / 2)
    if rows < TARGET_ROWS // 4:
        return min(MAX_WINDOW, width * 2)
    return width


def sync_account(
    ws: Workspace,
    exchange: str,
    since: datetime,
    until: datetime | None = None,
    progress: Progress | None = None,
    client: ExchangeClient | None = None,
) -> SyncResult:
    """Backfill one account's history from `since` to `until` (default now); see module doc."""
    from ..exchanges.quirks import TRADES_PER_SYMBOL
    from ..trading.accounts import connect

    cfg = ws.config.exchange(exchange)  # a clear error for an unknown name
    whole = (cfg.id or exchange) in TRADES_PER_SYMBOL
    since, end = _utc(since), _utc(until or datetime.now(UTC))
    result = SyncResult(exchange, since, end)
    with ws.open_ledger() as ledger:
        recorded = read_cursors(ledger, exchange)
    own = client is None
    client = client or connect(ws, exchange)
    state: dict[str, Any] = {"kind": KINDS[0], "rows": 0}

    def on_page(_method: str) -> None:
        result.pages += 1
        if progress is not None:
            progress(state["kind"], result.pages, state["rows"])

    if hasattr(client, "on_page"):
        client.on_page = on_page
    try:
        for kind in KINDS:
            state["kind"], state["rows"] = kind, 0
            first = MAX_WINDOW * 100 if whole and kind == "trades" else FIRST_WINDOW
            _sync_kind(ws, client, kind, recorded.get(kind), result, state, progress, first)
    finally:
        if own:
            client.close()
    with ws.open_ledger() as ledger:
        details = _cursor_details(result.cursors, "all", sum(result.added.values()))
        details.update(
            since=since.isoformat(), until=end.isoformat(), added=result.added,
            known=result.known, conflicts=len(result.conflicts), pending=result.pending,
        )  # fmt: skip
        ledger.record_event(DONE_EVENT, details, subject=exchange)
    return result


def _sync_kind(
    ws: Workspace,
    client: ExchangeClient,
    kind: str,
    cursor: Cursor | None,
    result: SyncResult,
    state: dict[str, Any],
    progress: Progress | None,
    width: timedelta,
) -> None:
    start, covered = resume_point(cursor, result.since)
    if start != result.since:
        result.resumed_from[kind] = start
    if cursor is not None and start >= result.until:
        result.cursors[kind] = cursor
        return
    held: datetime | None = None  # the earliest pending transfer: the cursor stays before it
    a = start
    while a < result.until:
        b = min(a + width, result.until)
        began = time.perf_counter()
        fills, transfers = _fetch(client, kind, a, b)
        result.fetch_seconds += time.perf_counter() - began
        waiting = [t for t in transfers if t.status == "pending"]
        if waiting:
            earliest = min(t.timestamp for t in waiting)
            held = earliest if held is None else min(held, earliest)
            result.pending += [f"{t.kind} {t.id}" for t in waiting]
        through = b if held is None else min(held, b)
        result.cursors[kind] = Cursor(covered, max(through, covered))
        began = time.perf_counter()
        with ws.open_ledger() as ledger, ledger.transaction():
            done = record_history(
                ledger, result.exchange, fills, transfers, SOURCE,
                f"recorded by vhc ledger sync: {kind[:-1]} read from the exchange's history",
            )  # fmt: skip
            crashpoints.reach("ledger.sync.mid_batch")  # rows appended, not committed
            if done.added or done.conflicts:
                ledger.record_event(
                    CURSOR_EVENT, _cursor_details(result.cursors, kind, done.added),
                    subject=result.exchange,
                )  # fmt: skip
        result.write_seconds += time.perf_counter() - began
        result.batches += 1
        result.added[kind] += done.added
        result.known[kind] += done.known
        result.conflicts += done.conflicts
        state["rows"] += len(fills) + len(transfers)
        if progress is not None:
            progress(kind, result.pages, state["rows"])
        width = _next_width(min(width, MAX_WINDOW), len(fills) + len(transfers))
        a = b


def parse_since(text: str) -> datetime:
    """--since: a date (YYYY-MM-DD, midnight UTC) or an ISO 8601 time."""
    from .trades_csv import parse_timestamp

    return parse_timestamp(text, "--since")


__all__ = [
    "Cursor",
    "KINDS",
    "SyncResult",
    "Written",
    "parse_since",
    "read_cursors",
    "record_history",
    "resume_point",
    "sync_account",
]
