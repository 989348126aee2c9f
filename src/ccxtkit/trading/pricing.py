"""USD prices of assets from an exchange's tickers (stablecoins count as one dollar)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ..errors import ExchangeError
from ..exchanges.base import ExchangeClient, Market, Ticker
from ..logs import log
from ..money import USD_LIKE, is_usd_like

if TYPE_CHECKING:
    from ..ledger.store import Ledger

#: Quotes tried, in order, to value an asset in USD.
_USD_QUOTES = ("USD", "USDC", "USDT")


def usd_prices(
    client: ExchangeClient,
    markets: Mapping[str, Market],
    assets: Iterable[str],
    known: Iterable[Ticker] = (),
) -> dict[str, Decimal]:
    """The USD price of each asset the exchange can price; assets it cannot are left out.

    `known`: tickers already read in this run, used instead of asking again.
    """
    prices: dict[str, Decimal] = {}
    tickers = {t.symbol: t for t in known}
    for asset in sorted({a.upper() for a in assets if a}):
        if is_usd_like(asset):
            prices[asset] = Decimal(1)
            continue
        symbol = _usd_symbol(asset, markets)
        if symbol is None:
            continue
        if symbol in tickers:
            prices[asset] = tickers[symbol].last
            continue
        try:
            prices[asset] = client.fetch_ticker(symbol).last
        except ExchangeError as exc:
            log.warning("no USD price for %s from %s: %s", asset, symbol, exc.message)
    return prices


def needs_tickers(
    markets: Mapping[str, Market], assets: Iterable[str], known: Iterable[Ticker] = ()
) -> bool:
    """Whether `usd_prices` of these assets would ask the exchange for a ticker."""
    tickers = {t.symbol for t in known}
    for asset in {a.upper() for a in assets if a}:
        symbol = None if is_usd_like(asset) else _usd_symbol(asset, markets)
        if symbol is not None and symbol not in tickers:
            return True
    return False


def _usd_symbol(asset: str, markets: Mapping[str, Market]) -> str | None:
    """The market that prices `asset` in USD (or a stablecoin), if the exchange lists one."""
    return next((f"{asset}/{q}" for q in _USD_QUOTES if f"{asset}/{q}" in markets), None)


#: A recorded exchange rate older than this does not value an order (weekends included).
RATE_MAX_AGE = timedelta(days=4)
RATE_PLACES = Decimal("1e-12")


def recorded_usd_rates(
    ledger: Ledger, currencies: Iterable[str], now: datetime | None = None
) -> dict[str, Decimal]:
    """USD per unit of each currency from the ledger's `prices` table (`prices fetch`).

    A row `INR/USD` gives the rate itself, a row `USD/INR` its inverse; the latest row not
    older than `RATE_MAX_AGE` counts. Currencies without one are left out: the risk limits then
    refuse the order (exit 3) rather than guess.
    """
    moment = now or datetime.now(UTC)
    out: dict[str, Decimal] = {}
    for currency in {c.upper() for c in currencies}:
        rows = ledger.query(
            "SELECT timestamp, asset, quote, price FROM prices "
            "WHERE ((upper(asset) = ? AND upper(quote) IN ('USD', 'USDC', 'USDT')) "
            "OR (upper(asset) = 'USD' AND upper(quote) = ?)) AND price > 0 "
            "ORDER BY timestamp DESC LIMIT 1",
            [currency, currency],
        )
        if not rows:
            continue
        stamp, asset, _quote, price = rows[0]
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        if moment - stamp > RATE_MAX_AGE:
            log.warning("the recorded USD rate of %s is from %s: too old to use", currency, stamp)
            continue
        price = Decimal(price)
        rate = price if str(asset).upper() == currency else Decimal(1) / price
        out[currency] = rate.quantize(RATE_PLACES)  # the ledger keeps 18 places of a product
    return out


__all__ = ["USD_LIKE", "recorded_usd_rates", "usd_prices"]
