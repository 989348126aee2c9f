"""What some exchanges need beyond ccxt's unified calls, by ccxt id (read from ccxt 4.5.x).

Binance and Binance.US:
- ccxt refuses ``fetch_open_orders(None)`` unless ``warnOnFetchOpenOrdersWithoutSymbol`` is
  off; vhc needs it (kill switch, recovery), so it is off by default for these accounts.
- ``myTrades`` needs a symbol and serves at most 24 hours per call from ``startTime``: the
  account's fills are read market by market, one day window at a time (a long range walks
  the market from trade id 0 instead), paging with ``fromId`` (which Binance accepts only
  without time bounds).
- deposit/withdrawal history serves at most 90 days per call (ccxt sets ``endTime`` to
  ``since`` + 90 days): read in 90-day windows. Fiat (USD bank) transfers are not in
  these lists on Binance.US and vhc does not read them.
- fills arrive with an order's reply without side or time: an order's fills are read from
  ``myTrades?orderId=`` instead.
- ccxt's ``fetch_ledger`` covers derivatives wallets only: no spot ledger (fees show their
  currency on each fill anyway).

Kraken: its trade history labels every fee with the quote, while the fee may really be charged
in the base (``fcib``, a sell's default) or in fee credits (KFEE); the ledger (``Ledgers``) shows
which. vhc's orders ask for ``fciq``, so the extra ledger read is needed only while the account
holds fee credits.

Coinbase: ccxt's create_order drops a unified ``clientOrderId`` and sends its own
``ccxt-<uuid>``; ours must go as ``client_order_id`` to reach the exchange.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Raw = dict[str, Any]

_BINANCE = frozenset({"binance", "binanceus"})

#: ccxt constructor defaults per exchange, under the account's own `ccxt:` mapping.
CCXT_DEFAULTS: dict[str, dict[str, Any]] = {
    "binance": {"options": {"warnOnFetchOpenOrdersWithoutSymbol": False}},
    "binanceus": {"options": {"warnOnFetchOpenOrdersWithoutSymbol": False}},
}

#: The create_order param that carries our client order id, where it is not `clientOrderId`.
CLIENT_ID_PARAM: dict[str, str] = {"coinbase": "client_order_id"}

#: Extra create_order params. Kraken: the fee in the quote currency (`fciq`; a sell defaults to
#: the base), so that without fee credits the trade history's fee label is the truth.
CREATE_PARAMS: dict[str, dict[str, str]] = {"kraken": {"oflags": "fciq"}}
#: Fee-credit assets that an exchange spends before the currency an order asks for (Kraken's
#: KFEE, unified as FEE): while the account holds none, fees are charged as CREATE_PARAMS say.
FEE_CREDIT_ASSETS: dict[str, frozenset[str]] = {"kraken": frozenset({"FEE", "KFEE"})}

#: Exchanges whose fetch_my_trades needs a symbol (read market by market).
TRADES_PER_SYMBOL = _BINANCE
#: Exchanges whose order replies carry incomplete fills: read them by order id.
FILLS_BY_ORDER_ID = _BINANCE
#: Exchanges whose deposit/withdrawal history is read in 90-day windows.
TRANSFERS_IN_WINDOWS = _BINANCE
#: ccxt's test URLs for these are another exchange's testnet (binanceus: Binance.com's).
NO_OWN_SANDBOX = frozenset({"binanceus"})
#: Exchanges where ccxt advertises fetchLedger but has none for spot accounts.
NO_SPOT_LEDGER = _BINANCE

_DAY_MS = 86_400_000
_WEEK_MS = 7 * _DAY_MS
_TRANSFER_WINDOW_MS = 90 * _DAY_MS
_PAGE = 1000
#: 2019-09-01 UTC: no Binance.US history can be older.
BINANCE_US_LAUNCH_MS = 1_567_296_000_000


def binance_trades(
    ex: Any, symbol: str, since_ms: int, until_ms: int, call: Callable[[Callable[[], Any]], Any]
) -> list[Raw]:
    """Every fill of one market in [since_ms, until_ms).

    Up to a week: day windows (``startTime``/``endTime``), ``fromId`` inside a full one.
    Longer (adoption, backfill): the whole market from trade id 0, ascending, page by page.
    """
    if until_ms - since_ms > _WEEK_MS:
        return _from_id(ex, symbol, 0, until_ms, call)
    out: list[Raw] = []
    start = since_ms
    while start < until_ms:
        end = min(start + _DAY_MS, until_ms) - 1  # endTime is inclusive
        rows = call(_page(ex, symbol, start, {"endTime": end}))
        out += rows
        if len(rows) >= _PAGE:  # a full window: continue after its last trade id
            out += _from_id(ex, symbol, int(rows[-1]["id"]) + 1, end + 1, call)
        start = end + 1
    return out


def _from_id(
    ex: Any, symbol: str, from_id: int, until_ms: int, call: Callable[[Callable[[], Any]], Any]
) -> list[Raw]:
    """Trades from `from_id` on, until one is at or past `until_ms` (fromId takes no times)."""
    out: list[Raw] = []
    while True:
        rows = call(_page(ex, symbol, None, {"fromId": from_id}))
        inside = [r for r in rows if int(r["timestamp"]) < until_ms]
        out += inside
        if len(rows) < _PAGE or len(inside) < len(rows):
            return out
        from_id = int(rows[-1]["id"]) + 1


def _page(ex: Any, symbol: str, since: int | None, params: dict[str, Any]) -> Callable[[], Any]:
    return lambda: ex.fetch_my_trades(symbol, since, _PAGE, params)


def binance_transfers(
    fetch: Callable[..., list[Raw]],
    since_ms: int,
    until_ms: int,
    call: Callable[[Callable[[], Any]], Any],
) -> list[Raw]:
    """Deposits or withdrawals in [since_ms, until_ms): 90-day windows (Binance's longest),
    from Binance.US's launch at the earliest, ``offset`` paging inside a full window."""
    out: list[Raw] = []
    start = max(since_ms, BINANCE_US_LAUNCH_MS)
    while start < until_ms:
        end = min(start + _TRANSFER_WINDOW_MS, until_ms) - 1
        offset = 0
        while True:
            rows = call(_transfer_page(fetch, start, {"until": end, "offset": offset}))
            out += rows
            if len(rows) < _PAGE:
                break
            offset += len(rows)
        start = end + 1
    return out


def _transfer_page(
    fetch: Callable[..., list[Raw]], since: int, params: dict[str, Any]
) -> Callable[[], list[Raw]]:
    return lambda: fetch(None, since, _PAGE, params)
