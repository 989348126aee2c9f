"""Finding an order by our client order id, per exchange, and what proves it absent.

After a lost reply vhc sends an order again only when the exchange *confirms* it has no
order with that client id. Each exchange proves that differently, or not at all:

- kraken: OpenOrders and ClosedOrders filter by ``cl_ord_id`` server-side (ccxt maps
  ``clientOrderId`` to it), so an empty answer from both, twice `RECHECK_SECONDS` apart, is
  absence: an AddOrder whose reply was lost may still be on its way to the book at the first
  look;
- binance, binanceus: GET /api/v3/order with ``origClientOrderId`` finds an open or closed
  order of the symbol; error -2013 "Order does not exist." is absence, once it is said twice
  `RECHECK_SECONDS` apart: Binance documents replies (-1006, -1007) whose "execution status
  is unknown", i.e. the order may still reach the matching engine after the first answer.
  (Binance archives CANCELED/EXPIRED orders without fills after 90 days: fine for a lookup
  seconds after the send, and `recover` never resends.)
- coinbase (Advanced Trade): GET /api/v3/brokerage/orders/historical/batch has no client id
  filter, so the product's orders are walked page by page (``order_status=OPEN`` first, then
  every status), following ``cursor`` until ``has_next`` is false. Only a completed walk that
  misses, twice `RECHECK_SECONDS` apart, is absence; a walk that cannot finish (a failing
  page, a cursor that does not move, `MAX_PAGES`) leaves the order unknown. (Coinbase also
  answers a create with a client_order_id already used with that order instead of a new one.)
- everything else (gemini, bitfinex, ...): vhc can *find* an order among the open
  orders and the latest page of closed ones, but a miss proves nothing on a busy account.
  Not found there raises `OrderLookupUnproven`: the order stays unknown, is never resent,
  and the user is told to check the exchange by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ccxtkit.errors import ExchangeError, OrderLookupUnproven
from ccxtkit.logs import log

from .errors_map import ExchangeOrderNotFound

Raw = dict[str, Any]
#: Runs one read through the gateway's retry policy (`CcxtGateway._safe`).
Safe = Callable[[Callable[[], Any]], Any]


@dataclass(frozen=True)
class LookupStrategy:
    """How one exchange is searched by client id, and whether a miss is confirmed absence."""

    kind: str  # "cl_ord_id_filter" | "orig_client_order_id" | "scan"
    proven: bool
    how: str  # one line for `vhc exchanges`


KRAKEN = LookupStrategy(
    "cl_ord_id_filter",
    True,
    "OpenOrders + ClosedOrders filtered by cl_ord_id server-side; absent twice, 3 s apart",
)
BINANCE = LookupStrategy(
    "orig_client_order_id",
    True,
    "GET /api/v3/order?origClientOrderId=…; -2013 twice, 3 s apart = absent",
)
KITE = LookupStrategy(
    "kite_tag",
    True,
    "today's order book by tag, absent twice 2 s apart; a tag from another day is unproven",
)
COINBASE = LookupStrategy(
    "coinbase_walk",
    True,
    "every page of orders/historical/batch (OPEN, then all statuses) to has_next=false; "
    "a miss on two full walks, 3 s apart = absent",
)
PAPER = LookupStrategy("paper", True, "the paper exchange's own order book (local)")
SCAN = LookupStrategy(
    "scan",
    False,
    "open orders + latest page of closed orders: finds an order, cannot prove absence",
)

#: ccxt id -> strategy; anything not listed is scanned and unproven.
STRATEGIES: dict[str, LookupStrategy] = {
    "paper": PAPER,
    "kite": KITE,  # exchanges/kite.py: find_order_by_client_id
    "kraken": KRAKEN,
    "binance": BINANCE,
    "binanceus": BINANCE,
    "coinbase": COINBASE,
}

#: Binance's error code for "Order does not exist." (GET /api/v3/order).
_BINANCE_NO_SUCH_ORDER = "-2013"
#: Seconds between the two "does not exist" answers that make absence confirmed on Binance.
RECHECK_SECONDS = 3.0
#: Coinbase's largest page of orders, and the most pages one walk reads before giving up.
COINBASE_PAGE = 1000
MAX_PAGES = 1000


def strategy_for(ccxt_id: str) -> LookupStrategy:
    """The lookup strategy of a ccxt exchange id (paper included)."""
    return STRATEGIES.get(ccxt_id, SCAN)


def find_raw(
    ex: Any,
    client_order_id: str,
    symbol: str,
    safe: Safe,
    account: str,
    sleep: Callable[[float], None] = time.sleep,
) -> Raw | None:
    """The ccxt order carrying `client_order_id`; None only on confirmed absence.

    Raises `OrderLookupUnproven` when the order was not found and the exchange cannot
    prove that it does not exist; other read failures raise `ExchangeError` as usual.
    """
    strategy = strategy_for(ex.id)
    query = _PROVING_QUERIES.get(strategy.kind)
    if query is not None:
        order = query(ex, client_order_id, symbol, safe, account)
        if order is None:
            sleep(RECHECK_SECONDS)  # absent twice, seconds apart: nothing still in flight
            order = query(ex, client_order_id, symbol, safe, account)
        return order
    has = ex.has
    closed = ex.fetch_closed_orders if has.get("fetchClosedOrders") else ex.fetch_orders
    found = []
    if has.get("fetchOpenOrders"):
        found += _matching(safe(lambda: ex.fetch_open_orders(symbol)), client_order_id)
    if not found and (has.get("fetchClosedOrders") or has.get("fetchOrders")):
        found += _matching(safe(lambda: closed(symbol)), client_order_id)
    if found:
        return found[0]
    raise OrderLookupUnproven(
        f"{account}: no order with client id {client_order_id} among the open orders and the "
        f"latest closed ones, but {ex.id} cannot prove it does not exist: it stays unknown and "
        f"is never resent; check the order history on {ex.id} by hand"
    )


def _kraken_query(
    ex: Any, client_order_id: str, symbol: str, safe: Safe, account: str
) -> Raw | None:
    """OpenOrders and ClosedOrders filtered by cl_ord_id: the order, or None if in neither."""
    params = {"clientOrderId": client_order_id}
    found = _matching(safe(lambda: ex.fetch_open_orders(None, None, None, params)), client_order_id)
    found += _matching(
        safe(lambda: ex.fetch_closed_orders(None, None, None, params)), client_order_id
    )
    if len({r["id"] for r in found}) > 1:
        log.warning("%s: several orders carry client id %s", account, client_order_id)
    return found[0] if found else None


def _binance_query(
    ex: Any, client_order_id: str, symbol: str, safe: Safe, account: str
) -> Raw | None:
    """GET /api/v3/order by origClientOrderId: the order, or None on -2013."""
    try:
        raw = safe(lambda: ex.fetch_order(None, symbol, {"origClientOrderId": client_order_id}))
    except ExchangeOrderNotFound as exc:
        if _BINANCE_NO_SUCH_ORDER in exc.message:
            return None
        raise
    if raw.get("clientOrderId") != client_order_id:
        raise ExchangeError(
            f"{account}: asked for client order id {client_order_id}, the exchange "
            f"answered with order {raw.get('id')} ({raw.get('clientOrderId')})"
        )
    return dict(raw)


def _coinbase_walk(
    ex: Any, client_order_id: str, symbol: str, safe: Safe, account: str
) -> Raw | None:
    """The order carrying `client_order_id` among ALL the product's orders, or None once every
    page was read (``has_next`` false on the last); raises `OrderLookupUnproven` otherwise."""
    market = ex.market(symbol)
    for statuses in (["OPEN"], None):  # OPEN cannot be combined with other statuses
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            request: dict[str, Any] = {"product_ids": [market["id"]], "limit": COINBASE_PAGE}
            if statuses:
                request["order_status"] = statuses
            if cursor:
                request["cursor"] = cursor
            page = safe(partial(ex.v3PrivateGetBrokerageOrdersHistoricalBatch, request))
            for row in page.get("orders") or []:
                if row.get("client_order_id") == client_order_id:
                    return dict(ex.parse_order(row, market))
            if page.get("has_next") is not True:
                break
            following = page.get("cursor")
            if not following or following == cursor:
                raise _walk_unfinished(ex, client_order_id, account, "a cursor that does not move")
            cursor = str(following)
        else:
            raise _walk_unfinished(ex, client_order_id, account, f"more than {MAX_PAGES} pages")
    return None


def _walk_unfinished(ex: Any, client_order_id: str, account: str, why: str) -> Exception:
    return OrderLookupUnproven(
        f"{account}: the order list of {ex.id} could not be read to its end ({why}), so the "
        f"absence of client id {client_order_id} is not proven: it stays unknown and is never "
        f"resent; check the order history on {ex.id} by hand"
    )


def _matching(raws: list[Raw], client_order_id: str) -> list[Raw]:
    return [r for r in raws if r.get("clientOrderId") == client_order_id]


#: Strategy kind -> one complete search whose miss, said twice, proves absence.
_PROVING_QUERIES: dict[str, Callable[[Any, str, str, Safe, str], Raw | None]] = {
    "cl_ord_id_filter": _kraken_query,
    "orig_client_order_id": _binance_query,
    "coinbase_walk": _coinbase_walk,
}
