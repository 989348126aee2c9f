"""Reading every account's balances and keeping a snapshot of them in the ledger."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ..errors import ExchangeError, SecretsError
from ..exchanges.base import Balance
from ..ledger.chain import now_utc
from ..money import is_usd_like
from ..workspace import Workspace
from .accounts import connect
from .pricing import usd_prices


@dataclass(frozen=True)
class BalancesReport:
    """Balances per account, and the accounts that could not be read."""

    balances: dict[str, dict[str, Balance]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def read_balances(ws: Workspace, exchange: str | None = None) -> BalancesReport:
    """Fetch balances of every enabled account (or one) and record them as snapshots."""
    names = [exchange] if exchange else list(ws.config.enabled_exchanges())
    if exchange:
        ws.config.exchange(exchange)
    report = BalancesReport()
    prices: dict[str, Decimal] = {}
    for name in names:
        try:
            client = connect(ws, name)
            try:
                report.balances[name] = held = client.fetch_balance()
                # Valuing the snapshot now is what lets drawdown see the high-water mark later.
                missing = [a for a, b in held.items() if b.total and a not in prices]
                prices.update(usd_prices(client, client.load_markets(), missing))
            finally:
                client.close()
        except (ExchangeError, SecretsError) as exc:
            report.errors[name] = exc.message
    stamp = now_utc()
    price_rows = [
        {"timestamp": stamp, "asset": a, "quote": "USD", "price": p, "source": "balances"}
        for a, p in sorted(prices.items())
        if not is_usd_like(a)
    ]
    rows = [
        {
            "timestamp": stamp,
            "exchange": name,
            "asset": b.asset,
            "free": b.free,
            "used": b.used,
            "total": b.total,
            "source": "balances",
        }
        for name, per_asset in report.balances.items()
        for b in per_asset.values()
        if b.total != Decimal(0)
    ]
    if rows:
        with ws.open_ledger() as ledger, ledger.transaction():
            ledger.append("balance_snapshots", rows)
            ledger.append("prices", price_rows)
    return report
