"""Reading every account's balances and keeping a snapshot of them in the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from ..errors import ConfigError, ExchangeError, SecretsError
from ..exchanges.base import Balance
from ..ledger.chain import now_utc
from ..ledger.store import Ledger
from ..money import is_usd_like
from ..workspace import Workspace
from .accounts import connect
from .pricing import usd_prices


@dataclass(frozen=True)
class BalancesReport:
    """Balances per account, and the accounts that could not be read."""

    balances: dict[str, dict[str, Balance]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def record_snapshot(
    ledger: Ledger,
    exchange: str,
    balances: Mapping[str, Balance],
    prices: Mapping[str, Decimal],
    stamp: datetime,
    source: str,
) -> None:
    """Append one account's balances and the USD prices that value them, stamped `stamp`.

    The risk limits take the latest snapshot as everything the account holds, so the
    snapshot must be whole; the prices let drawdown see the high-water mark later.
    """
    ledger.append(
        "balance_snapshots",
        [
            {
                "timestamp": stamp,
                "exchange": exchange,
                "asset": b.asset,
                "free": b.free,
                "used": b.used,
                "total": b.total,
                "source": source,
            }
            for b in balances.values()
            if b.total != Decimal(0)
        ],
    )
    ledger.append(
        "prices",
        [
            {"timestamp": stamp, "asset": a, "quote": "USD", "price": p, "source": source}
            for a, p in sorted(prices.items())
            if not is_usd_like(a)
        ],
    )


def read_balances(ws: Workspace, exchange: str | None = None) -> BalancesReport:
    """Fetch balances of every enabled account (or one) and record them as snapshots."""
    names = [exchange] if exchange else list(ws.config.enabled_exchanges())
    if exchange:
        ws.config.exchange(exchange)
    report = BalancesReport()
    fetched: list[tuple[str, dict[str, Balance], dict[str, Decimal], datetime]] = []
    for name in names:
        try:
            client = connect(ws, name)
            try:
                # Stamped before the read: a fill racing the read is counted twice, never lost.
                stamp = now_utc()
                report.balances[name] = held = client.fetch_balance()
                assets = [a for a, b in held.items() if b.total]
                fetched.append(
                    (name, held, usd_prices(client, client.load_markets(), assets), stamp)
                )
            finally:
                client.close()
        except (ExchangeError, SecretsError, ConfigError) as exc:  # this account only
            report.errors[name] = exc.message
    if fetched:
        with ws.open_ledger() as ledger, ledger.transaction():
            for name, held, prices, stamp in fetched:
                record_snapshot(ledger, name, held, prices, stamp, "balances")
    return report
