"""USD prices for valuation: an in-memory index over the ledger's `prices` table (pure lookup)."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ccxtkit.money import is_usd_like

if TYPE_CHECKING:
    from ccxtkit.ledger.store import Ledger
    from ccxtkit.workspace import Workspace

#: A price older than this (before the moment valued) does not count: better an error than a
#: stale value. One day covers daily candles; hourly candles are preferred.
MAX_AGE_US = 24 * 3600 * 1_000_000

#: Fiat dollars: not an asset, never a lot. Stablecoins are assets (valued at 1 USD).
FIAT_USD = frozenset({"USD", "ZUSD"})


def is_fiat(currency: str) -> bool:
    """True for US dollars themselves (not stablecoins)."""
    return currency.upper() in FIAT_USD


@dataclass
class PriceIndex:
    """Per asset, USD prices sorted by time; `usd(asset, ts)` is the latest at or before ts."""

    _ts: dict[str, list[int]] = field(default_factory=dict)
    _px: dict[str, list[Decimal]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, str, str, Decimal]]) -> PriceIndex:
        """Build from (epoch microseconds, asset, quote, price) rows; non-USD quotes are skipped."""
        pairs: dict[str, list[tuple[int, Decimal]]] = {}
        for ts, asset, quote, price in rows:
            if is_usd_like(quote) and price > 0:
                pairs.setdefault(asset.upper(), []).append((ts, price))
        index = cls()
        for asset, items in pairs.items():
            items.sort(key=lambda item: item[0])
            index._ts[asset] = [t for t, _ in items]
            index._px[asset] = [p for _, p in items]
        return index

    def usd(self, asset: str, ts: int) -> Decimal | None:
        """USD per unit of `asset` at epoch-microsecond `ts`, or None when unknown."""
        if is_usd_like(asset):
            return Decimal(1)
        times = self._ts.get(asset.upper())
        if not times:
            return None
        i = bisect_right(times, ts) - 1
        if i < 0 or ts - times[i] > MAX_AGE_US:
            return None
        return self._px[asset.upper()][i]


def epoch_us(moment: datetime) -> int:
    """Epoch microseconds of a naive-UTC or aware datetime."""
    from datetime import UTC

    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    delta = aware - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# -- filling the table: `vhc prices fetch` ---------------------------------------------------

TIMEFRAME = "1h"
_STEP_US = 3600 * 1_000_000
_PAGE = 500


@dataclass
class FetchResult:
    """What `vhc prices fetch` did."""

    exchange: str
    symbols: list[str]
    start: datetime
    end: datetime
    fetched: int = 0
    recorded: int = 0


def _needed_assets(ledger: Ledger) -> tuple[list[str], datetime | None, datetime | None]:
    """Assets the tax report must value in USD, and the span of the trades that need them."""
    rows = ledger.query(
        "SELECT DISTINCT upper(quote) FROM trades UNION SELECT DISTINCT upper(fee_currency) "
        "FROM trades WHERE fee_currency IS NOT NULL AND fee <> 0 "
        "UNION SELECT DISTINCT upper(asset) FROM transfers"
    )
    assets = sorted({r[0] for r in rows if r[0] and not is_usd_like(r[0])})
    span = ledger.query("SELECT min(timestamp), max(timestamp) FROM trades")
    lo, hi = span[0] if span else (None, None)
    return assets, lo, hi


def fetch_prices(
    ws: Workspace,
    symbols: list[str] | None,
    start: datetime | None,
    end: datetime | None,
    exchange: str | None,
    now: datetime,
    progress: Callable[[str, float], None] | None = None,
) -> FetchResult:
    """Fetch hourly candles through the exchange gateway and record their opens as USD prices.

    Incremental: for each symbol only the hours after the last price already recorded from
    this exchange are asked for, so a re-run fetches only what is new. `progress(symbol, f)`
    is called after each page with the fraction f of the span done.
    """
    from ccxtkit.errors import UsageError
    from ccxtkit.exchanges.factory import open_exchange

    enabled = list(ws.config.enabled_exchanges())
    name = exchange or (enabled[0] if enabled else None)
    if name is None:
        raise UsageError("no enabled exchange account to fetch prices from: add one to the config")
    ws.config.exchange(name)  # a clear error for an unknown name
    lo = hi = None
    if symbols is None or start is None:
        with ws.open_ledger() as ledger:
            assets, lo, hi = _needed_assets(ledger)
        if symbols is None:
            symbols = [f"{a}/USD" for a in assets]
    start = start or lo or now - timedelta(days=1)
    end = end or (hi + timedelta(hours=1) if hi else now)
    if end > now:
        end = now
    result = FetchResult(name, list(symbols), start, end)
    if not symbols or start >= end:
        return result
    source = f"ohlcv:{name}:{TIMEFRAME}"
    with ws.open_ledger() as ledger:
        latest = {
            str(asset): _naive(t)
            for asset, t in ledger.query(
                "SELECT upper(asset), max(timestamp) FROM prices "
                "WHERE source = ? AND timestamp >= ? AND timestamp < ? GROUP BY 1",
                [source, start, end],
            )
        }
    rows: list[dict[str, object]] = []
    client = open_exchange(ws, name)
    try:
        markets = client.load_markets()
        for symbol in symbols:
            if symbol not in markets:
                raise UsageError(f"{name} has no market {symbol}: pass --symbol with one it lists")
            base, quote = markets[symbol].base, markets[symbol].quote
            if not is_usd_like(quote):
                raise UsageError(f"{symbol}: quote {quote} is not USD or a USD stablecoin")
            since = start
            if base.upper() in latest:  # already recorded up to there: ask only for what is new
                since = max(start, latest[base.upper()] + timedelta(microseconds=_STEP_US))
            while since < end:
                candles = client.fetch_ohlcv(symbol, TIMEFRAME, since, _PAGE)
                fresh = [c for c in candles if since <= _naive(c.timestamp) < end]
                for c in fresh:
                    rows.append(
                        {"timestamp": c.timestamp, "asset": base, "quote": quote,
                         "price": c.open, "source": source}
                    )  # fmt: skip
                if not fresh:
                    break
                since = _naive(fresh[-1].timestamp) + timedelta(microseconds=_STEP_US)
                if progress is not None:
                    progress(symbol, min(1.0, (since - start) / (end - start)))
    finally:
        client.close()
    result.fetched = len(rows)
    # Talk to the exchange first, then hold the ledger briefly: skip prices already recorded.
    with ws.open_ledger() as ledger:
        have = {
            (epoch_us(t), a, q, s)
            for t, a, q, s in ledger.query(
                "SELECT timestamp, asset, quote, source FROM prices "
                "WHERE timestamp >= ? AND timestamp < ?",
                [start, end],
            )
        }
        new = [
            r for r in rows
            if (epoch_us(r["timestamp"]), r["asset"], r["quote"], r["source"]) not in have  # type: ignore[arg-type]
        ]  # fmt: skip
        ledger.append("prices", new)
    result.recorded = len(new)
    return result


def _naive(moment: datetime) -> datetime:
    from datetime import UTC

    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
