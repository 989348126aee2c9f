"""The portfolio's flow-adjusted high-water mark over its balance snapshots, read incrementally.

The rule (see `risk.exposure`): the portfolio at a snapshot time t is each exchange's latest
snapshot batch at or before t, valued with the `prices` table as of then; its mark is that
value plus the deposits minus the withdrawals after t; the high-water mark is the highest mark.

Every order records a balance snapshot, so a firm's ledger gathers hundreds of thousands of
batches; walking all of them on every order and every minute grew without bound (0.9 s of
CPU for 100,000 orders). Writing mark(t) = value(t) + F - upto(t), with F every flow and
upto(t) the flows at or before t, the highest mark is F + max(value(t) - upto(t)), and the
max over the times up to T never changes once nothing at or before T can be added. A chained
`risk.high_water` control event records the walk through T (each exchange's latest batch
value, that max, upto(T)) and the seq it was taken at; a reader walks only the batches after
T. Any snapshot, flow or USD price recorded after that seq but stamped at or before T (an
import, a backfill) could change the past, so the checkpoint is then ignored and the whole
history walked. T lags the recording time by five minutes so that ordinary late commits (a
snapshot taken just before a slow visit) do not invalidate it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ccxtkit.ledger.chain import now_utc
from ccxtkit.ledger.names import NOT_MOVED
from ccxtkit.ledger.store import Ledger
from ccxtkit.logs import log
from ccxtkit.money import USD_LIKE, is_usd_like

from . import checkpoints
from .pending import sql_in

ZERO = Decimal(0)
CHECKPOINT_KIND = "risk.high_water"
#: Snapshot rows after the latest checkpoint before a writer records a new one.
CHECKPOINT_EVERY = 500
#: The checkpoint covers the batches stamped at least this long before it is recorded.
CHECKPOINT_LAG = timedelta(minutes=5)

#: Transfer statuses meaning the money did not move (ledger.names).
FAILED_TRANSFERS = tuple(sorted(NOT_MOVED))
_USD_QUOTES = sql_in(tuple(sorted(USD_LIKE)))
_FLOW = (
    f"kind IN ('deposit', 'withdrawal') AND coalesce(lower(status), '') NOT IN "
    f"{sql_in(FAILED_TRANSFERS)}"
)

# DECIMAL(38,18) x DECIMAL(38,18) overflows DuckDB's 128-bit decimals, so SQL only pairs each
# snapshot row and transfer with its as-of USD price; Python multiplies.
#: Snapshot rows stamped after {since} (exchange set) and every deposit and withdrawal
#: (exchange NULL, signed amount), each with the asset's latest USD price at or before it.
_HISTORY_SQL = f"""
WITH usd_prices AS (
    SELECT asset, timestamp, price FROM prices WHERE upper(quote) IN {_USD_QUOTES}
),
rows AS (
    SELECT timestamp, exchange, asset, total AS amount FROM balance_snapshots {{since}}
    UNION ALL
    SELECT timestamp, NULL, asset, CASE WHEN kind = 'deposit' THEN amount ELSE -amount END
    FROM transfers WHERE {_FLOW}
)
SELECT r.timestamp, r.exchange, r.asset, r.amount, p.price
FROM rows r ASOF LEFT JOIN usd_prices p ON p.asset = r.asset AND p.timestamp <= r.timestamp
ORDER BY r.timestamp
"""

#: Rows recorded after a checkpoint (seq > ?) but stamped at or before its time (<= ?).
_BACKFILLED_SQL = f"""
SELECT count(*) FROM (
    SELECT 1 FROM balance_snapshots WHERE seq > $1 AND timestamp <= $2
    UNION ALL SELECT 1 FROM transfers WHERE seq > $1 AND timestamp <= $2 AND {_FLOW}
    UNION ALL SELECT 1 FROM prices WHERE seq > $1 AND timestamp <= $2
        AND upper(quote) IN {_USD_QUOTES}
)
"""


@dataclass
class Walk:
    """A walk through the snapshot batches, as it stands after the batches stamped <= `at`."""

    at: datetime | None = None
    latest: dict[str, Decimal] = field(default_factory=dict)  # each exchange's latest batch
    best: Decimal | None = None  # the highest value(t) - upto(t) so far
    upto: Decimal = ZERO  # the flows stamped <= at


def usd_then(asset: str, amount: Decimal, price: Decimal | None) -> Decimal:
    """A historical amount in USD: USD-like at 1, else its as-of price, else 0."""
    if is_usd_like(asset):
        return amount
    return amount * price if price is not None else ZERO


def snapshot_high(ledger: Ledger) -> Decimal | None:
    """The highest flow-adjusted portfolio value at any balance snapshot time, or None."""
    tables = ("balance_snapshots", "transfers", "prices", "control_events")
    return ledger.remembered("risk.snapshot_high", tables, lambda: _snapshot_high(ledger))


def _snapshot_high(ledger: Ledger) -> Decimal | None:
    walk, batches, flows = _resume(ledger)
    walk = _advance(walk, batches, flows)
    if walk.best is None:
        return None
    return walk.best + sum((usd for _, usd in flows), ZERO)


def record_checkpoint_if_due(ledger: Ledger, every: int = CHECKPOINT_EVERY) -> int | None:
    """Record a checkpoint once `every` snapshot rows came after the last; its seq, or None."""
    through = _checkpoint(ledger)[0]
    since = ledger.query("SELECT count(*) FROM balance_snapshots WHERE seq > ?", [through])
    if int(since[0][0]) < every:
        return None
    cutoff = now_utc() - CHECKPOINT_LAG
    walk, batches, flows = _resume(ledger)
    walk = _advance(walk, [b for b in batches if b[0] <= cutoff], flows)
    if walk.at is None:
        return None
    details = {
        "through_seq": ledger.head().seq,
        "at": walk.at.isoformat(),
        "latest": {k: str(v) for k, v in sorted(walk.latest.items())},
        "best": None if walk.best is None else str(walk.best),
        "upto": str(walk.upto),
    }
    return ledger.record_event(CHECKPOINT_KIND, details)


def _resume(
    ledger: Ledger,
) -> tuple[Walk, list[tuple[datetime, str, Decimal]], list[tuple[datetime, Decimal]]]:
    """The checkpoint's walk (or a new one), the batches after it, and every flow, in order."""
    through, walk = _checkpoint(ledger)
    if walk.at is not None and ledger.query(_BACKFILLED_SQL, [through, walk.at])[0][0]:
        log.info(
            "high-water checkpoint at seq %s predates rows recorded since: walking all", through
        )
        walk = Walk()
    since = "" if walk.at is None else "WHERE timestamp > $1"
    params = [] if walk.at is None else [walk.at]
    batches: dict[tuple[datetime, str], Decimal] = {}
    flows: list[tuple[datetime, Decimal]] = []
    for ts, exchange, asset, amount, price in ledger.query(
        _HISTORY_SQL.format(since=since), params
    ):
        if exchange is None:
            flows.append((ts, usd_then(asset, amount, price)))
        else:
            batches[(ts, exchange)] = batches.get((ts, exchange), ZERO) + usd_then(
                asset, amount, price
            )
    return walk, [(ts, ex, v) for (ts, ex), v in sorted(batches.items())], flows


def _advance(
    walk: Walk, batches: list[tuple[datetime, str, Decimal]], flows: list[tuple[datetime, Decimal]]
) -> Walk:
    """The walk carried through `batches` (sorted, all after walk.at); flows sorted by time."""
    out = Walk(walk.at, dict(walk.latest), walk.best, walk.upto)
    pending = [f for f in flows if walk.at is None or f[0] > walk.at]
    i = 0
    for n, (ts, exchange, value) in enumerate(batches):
        out.latest[exchange] = value
        if n + 1 < len(batches) and batches[n + 1][0] == ts:
            continue  # the portfolio at ts is known once every batch stamped ts is in
        while i < len(pending) and pending[i][0] <= ts:
            out.upto += pending[i][1]
            i += 1
        mark = sum(out.latest.values(), ZERO) - out.upto
        out.best = mark if out.best is None else max(out.best, mark)
        out.at = ts
    return out


def _checkpoint(ledger: Ledger) -> tuple[int, Walk]:
    """The latest usable checkpoint (its through_seq and walk), else (0, a new walk)."""
    found = checkpoints.latest(ledger, CHECKPOINT_KIND, _walk_of)
    return found if found is not None else (0, Walk())


def _walk_of(data: dict[str, Any]) -> Walk:
    return Walk(
        at=datetime.fromisoformat(data["at"]),
        latest={str(k): Decimal(v) for k, v in data["latest"].items()},
        best=None if data["best"] is None else Decimal(data["best"]),
        upto=Decimal(data["upto"]),
    )
