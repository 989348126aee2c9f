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
holds fee credits. ``CancelAll`` cancels every open order at once and answers how many
(``result.count``; ccxt hands the reply back as one order's ``info``).

Coinbase (Advanced Trade; read from ccxt 4.5.x coinbase.py, proven by tests/coinbase_server.py):
- ccxt's create_order drops a unified ``clientOrderId`` and sends its own ``ccxt-<uuid>``;
  ours must go as ``client_order_id`` to reach the exchange.
- a spot market BUY goes as ``quote_size`` (ccxt computes amount x price and refuses without
  a price): vhc passes the current ask, so the base amount filled is what that quote buys.
- fills (orders/historical/fills) come newest first with an opaque ``cursor``: read by
  following the cursor to its end (ccxt's own paginate stops silently after 10 pages).
- deposits and withdrawals are per wallet (v2 ``/accounts/{id}/transactions``, newest first,
  ``starting_after`` paging): every wallet is read; crypto sends and fiat transfers kept,
  their direction taken from the wallet's signed ``amount`` (ccxt calls a withdrawal whose
  ``network.transaction_amount`` is positive a deposit).
- open orders are a page of orders/historical/batch (ccxt asks for one page of 100): vhc
  follows ``cursor`` while ``has_next`` (the kill switch must see every open order).
- batch_cancel answers ``success: false`` for an order no longer open (ccxt: BadRequest),
  also when a retried cancel's first reply was lost: vhc then reads the order's state.
- ccxt's fetch_ledger needs a currency (one wallet): vhc reads no ledger there (each fill
  names its fee currency, the quote).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

from ccxtkit.errors import ExchangeError

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
#: Exchanges where ccxt advertises fetchLedger but has none account-wide for spot.
NO_SPOT_LEDGER = _BINANCE | {"coinbase"}
#: Exchanges whose spot market buy ccxt sends as a quote amount, computed from a price.
MARKET_BUY_BY_COST = frozenset({"coinbase"})
#: Exchanges whose fills are read by following an opaque cursor (coinbase_fills).
FILLS_BY_CURSOR = frozenset({"coinbase"})
#: Exchanges whose open orders come in pages (coinbase: ccxt reads one page of 100).
OPEN_ORDERS_BY_CURSOR = frozenset({"coinbase"})
#: Exchanges that refuse to cancel an order no longer open with a generic BadRequest (coinbase:
#: batch_cancel's ``success: false``): the order's state decides whether the cancel is done.
CANCEL_REFUSED_WHEN_CLOSED = frozenset({"coinbase"})
#: Exchanges whose deposits/withdrawals are read wallet by wallet (coinbase_transfers).
TRANSFERS_PER_WALLET = frozenset({"coinbase"})

#: Exchanges whose cancel-all is one atomic call answering how many orders it cancelled.
CANCEL_ALL_COUNTS = frozenset({"kraken"})

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


#: Most pages one cursor walk reads before it refuses to go on.
_MAX_PAGES = 10_000
#: Coinbase v2 transaction types that move money in or out (not trades, not conversions).
_COINBASE_TRANSFER_TYPES = frozenset({"send", "fiat_deposit", "fiat_withdrawal"})


def coinbase_fills(
    ex: Any, since_ms: int, until_ms: int, call: Callable[[Callable[[], Any]], Any]
) -> list[Raw]:
    """Every fill in [since_ms, until_ms), following orders/historical/fills' cursor."""
    request: dict[str, Any] = {
        "start_sequence_timestamp": ex.iso8601(since_ms),
        "end_sequence_timestamp": ex.iso8601(until_ms),
        "limit": _PAGE,
    }
    out: list[Raw] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        asked = {**request, **({"cursor": cursor} if cursor else {})}
        page = call(partial(ex.v3PrivateGetBrokerageOrdersHistoricalFills, asked))
        rows = page.get("fills") or []
        out += ex.parse_trades(rows)
        following = page.get("cursor")
        if not rows or not following:
            return [t for t in out if since_ms <= int(t["timestamp"]) < until_ms]
        if following == cursor:
            raise ExchangeError(f"{ex.id}: the fills cursor did not move; history not read")
        cursor = str(following)
    raise ExchangeError(f"{ex.id}: fills did not end after {_MAX_PAGES} pages")


def coinbase_open_orders(
    ex: Any, symbol: str | None, call: Callable[[Callable[[], Any]], Any]
) -> list[Raw]:
    """Every open order (of one market or all), following the cursor while ``has_next``."""
    request: dict[str, Any] = {"order_status": ["OPEN"], "limit": 100}  # ccxt's own page
    market = ex.market(symbol) if symbol else None
    if market is not None:
        request["product_ids"] = [market["id"]]
    out: list[Raw] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        asked = {**request, **({"cursor": cursor} if cursor else {})}
        page = call(partial(ex.v3PrivateGetBrokerageOrdersHistoricalBatch, asked))
        out += [ex.parse_order(row, market) for row in page.get("orders") or []]
        if page.get("has_next") is not True:
            return out
        following = page.get("cursor")
        if not following or following == cursor:
            raise ExchangeError(f"{ex.id}: the open orders cursor did not move; list not read")
        cursor = str(following)
    raise ExchangeError(f"{ex.id}: open orders did not end after {_MAX_PAGES} pages")


def coinbase_transfers(
    ex: Any, kind: str, since_ms: int, until_ms: int, call: Callable[[Callable[[], Any]], Any]
) -> list[Raw]:
    """Deposits or withdrawals in [since_ms, until_ms) of every wallet (v2 transactions)."""
    out: list[Raw] = []
    for wallet in _v2_walk(ex.v2PrivateGetAccounts, {}, None, call):
        params = {"account_id": wallet["id"]}
        for row in _v2_walk(ex.v2PrivateGetAccountsAccountIdTransactions, params, since_ms, call):
            if row.get("type") not in _COINBASE_TRANSFER_TYPES:
                continue
            # The wallet's signed amount says which way money went: ccxt types a send by its
            # network.transaction_amount, which is positive for a withdrawal too.
            signed = Decimal(str((row.get("amount") or {}).get("amount") or "0"))
            if signed == 0 or (kind == "deposit") != (signed > 0):
                continue
            parsed = {**ex.parse_transaction(row), "type": kind}
            ts = parsed.get("timestamp")
            if ts is None or since_ms <= int(ts) < until_ms:
                out.append(parsed)
    return out


def _v2_walk(
    fetch: Callable[[dict[str, Any]], Any],
    params: dict[str, Any],
    since_ms: int | None,
    call: Callable[[Callable[[], Any]], Any],
) -> list[Raw]:
    """Rows of a v2 list (newest first), ``starting_after`` paging, until older than since."""
    out: list[Raw] = []
    after: str | None = None
    for _ in range(_MAX_PAGES):
        request = {**params, "limit": 100, **({"starting_after": after} if after else {})}
        page = call(partial(fetch, request))
        rows = page.get("data") or []
        out += rows
        following = (page.get("pagination") or {}).get("next_starting_after")
        if not rows or not following:
            return out
        if since_ms is not None:
            oldest = min(_ms(r.get("created_at")) for r in rows)
            if oldest < since_ms:
                return out
        if following == after:
            raise ExchangeError("coinbase: a v2 list cursor did not move; history not read")
        after = str(following)
    raise ExchangeError(f"coinbase: a v2 list did not end after {_MAX_PAGES} pages")


def _ms(iso: Any) -> int:
    from datetime import datetime

    if not iso:
        return 0
    return int(datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp() * 1000)


def cancel_all_count(exchange_id: str, reply: Any) -> int | None:
    """How many orders a cancel-all reply says it cancelled, or None when it does not say."""
    if exchange_id not in CANCEL_ALL_COUNTS or not isinstance(reply, list) or len(reply) != 1:
        return None
    info = reply[0].get("info") if isinstance(reply[0], dict) else None
    result = info.get("result") if isinstance(info, dict) else None
    count = result.get("count") if isinstance(result, dict) else None
    try:
        return None if count is None or isinstance(count, bool) else int(str(count))
    except ValueError:
        return None
