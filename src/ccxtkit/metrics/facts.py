"""Read the numbers behind the metrics out of an open ledger.

Everything here is derived from rows already in the ledger, so any process (a cron job, the
`metrics serve` exporter) computes the same values. Definitions, for people reading dashboards:

- orders: `trading_orders_total` counts rows of `orders` (one per order vhc created);
  filled/rejected count distinct orders with an `order_events.event` of `filled`, resp.
  `rejected` or `failed`.
- balance: per exchange, the rows of its latest `balance_snapshots` timestamp, valued with each
  asset's latest `prices` row quoted in a USD-like currency (USD and stablecoins count as 1).
- daily P&L, drawdown and prices: exactly the figures the risk limits and the kill switch's
  triggers use (`risk.figures`): today's *realised* PnL per exchange (sells against the average
  cost basis, minus fees; "today" in the config's time zone), the drawdown of the portfolio
  against its flow-adjusted high-water mark (a withdrawal is not a drawdown), absent when a
  held asset has no USD price, and each asset's latest price by timestamp.
- withdrawals pending: `withdraw.request` events whose subject (the request id) has no later
  `withdraw.approved|rejected|executed|expired|failed` event and is younger than
  `withdrawals.request_ttl_hours`.
"""

from __future__ import annotations

import json
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
    ledger: Ledger,
    now: datetime,
    day_start: datetime,
    request_ttl: timedelta,
    tz: str | None = None,
) -> LedgerFacts:
    """Compute every ledger-derived value; `day_start` is the start of "today" in UTC."""
    from ccxtkit.risk.figures import compute

    facts = LedgerFacts(head_seq=ledger.head().seq)
    _orders(ledger, facts)
    prices = latest_prices(ledger)
    _balances(ledger, facts, prices)
    _today(ledger, facts, prices, _naive(day_start))
    figures = compute(ledger, _aware_utc(now), tz, with_pnl=True)
    facts.pnl_daily_usd = dict(figures.pnl_by_exchange)
    facts.drawdown_pct = figures.drawdown_pct
    _control(ledger, facts, _naive(now), request_ttl)
    return facts


def _aware_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _naive(value: datetime) -> datetime:
    """Ledger TIMESTAMP columns hold naive UTC."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def aware(value: datetime) -> datetime:
    """A ledger timestamp as an aware UTC datetime."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _orders(ledger: Ledger, facts: LedgerFacts) -> None:
    """Orders created, filled, and rejected: by the exchange, or failed, or refused by a limit."""
    for exchange, n in ledger.query("SELECT exchange, count(*) FROM orders GROUP BY exchange"):
        facts.orders_total[exchange] = int(n)
    refused = ledger.query(
        "SELECT subject, count(*) FROM control_events WHERE kind = 'order.refused' "
        "AND coalesce(json_extract_string(details, '$.dry_run'), 'false') <> 'true' "
        "GROUP BY subject"
    )
    rows = ledger.query(
        "SELECT exchange, "
        "count(DISTINCT CASE WHEN event = 'filled' THEN client_order_id END), "
        "count(DISTINCT CASE WHEN event IN ('rejected', 'failed') THEN client_order_id END) "
        "FROM order_events GROUP BY exchange"
    )
    for exchange, filled, rejected in rows:
        facts.orders_filled[exchange] = int(filled)
        facts.orders_rejected[exchange] = int(rejected)
    for exchange, n in refused:  # a risk refusal is a rejected order that never left vhc
        if exchange:
            name = str(exchange)
            facts.orders_rejected[name] = facts.orders_rejected.get(name, 0) + int(n)


def latest_prices(ledger: Ledger) -> dict[str, Decimal]:
    """Each asset's latest USD price (quotes in stablecoins count as USD): `risk.figures`."""
    from ccxtkit.risk.figures import latest_prices as figures_prices

    return figures_prices(ledger)


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
    """Today's traded volume in USD per exchange (a trade with no USD value counts unpriced)."""
    trades = ledger.rows(
        "SELECT exchange, upper(quote) AS quote, cost, total_usd "
        "FROM trades WHERE timestamp >= ? ORDER BY seq",
        [since],
    )
    for t in trades:
        exchange = t["exchange"]
        cost_usd = _cost_usd(t, prices)
        if cost_usd is None:
            facts.unpriced_assets[exchange] = facts.unpriced_assets.get(exchange, 0) + 1
            continue
        facts.volume_daily_usd[exchange] = facts.volume_daily_usd.get(exchange, ZERO) + cost_usd


def _cost_usd(trade: dict[str, Any], marks: dict[str, Decimal]) -> Decimal | None:
    if trade["total_usd"] is not None:
        return to_decimal(trade["total_usd"])
    quote_usd = usd_price(trade["quote"], marks)
    return None if quote_usd is None else to_decimal(trade["cost"]) * quote_usd


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
