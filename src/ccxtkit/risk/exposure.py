"""The exposure snapshot the risk limits need, built from the ledger with DuckDB aggregates.

Everything is summed inside DuckDB in one pass over `trades` (no Python loop over trades),
so a ledger of a million trades costs tens of milliseconds. The rules:

- **Day**: today is the calendar day of `now` in `tz` (the config's `timezone`), UTC when
  unset: from local midnight up to (not including) the next, converted to UTC.
- **Holdings** per (exchange, asset): the exchange's latest balance snapshot (all
  `balance_snapshots` rows of that exchange stamped with its latest timestamp, so record a
  snapshot as the account's full balance under one timestamp), plus everything after it: trades (base +amount on a buy,
  -amount on a sell; quote -cost on a buy, +cost on a sell; -fee in fee_currency) and
  transfers (deposit +amount, withdrawal -amount; -fee in its currency or the asset;
  rows whose status is failed/canceled/cancelled/rejected are left out). An exchange with
  no snapshot is the sum of its whole trade and transfer history. A trade or transfer
  stamped exactly at the snapshot time is taken to be in the snapshot.
- **Positions** are holdings summed across accounts and valued at `prices_usd` (asset ->
  USD price; USD-like assets are 1). A held asset without a price is listed in
  `unpriced`, never valued at zero silently; the limits refuse orders that need it.
- **Portfolio value** is the sum of the priced positions. Its **high-water mark** is the
  highest of: the value now, and the value at every balance snapshot time, where the
  portfolio then is each exchange's latest snapshot at or before that time, valued with
  the `prices` table (the latest USD-like-quoted price of the asset at or before the
  snapshot; an asset with no recorded price then counts 0 at that point), adjusted by the
  deposits and withdrawals after it (valued the same way), so that withdrawing capital or
  profits is not mistaken for a drawdown and a deposit is not mistaken for a gain.
- **Daily volume**: the USD value of today's trades on every exchange, both sides: the
  trade's `total_usd`, else its cost when the quote is USD-like, else cost x the quote's
  price in `prices_usd`. A quote with neither is listed in `volume_unpriced`.
- **Open orders**: orders (distinct exchange + client_order_id) whose latest
  `order_events` row (by seq) is not terminal, or that have no event yet (an intent whose
  fate is unknown may be live on the exchange). Terminal: event filled, canceled,
  rejected, failed, expired, not_found, or a ccxt status closed/canceled/expired/rejected.
- **Pending**: what is left to fill of each open order (amount - filled) counts as if it
  filled: a buy adds remaining x the base's USD price to the base's position, a sell for a
  non-USD quote adds its proceeds to the quote's position, and every remainder adds its
  worst-case value (the limit, or the market when higher for a sell, or when it is a market
  order) to today's volume. A cancelled or expired remainder is terminal and counts no more.
- **Realised PnL today** (an approximation, no lot matching; only with `with_pnl=True` or
  `realised_pnl_today`, because it reads every buy of the assets sold today): for each
  asset, today's sells' USD proceeds minus amount sold x the asset's average USD buy price
  over all history (buy fees not included), minus today's fees valued in USD (fees in a
  currency without a price are left out). Good enough for a daily-loss trigger; the tax
  module does the exact lots. The all-time buys are summed incrementally from the ledger's
  latest `risk.cost_basis` checkpoint (`risk.cost_basis`).

Speed: holdings read only the trades after the earliest latest-snapshot (DuckDB skips older
row groups by their min/max timestamps) plus, in full, those of exchanges never snapshotted;
so take balance snapshots regularly (reconcile, `vhc balances`). Today's volume reads
today's row groups only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from ccxtkit.ledger.store import Ledger
from ccxtkit.money import USD_LIKE, is_usd_like
from ccxtkit.risk.cost_basis import COST_UNVALUED_SQL, TRADE_USD_SQL, buy_sums
from ccxtkit.risk.high_water import FAILED_TRANSFERS, snapshot_high
from ccxtkit.risk.limits import Exposure
from ccxtkit.risk.open_orders import unsettled
from ccxtkit.risk.pending import pending_exposure
from ccxtkit.risk.pending import sql_in as _in

ZERO = Decimal(0)
_USD_LIKE = tuple(sorted(USD_LIKE))


def day_start_utc(now: datetime, tz: str | None = None) -> datetime:
    """Midnight of `now`'s day in `tz` (UTC if None), as naive UTC like the ledger stores."""
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    zone = ZoneInfo(tz) if tz else UTC
    local = aware.astimezone(zone)
    midnight = datetime.combine(local.date(), time(0), tzinfo=zone)
    return midnight.astimezone(UTC).replace(tzinfo=None)


def day_bounds_utc(now: datetime, tz: str | None = None) -> tuple[datetime, datetime]:
    """[start, end) of `now`'s day in `tz` as naive UTC; 23 or 25 hours long on DST days."""
    start = day_start_utc(now, tz)
    # Any instant 26 h after local midnight lies in the next local day, DST or not.
    end = day_start_utc(start.replace(tzinfo=UTC) + timedelta(hours=26), tz)
    return start, end


_LAST_SNAP = """
    SELECT exchange, max(timestamp) AS ts FROM balance_snapshots GROUP BY exchange
"""


# Trades after each exchange's latest snapshot: the timestamp bound (the earliest of those
# snapshots) lets DuckDB skip row groups by their min/max, so only recent trades are read.
_POSITIONS_SNAPPED_SQL = f"""
WITH last_snap AS ({_LAST_SNAP})
SELECT t.asset, t.quote, t.fee_currency, t.side, sum(t.amount), sum(t.cost), sum(t.fee)
FROM trades t JOIN last_snap l ON t.exchange = l.exchange
WHERE t.timestamp > ? AND t.timestamp > l.ts
GROUP BY ALL
"""

#: Exchanges with no snapshot at all are summed over their whole history ({where} is ours).
_POSITIONS_UNSNAPPED_SQL = """
SELECT asset, quote, fee_currency, side, sum(amount), sum(cost), sum(fee)
FROM trades {where} GROUP BY ALL
"""

_TODAY_SQL = f"""
SELECT exchange, asset, quote, fee_currency, side, sum(amount), sum({TRADE_USD_SQL}),
       {COST_UNVALUED_SQL}, sum(fee)
FROM trades WHERE timestamp >= ? AND timestamp < ? GROUP BY ALL
"""

_BALANCES_SQL = f"""
WITH last_snap AS ({_LAST_SNAP}),
moves AS (
    SELECT b.asset, b.total AS qty
    FROM balance_snapshots b JOIN last_snap l ON b.exchange = l.exchange AND b.timestamp = l.ts
    UNION ALL
    SELECT x.asset, CASE WHEN x.kind = 'deposit' THEN x.amount ELSE -x.amount END
    FROM transfers x LEFT JOIN last_snap l ON x.exchange = l.exchange
    WHERE x.kind IN ('deposit', 'withdrawal') AND (l.ts IS NULL OR x.timestamp > l.ts)
      AND coalesce(lower(x.status), '') NOT IN {_in(FAILED_TRANSFERS)}
    UNION ALL
    SELECT coalesce(x.fee_currency, x.asset), -x.fee
    FROM transfers x LEFT JOIN last_snap l ON x.exchange = l.exchange
    WHERE x.fee IS NOT NULL AND x.fee <> 0 AND (l.ts IS NULL OR x.timestamp > l.ts)
      AND coalesce(lower(x.status), '') NOT IN {_in(FAILED_TRANSFERS)}
)
SELECT asset, sum(qty) FROM moves GROUP BY asset
"""


def _price(asset: str | None, prices_usd: Mapping[str, Decimal]) -> Decimal | None:
    if asset is None:
        return None
    if is_usd_like(asset):
        return Decimal(1)
    return prices_usd.get(asset)


def build_exposure(
    ledger: Ledger,
    prices_usd: Mapping[str, Decimal],
    now: datetime,
    tz: str | None = None,
    free_balances: Mapping[str, Decimal] | None = None,
    with_pnl: bool = False,
) -> Exposure:
    """Read the ledger once and return the Exposure the limits check an order against.

    `with_pnl` also fills realised_pnl_today_usd, which reads every buy of the assets sold
    today (a full scan of `trades`): the pre-trade checks do not need it, the kill switch's
    daily-loss trigger does.
    """
    day = day_bounds_utc(now, tz)
    with localcontext() as ctx:
        ctx.prec = 120  # sums of DECIMAL(38,18) amounts times prices must not round
        return _build(ledger, prices_usd, now, day, dict(free_balances or {}), with_pnl)


def realised_pnl_today(
    ledger: Ledger, prices_usd: Mapping[str, Decimal], now: datetime, tz: str | None = None
) -> Decimal:
    """Today's realised PnL in USD (the average-cost approximation of the module docstring)."""
    day = day_bounds_utc(now, tz)
    with localcontext() as ctx:
        ctx.prec = 120
        by_exchange = _pnl_by_exchange(ledger, _today(ledger, prices_usd, day), prices_usd)
        return sum(by_exchange.values(), ZERO)


def _pnl_by_exchange(
    ledger: Ledger, today: _Today, prices_usd: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """Today's realised PnL per exchange: its sells' realised result minus its fees."""
    realised = _realised(ledger, today.sold, prices_usd)
    names = sorted(set(realised) | set(today.fees_usd))
    return {n: realised.get(n, ZERO) - today.fees_usd.get(n, ZERO) for n in names}


def _holdings(ledger: Ledger) -> dict[str, Decimal]:
    """Units held per asset across accounts: latest snapshots + trades and transfers since."""
    qty: dict[str, Decimal] = {}

    def add(asset: str | None, amount: Any) -> None:
        if asset is not None and amount:
            qty[asset] = qty.get(asset, ZERO) + Decimal(amount)

    snapped = ledger.query(_LAST_SNAP)
    rows = []
    if snapped:
        cutoff = min(ts for _, ts in snapped)
        rows += ledger.query(_POSITIONS_SNAPPED_SQL, [cutoff])
        where = "WHERE exchange NOT IN (" + ", ".join("?" for _ in snapped) + ")"
        rows += ledger.query(_POSITIONS_UNSNAPPED_SQL.format(where=where), [e for e, _ in snapped])
    else:
        rows += ledger.query(_POSITIONS_UNSNAPPED_SQL.format(where=""))
    for asset, quote, fee_cur, side, amount, cost, fee in rows:
        sign = 1 if side == "buy" else -1
        add(asset, sign * amount)
        add(quote, -sign * cost)
        add(fee_cur, -(fee or ZERO))
    for asset, amount in ledger.query(_BALANCES_SQL):
        add(asset, amount)
    return qty


@dataclass
class _Today:
    volume_usd: Decimal = ZERO
    fees_usd: dict[str, Decimal] = field(default_factory=dict)  # per exchange
    volume_unpriced: set[str] = field(default_factory=set)
    #: (exchange, asset) -> (amount sold, USD proceeds)
    sold: dict[tuple[str, str], tuple[Decimal, Decimal]] = field(default_factory=dict)


def _today(
    ledger: Ledger, prices_usd: Mapping[str, Decimal], day: tuple[datetime, datetime]
) -> _Today:
    """Today's volume in USD, fees in USD, and what was sold (for the PnL approximation)."""
    out = _Today()
    for exchange, asset, quote, fee_cur, side, amount, known_usd, cost_x, fee in ledger.query(
        _TODAY_SQL, list(day)
    ):
        quote_price = _price(quote, prices_usd)
        if cost_x and quote_price is None:
            out.volume_unpriced.add(quote)
        # Trades lacking total_usd in a non-USD quote are valued at the quote's price now.
        value = (known_usd or ZERO) + (cost_x or ZERO) * (quote_price or ZERO)
        out.volume_usd += value
        if side == "sell":
            prev_amount, prev_usd = out.sold.get((exchange, asset), (ZERO, ZERO))
            out.sold[(exchange, asset)] = (prev_amount + amount, prev_usd + value)
        fee_price = _price(fee_cur, prices_usd)
        if fee and fee_price is not None:
            out.fees_usd[exchange] = out.fees_usd.get(exchange, ZERO) + fee * fee_price
    return out


def _build(
    ledger: Ledger,
    prices_usd: Mapping[str, Decimal],
    now: datetime,
    day: tuple[datetime, datetime],
    free: dict[str, Decimal],
    with_pnl: bool,
) -> Exposure:
    qty = _holdings(ledger)
    today = _today(ledger, prices_usd, day)
    positions: dict[str, Decimal] = {}
    unpriced: set[str] = set()
    for asset, amount in qty.items():
        price = _price(asset, prices_usd)
        if price is None:
            if amount != 0:
                unpriced.add(asset)
            continue
        positions[asset] = amount * price
    portfolio = sum(positions.values(), ZERO)
    pending = [
        (s.symbol, s.side, s.type, s.amount, s.price, s.filled)
        for s in unsettled(ledger)
        if not s.status_terminal
    ]
    pend = pending_exposure(pending, prices_usd, unpriced)
    snap_high = snapshot_high(ledger)
    pnl_by = _pnl_by_exchange(ledger, today, prices_usd) if with_pnl else None
    pnl = None if pnl_by is None else sum(pnl_by.values(), ZERO)
    return Exposure(
        daily_volume_usd=today.volume_usd,
        positions_usd=positions,
        portfolio_usd=portfolio,
        high_water_usd=portfolio if snap_high is None else max(portfolio, snap_high),
        open_orders=len(pending),
        free_balances=free,
        realised_pnl_today_usd=pnl,
        realised_pnl_by_exchange=pnl_by or {},
        quantities=qty,
        unpriced=frozenset(unpriced),
        volume_unpriced=frozenset(today.volume_unpriced | pend.volume_unpriced),
        as_of=now,
        pending_usd=pend.positions,
        pending_volume_usd=pend.volume,
        pending_assets=frozenset(pend.positions),
    )


def _realised(
    ledger: Ledger,
    sold: Mapping[tuple[str, str], tuple[Decimal, Decimal]],
    prices_usd: Mapping[str, Decimal],
) -> dict[str, Decimal]:
    """Per exchange: its sells' proceeds minus amount x the asset's all-time average USD buy
    price (across every account: one cost basis per asset, as the firm holds it)."""
    if not sold:
        return {}
    bought: dict[str, tuple[Decimal, Decimal]] = {}
    for (asset, quote), sums in buy_sums(ledger, {a for _, a in sold}).items():
        rate = _price(quote, prices_usd) or ZERO
        prev_amount, prev_usd = bought.get(asset, (ZERO, ZERO))
        value = sums.known_usd + sums.unvalued_cost * rate
        bought[asset] = (prev_amount + sums.amount, prev_usd + value)
    pnl: dict[str, Decimal] = {}
    for (exchange, asset), (amount, proceeds) in sold.items():
        b_amount, b_usd = bought.get(asset, (ZERO, ZERO))
        average = b_usd / b_amount if b_amount else ZERO
        pnl[exchange] = pnl.get(exchange, ZERO) + proceeds - amount * average
    return pnl
