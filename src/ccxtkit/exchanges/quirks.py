"""What some exchanges need beyond ccxt's unified calls, by ccxt id (read from ccxt 4.5.x).

Binance and Binance.US:
- ccxt refuses ``fetch_open_orders(None)`` unless ``warnOnFetchOpenOrdersWithoutSymbol`` is
  off; vhc needs it (kill switch, recovery), so it is off by default for these accounts.
- ``myTrades`` needs a symbol and serves at most 24 hours per call from ``startTime``: the
  account's fills are read market by market, one day window at a time, paging inside a
  full window with ``fromId`` (which Binance accepts only without time bounds).
- fills arrive with an order's reply without side or time: an order's fills are read from
  ``myTrades?orderId=`` instead.
- ccxt's ``fetch_ledger`` covers derivatives wallets only: no spot ledger (fees show their
  currency on each fill anyway).

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

#: Exchanges whose fetch_my_trades needs a symbol (read market by market).
TRADES_PER_SYMBOL = _BINANCE
#: Exchanges whose order replies carry incomplete fills: read them by order id.
FILLS_BY_ORDER_ID = _BINANCE
#: Exchanges where ccxt advertises fetchLedger but has none for spot accounts.
NO_SPOT_LEDGER = _BINANCE

_DAY_MS = 86_400_000
_PAGE = 1000


def binance_trades(
    ex: Any, symbol: str, since_ms: int, until_ms: int, call: Callable[[Callable[[], Any]], Any]
) -> list[Raw]:
    """Every fill of one market in [since_ms, until_ms): day windows, fromId inside a full one."""
    out: list[Raw] = []
    start = since_ms
    while start < until_ms:
        end = min(start + _DAY_MS, until_ms) - 1  # endTime is inclusive
        rows = call(_page(ex, symbol, start, {"endTime": end}))
        out += rows
        while len(rows) >= _PAGE:
            # A full window: continue after its last trade id (fromId takes no time bounds).
            rows = call(_page(ex, symbol, None, {"fromId": int(rows[-1]["id"]) + 1}))
            inside = [r for r in rows if int(r["timestamp"]) <= end]
            out += inside
            if len(inside) < len(rows):
                break
        start = end + 1
    return out


def _page(ex: Any, symbol: str, since: int | None, params: dict[str, Any]) -> Callable[[], Any]:
    return lambda: ex.fetch_my_trades(symbol, since, _PAGE, params)
