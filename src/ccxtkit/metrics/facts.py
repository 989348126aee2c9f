"""Read the numbers behind the metrics out of an open ledger.

Everything here is derived from rows already in the ledger, so any process (a cron job, the
`metrics serve` exporter) computes the same values. Definitions, for people reading dashboards:

- orders: `trading_orders_total` counts rows of `orders` (one per order vhc created);
  filled/rejected count distinct orders with an `order_events.event` of `filled`, resp.
  `rejected` or `failed`.
- balance: per exchange, the rows of its latest `balance_snapshots` timestamp, valued with each
  asset's latest `prices` row quoted in a USD-like currency (USD and stablecoins count as 1).
- daily P&L: the profit of *today's trades* marked at the latest price: for a buy,
  amount x mark - cost - fee; for a sell, cost - amount x mark - fee (all in USD). Price moves of
  positions held at the start of the day are not included. "Today" is the config's time zone
  (UTC when unset).
- drawdown: portfolio value over time from every balance snapshot (each exchange's latest
  snapshot at or before each snapshot time, valued with the price known at that time), against
  its running maximum. Deposits and withdrawals move it too: read it next to the transfers.
- withdrawals pending: `withdraw.request` events whose subject (the request id) has no later
  `withdraw.approved|rejected|executed|expired|failed` event and is younger than
  `withdrawals.request_ttl_hours`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ccxtkit.ledger.store import Ledger
from ccxtkit.money import USD_LIKE, ZERO, is_usd_like, to_decimal

_USD_LIST = ", ".join(f"'{c}'" for c in sorted(USD_LIKE))
_WITHDRAW_DONE = {"approved", "rejected", "executed", "expired", "failed"}


@dataclass
class LedgerFacts:
    """The ledger-derived values one metrics collection exports."""

    head_seq: int = 0
    orders_total: dict[str, int] = field(default_factory=dict)
    orders_filled: dict[str, int] = field(default_factory=dict)
    orders_rejected: dict[str, int] = field(default_factory=dict)
    balance_usd: dict[str, Decimal] = field(default_factory=dict)
    positions_usd: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    unpriced_assets: dict[str, int] = field(default_factory=dict)
    pnl_daily_usd: dict[str, Decimal] = field(default_factory=dict)
    volume_daily_usd: dict[str, Decimal] = field(default_factory=dict)
    drawdown_pct: Decimal | None = None
    discrepancy_usd: dict[str, Decimal] = field(default_factory=dict)
    last_reconcile: datetime | None = None
    last_reconcile_success: datetime | None = None
    withdrawals_pending: int = 0
    verify_ok: bool | None = None
    last_verify: datetime | None = None
    exchange_health: dict[str, tuple[bool, datetime]] = field(default_factory=dict)


def read_facts(
    ledger: Ledger, now: datetime, day_start: datetime, request_ttl: timedelta
) -> LedgerFacts:
    """Compute every ledger-derived value; `day_start` is the start of "today" in UTC."""
    facts = LedgerFacts(head_seq=ledger.head().seq)
    _orders(ledger, facts)
    prices = latest_prices(ledger)
    _balances(ledger, facts, prices)
    _today(ledger, facts, prices, _naive(day_start))
    facts.drawdown_pct = drawdown_pct(ledger)
    _control(ledger, facts, _naive(now), request_ttl)
    return facts


def _naive(value: datetime) -> datetime:
    """Ledger TIMESTAMP columns hold naive UTC."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def aware(value: datetime) -> datetime:
    """A ledger timestamp as an aware UTC datetime."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _orders(ledger: Ledger, facts: LedgerFacts) -> None:
    for exchange, n in ledger.query("SELECT exchange, count(*) FROM orders GROUP BY exchange"):
        facts.orders_total[exchange] = int(n)
    rows = ledger.query(
        "SELECT exchange, "
        "count(DISTINCT CASE WHEN event = 'filled' THEN client_order_id END), "
        "count(DISTINCT CASE WHEN event IN ('rejected', 'failed') THEN client_order_id END) "
        "FROM order_events GROUP BY exchange"
    )
    for exchange, filled, rejected in rows:
        facts.orders_filled[exchange] = int(filled)
        facts.orders_rejected[exchange] = int(rejected)


def latest_prices(ledger: Ledger) -> dict[str, Decimal]:
    """Each asset's latest USD price (quotes in stablecoins count as USD)."""
    rows = ledger.query(
        "SELECT upper(asset), arg_max(price, seq) FROM prices "
        f"WHERE upper(quote) IN ({_USD_LIST}) GROUP BY upper(asset)"
    )
    return {asset: to_decimal(price) for asset, price in rows}


def usd_price(asset: str, prices: dict[str, Decimal]) -> Decimal | None:
    """USD value of one unit of `asset`, or None when no price is known."""
    if is_usd_like(asset):
        return Decimal(1)
    return prices.get(asset.upper())


def _balances(ledger: Ledger, facts: LedgerFacts, prices: dict[str, Decimal]) -> None:
    rows = ledger.query(
        "SELECT b.exchange, b.asset, arg_max(b.total, b.seq) FROM balance_snapshots b "
        "JOIN (SELECT exchange, max(timestamp) AS ts FROM balance_snapshots GROUP BY exchange) l "
        "ON b.exchange = l.exchange AND b.timestamp = l.ts GROUP BY b.exchange, b.asset"
    )
    for exchange, asset, total in rows:
        amount = to_decimal(total)
        facts.balance_usd.setdefault(exchange, ZERO)
        price = usd_price(asset, prices)
        if price is None:
            if amount:
                facts.unpriced_assets[exchange] = facts.unpriced_assets.get(exchange, 0) + 1
            continue
        value = amount * price
        facts.balance_usd[exchange] += value
        if not is_usd_like(asset):
            facts.positions_usd[(exchange, asset)] = value


def _today(ledger: Ledger, facts: LedgerFacts, prices: dict[str, Decimal], since: datetime) -> None:
    trades = ledger.rows(
        "SELECT exchange, upper(asset) AS asset, upper(quote) AS quote, side, amount, price, "
        "cost, fee, upper(fee_currency) AS fee_currency, total_usd "
        "FROM trades WHERE timestamp >= ? ORDER BY seq",
        [since],
    )
    marks = dict(prices)
    for t in trades:  # a traded asset without a price row is marked at its latest trade price
        quote_usd = usd_price(t["quote"], prices)
        if t["asset"] not in prices and quote_usd is not None:
            marks[t["asset"]] = to_decimal(t["price"]) * quote_usd
    for t in trades:
        exchange = t["exchange"]
        cost_usd = _cost_usd(t, marks)
        mark = marks.get(t["asset"])
        if cost_usd is None or mark is None:
            facts.unpriced_assets[exchange] = facts.unpriced_assets.get(exchange, 0) + 1
            continue
        fee_usd = ZERO
        if t["fee"] is not None and t["fee_currency"]:
            fee_price = usd_price(t["fee_currency"], marks)
            fee_usd = to_decimal(t["fee"]) * (fee_price or ZERO)
        held = to_decimal(t["amount"]) * mark
        pnl = held - cost_usd if t["side"] == "buy" else cost_usd - held
        facts.pnl_daily_usd[exchange] = facts.pnl_daily_usd.get(exchange, ZERO) + pnl - fee_usd
        facts.volume_daily_usd[exchange] = facts.volume_daily_usd.get(exchange, ZERO) + cost_usd


def _cost_usd(trade: dict[str, Any], marks: dict[str, Decimal]) -> Decimal | None:
    if trade["total_usd"] is not None:
        return to_decimal(trade["total_usd"])
    quote_usd = usd_price(trade["quote"], marks)
    return None if quote_usd is None else to_decimal(trade["cost"]) * quote_usd


def drawdown_pct(ledger: Ledger) -> Decimal | None:
    """Percent below the high-water mark of portfolio value over all balance snapshots."""
    rows = ledger.query(
        "SELECT b.timestamp, b.exchange, upper(b.asset), b.total, p.price "
        "FROM balance_snapshots b ASOF LEFT JOIN "
        f"(SELECT upper(asset) AS asset, timestamp, price FROM prices "
        f" WHERE upper(quote) IN ({_USD_LIST})) p "
        "ON upper(b.asset) = p.asset AND b.timestamp >= p.timestamp "
        "ORDER BY b.timestamp, b.exchange"
    )
    if not rows:
        return None
    fallback = latest_prices(ledger)
    # value of each (time, exchange) snapshot
    snapshots: dict[tuple[datetime, str], Decimal] = defaultdict(lambda: ZERO)
    for ts, exchange, asset, total, price in rows:
        unit = Decimal(1) if is_usd_like(asset) else price
        if unit is None:
            unit = fallback.get(asset, ZERO)
        snapshots[(ts, exchange)] += to_decimal(total) * to_decimal(unit)
    by_time: dict[datetime, dict[str, Decimal]] = defaultdict(dict)
    for (ts, exchange), value in snapshots.items():
        by_time[ts][exchange] = value
    latest: dict[str, Decimal] = {}
    high = current = ZERO
    for ts in sorted(by_time):  # all exchanges snapshotted at one time move together
        latest.update(by_time[ts])
        current = sum(latest.values(), ZERO)
        high = max(high, current)
    if high <= 0:
        return None
    return (high - current) / high * 100


def _details(text: str | None) -> dict[str, Any]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _control(ledger: Ledger, facts: LedgerFacts, now: datetime, ttl: timedelta) -> None:
    events = ledger.query(
        "SELECT kind, subject, timestamp, details FROM control_events WHERE kind IN "
        "('reconcile.completed', 'ledger.verify', 'exchange.health') OR kind LIKE 'withdraw.%' "
        "ORDER BY seq"
    )
    requested: dict[str, datetime] = {}
    for kind, subject, ts, text in events:  # oldest first: later events overwrite earlier ones
        details = _details(text)
        if kind == "reconcile.completed":
            facts.last_reconcile = aware(ts)
            if details.get("ok") is True:
                facts.last_reconcile_success = aware(ts)
            found = details.get("discrepancy_usd")
            for exchange, amount in (found if isinstance(found, dict) else {}).items():
                try:
                    facts.discrepancy_usd[str(exchange)] = abs(to_decimal(amount))
                except Exception:  # noqa: BLE001, S112 - one bad value must not hide the rest
                    continue
        elif kind == "ledger.verify":
            facts.verify_ok = details.get("ok") is True
            facts.last_verify = aware(ts)
        elif kind == "exchange.health":
            name = subject or details.get("exchange")
            if name:
                facts.exchange_health[str(name)] = (details.get("ok") is True, aware(ts))
        elif kind == "withdraw.request" and subject:
            requested[subject] = ts
        elif kind.removeprefix("withdraw.") in _WITHDRAW_DONE and subject:
            requested.pop(subject, None)
    facts.withdrawals_pending = sum(1 for ts in requested.values() if now - ts < ttl)
