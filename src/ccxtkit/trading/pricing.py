"""USD prices of assets from an exchange's tickers (stablecoins count as one dollar)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from ..errors import ExchangeError
from ..exchanges.base import ExchangeClient, Market, Ticker
from ..logs import log
from ..money import USD_LIKE, is_usd_like

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
        symbol = next((f"{asset}/{q}" for q in _USD_QUOTES if f"{asset}/{q}" in markets), None)
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


__all__ = ["USD_LIKE", "usd_prices"]
