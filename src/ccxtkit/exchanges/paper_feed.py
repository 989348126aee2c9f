"""Prices for the paper exchange: a deterministic simulated feed, or a real public ticker.

The simulated price of an asset is a pure function of the asset and the minute: a fixed
anchor moved by seeded noise at three scales (day, hour, minute), linearly interpolated,
so it drifts smoothly, stays within about ±10% of the anchor, and is the same on every
machine and every run. All arithmetic is Decimal (integers from a hash), no floats.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from ccxtkit.errors import ExchangeError
from ccxtkit.money import is_usd_like, to_decimal

from .base import Candle, Market

#: USD anchors of the simulated assets.
ANCHORS: dict[str, Decimal] = {
    "BTC": Decimal("60000"),
    "ETH": Decimal("3000"),
    "SOL": Decimal("150"),
}
#: Amplitude of each noise scale (minutes per knot → share of the anchor).
_SCALES: tuple[tuple[int, Decimal], ...] = (
    (1440, Decimal("0.08")),
    (60, Decimal("0.02")),
    (1, Decimal("0.002")),
)
_ONE_MILLION = 1_000_000


def _noise(asset: str, scale: int, knot: int) -> Decimal:
    """A seeded value in [-1, 1] for one knot of one scale."""
    digest = hashlib.sha256(f"vhc-paper:{asset}:{scale}:{knot}".encode()).digest()
    n = int.from_bytes(digest[:8], "big") % (2 * _ONE_MILLION + 1) - _ONE_MILLION
    return Decimal(n) / _ONE_MILLION


def _smooth(asset: str, scale: int, minute: int) -> Decimal:
    knot, offset = divmod(minute, scale)
    a, b = _noise(asset, scale, knot), _noise(asset, scale, knot + 1)
    return a + (b - a) * Decimal(offset) / Decimal(scale)


def minute_of(when: datetime) -> int:
    """Minutes since the Unix epoch (UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp()) // 60


def usd_price(asset: str, when: datetime) -> Decimal:
    """The simulated USD price of an asset at a time (stablecoins and USD are exactly 1)."""
    asset = asset.upper()
    if is_usd_like(asset):
        return Decimal(1)
    anchor = ANCHORS.get(asset)
    if anchor is None:
        raise ExchangeError(f"paper exchange has no price for {asset}")
    minute = minute_of(when)
    factor = Decimal(1) + sum(
        (amp * _smooth(asset, scale, minute) for scale, amp in _SCALES), Decimal(0)
    )
    return anchor * factor


def simulated_price(base: str, quote: str, when: datetime, step: Decimal) -> Decimal:
    """The simulated price of base in quote at `when`, rounded to the market's price step."""
    price = usd_price(base, when) / usd_price(quote, when)
    return price.quantize(step, rounding=ROUND_HALF_UP)


class TickerSource:
    """Last prices from a real exchange's public ticker via ccxt (cached a few seconds)."""

    def __init__(self, ccxt_id: str, ttl_seconds: float = 10.0) -> None:
        self.ccxt_id = ccxt_id
        self.ttl = ttl_seconds
        self._exchange: Any = None
        self._cache: dict[str, tuple[float, Decimal]] = {}

    def price(self, symbol: str) -> Decimal:
        """The exchange's last price of `symbol`."""
        cached = self._cache.get(symbol)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            if self._exchange is None:
                import ccxt

                self._exchange = getattr(ccxt, self.ccxt_id)({"enableRateLimit": True})
            ticker = self._exchange.fetch_ticker(symbol)
        except Exception as exc:  # any failure of the price source is an exchange error
            raise ExchangeError(
                f"paper price source {self.ccxt_id}: no ticker for {symbol} "
                f"({type(exc).__name__}); set `paper: {{price_source: simulated}}` to work offline"
            ) from None
        value = ticker.get("last") or ticker.get("close")
        price = to_decimal(value, f"{symbol} last price")
        self._cache[symbol] = (time.monotonic(), price)
        return price


def simulated_candles(
    market: Market, minutes: int, since: datetime, now: datetime, limit: int
) -> list[Candle]:
    """OHLCV bars of the simulated feed from `since` (aligned down) up to `now`."""
    step = market.price_step or Decimal(0)
    first = minute_of(since) // minutes * minutes
    last = minute_of(now)
    stride = max(1, minutes // 60)  # sample at most ~60 points per bar
    candles: list[Candle] = []
    start = first
    while start <= last and len(candles) < limit:
        points = [
            simulated_price(market.base, market.quote, _at(m), step)
            for m in range(start, min(start + minutes, last + 1), stride)
        ]
        seed = hashlib.sha256(f"vhc-paper-volume:{market.symbol}:{start}".encode()).digest()
        volume = Decimal(int.from_bytes(seed[:4], "big") % 100_000) / 100
        candles.append(Candle(_at(start), points[0], max(points), min(points), points[-1], volume))
        start += minutes
    return candles


def _at(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, tz=UTC)
