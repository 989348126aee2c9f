"""Writing orders, their state changes and their fills to the ledger, each exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..exchanges.base import ExchangeClient, Order, Trade
from ..exchanges.fees import apply_ledger_fees
from ..exchanges.kite_symbols import is_kite_symbol
from ..exchanges.kite_symbols import symbol_parts as kite_symbol_parts
from ..ledger.chain import now_utc
from ..ledger.names import TERMINAL_ORDER_EVENTS
from ..ledger.store import Ledger
from ..logs import log
from ..money import is_usd_like

#: Order events after which nothing more happens to the order.
TERMINAL_EVENTS = TERMINAL_ORDER_EVENTS  # the ledger's vocabulary (ledger.names)

#: ccxt order status -> our event name.
_STATUS_EVENT = {
    "open": "open",
    "closed": "filled",
    "canceled": "canceled",
    "cancelled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
}


def event_for(order: Order) -> str:
    """The event that records an order's current state."""
    event = _STATUS_EVENT.get(order.status, "open")
    if event == "open" and order.filled > 0:
        return "partially_filled"
    if event == "canceled" and order.filled > 0:
        return "canceled"  # partly filled then cancelled: the fills are recorded as trades
    return event


def record_order_state(
    ledger: Ledger, exchange: str, client_order_id: str, order: Order, details: dict[str, Any]
) -> None:
    """Append an order_events row with the order's state as the exchange reports it."""
    ledger.append(
        "order_events",
        [
            {
                "timestamp": now_utc(),
                "client_order_id": client_order_id,
                "exchange": exchange,
                "event": event_for(order),
                "status": order.status,
                "order_id": order.id,
                "filled": order.filled,
                "average": order.average,
                "remaining": order.remaining,
                "fee": order.fee,
                "fee_currency": order.fee_currency,
                "details": json.dumps(details, sort_keys=True, default=str),
            }
        ],
    )


def record_event(
    ledger: Ledger,
    exchange: str,
    client_order_id: str,
    event: str,
    details: dict[str, Any],
    order_id: str | None = None,
) -> None:
    """Append an order_events row that is not a snapshot of the exchange's order (sent, unknown...)."""
    ledger.append(
        "order_events",
        [
            {
                "timestamp": now_utc(),
                "client_order_id": client_order_id,
                "exchange": exchange,
                "event": event,
                "status": None,
                "order_id": order_id,
                "details": json.dumps(details, sort_keys=True, default=str),
            }
        ],
    )


def record_fills(
    ledger: Ledger,
    exchange: str,
    trades: Iterable[Trade],
    source: str,
    client_order_id: str | None = None,
    strategy: str | None = None,
) -> int:
    """Append the fills not yet in the ledger (by exchange + trade id); returns how many.

    A fill whose id the ledger already holds with other values (an import, say) is not a
    duplicate: it is kept out, and recorded as a `trade.conflict` event for a person to settle.
    """
    fills = list(trades)
    if not fills:
        return 0
    ids = [t.id for t in fills]
    marks = ", ".join("?" for _ in ids)
    stored = {
        str(r[0]): r[1:]
        for r in ledger.query(
            "SELECT trade_id, symbol, side, amount, price FROM trades "
            f"WHERE exchange = ? AND trade_id IN ({marks})",
            [exchange, *ids],
        )
    }
    known = set(stored)
    for t in fills:
        if t.id in stored and stored[t.id] != (t.symbol, t.side, t.amount, t.price):
            _record_conflict(ledger, exchange, t, stored[t.id])
    rows = [
        trade_row(exchange, t, source, client_order_id, strategy)
        for t in fills
        if t.id not in known
    ]
    unique = {r["trade_id"]: r for r in rows}
    ledger.append("trades", list(unique.values()))
    return len(unique)


def _record_conflict(ledger: Ledger, exchange: str, fill: Trade, stored: tuple[Any, ...]) -> None:
    symbol, side, amount, price = stored
    details = {
        "exchange": exchange,
        "trade_id": fill.id,
        "ledger": {"symbol": symbol, "side": side, "amount": amount, "price": price},
        "exchange_fill": {
            "symbol": fill.symbol, "side": fill.side, "amount": fill.amount, "price": fill.price,
        },
    }  # fmt: skip
    log.warning(
        "%s fill %s conflicts with the ledger's row of that id (%s %s %s @ %s): not recorded; "
        "settle it by hand (`vhc ledger log` shows trade.conflict)",
        exchange, fill.id, side, amount, symbol, price,
    )  # fmt: skip
    ledger.record_event("trade.conflict", details, subject=f"{exchange}:{fill.id}")


def trade_row(
    exchange: str,
    trade: Trade,
    source: str,
    client_order_id: str | None = None,
    strategy: str | None = None,
) -> dict[str, Any]:
    """The ledger row of an exchange fill."""
    base, _, quote = trade.symbol.partition("/")
    quote = quote.split(":")[0]
    if not quote and is_kite_symbol(trade.symbol):
        base, quote = kite_symbol_parts(trade.symbol)  # NSE:INFY: the instrument, in INR
    return {
        "timestamp": trade.timestamp,
        "exchange": exchange,
        "symbol": trade.symbol,
        "asset": base,
        "quote": quote,
        "side": trade.side,
        "amount": trade.amount,
        "price": trade.price,
        "cost": trade.cost,
        "fee": trade.fee,
        "fee_currency": trade.fee_currency,
        "trade_id": trade.id,
        "order_id": trade.order_id,
        "client_order_id": client_order_id or trade.client_order_id,
        "strategy": strategy,
        "source": source,
        "notes": None,
        "total_usd": trade.cost if is_usd_like(quote) else None,
    }


def pending_orders(ledger: Ledger, exchange: str | None = None) -> list[dict[str, Any]]:
    """Orders whose latest event is not terminal: their fate must be read from the exchange."""
    from ..risk.open_orders import unsettled

    keys = ("exchange", "client_order_id", "symbol", "side", "type", "amount", "price")
    return [
        {
            **{k: getattr(s, k) for k in keys},
            "strategy": s.strategy,
            "timestamp": s.timestamp,
            "event": s.event,
            "order_id": s.order_id,
        }
        for s in unsettled(ledger)
        if exchange is None or s.exchange == exchange
    ]


def order_table(ledger: Ledger, exchange: str | None, include_all: bool) -> list[dict[str, Any]]:
    """Orders with their latest known state, newest first (only live ones unless include_all)."""
    clauses, params = [], []
    if exchange:
        clauses.append("o.exchange = ?")
        params.append(exchange)
    if not include_all:
        terminal = ", ".join(f"'{e}'" for e in sorted(TERMINAL_EVENTS))
        clauses.append(f"(e.event IS NULL OR e.event NOT IN ({terminal}))")
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    return ledger.rows(
        f"""
        SELECT o.timestamp, o.exchange, o.client_order_id, e.order_id, o.symbol, o.side, o.type,
               o.amount, o.price, coalesce(e.event, 'intent') AS state, e.filled
        FROM orders o
        LEFT JOIN (
            SELECT exchange, client_order_id, arg_max(event, seq) AS event,
                   arg_max(order_id, CASE WHEN order_id IS NULL THEN 0 ELSE seq END) AS order_id,
                   arg_max(filled, CASE WHEN filled IS NULL THEN 0 ELSE seq END) AS filled
            FROM order_events GROUP BY exchange, client_order_id
        ) e USING (exchange, client_order_id)
        {where}
        ORDER BY o.seq DESC
        """,
        params,
    )


def fills_of(client: ExchangeClient, order: Order, placed_at: datetime | None) -> list[Trade]:
    """The order's fills, each fee in the currency the exchange really charged.

    ccxt's kraken labels every trade fee with the quote; the exchange's own ledger (where the
    client has one) says when it was charged in the base or a fee token instead.
    """
    if order.filled <= 0:
        return []
    since = since_for_fills(placed_at)
    fills = list(order.trades) or [
        t for t in client.fetch_my_trades(since) if t.order_id == order.id
    ]
    fetch_ledger = getattr(client, "fetch_ledger", None)
    # The gateway knows when this order's fees are as labelled (e.g. Kraken without fee credits).
    as_reported = order.client_order_id in getattr(client, "fees_as_reported", ())
    if fills and fetch_ledger is not None and not as_reported:
        fills = apply_ledger_fees(fills, fetch_ledger(since))
    return fills


def fills_of_orders(
    client: ExchangeClient, order_ids: Iterable[str], placed_at: datetime | None
) -> list[Trade]:
    """The fills of several orders from one trade-history read (fees as in `fills_of`)."""
    wanted = set(order_ids)
    if not wanted:
        return []
    since = since_for_fills(placed_at)
    fills = [t for t in client.fetch_my_trades(since) if t.order_id in wanted]
    fetch_ledger = getattr(client, "fetch_ledger", None)
    if fills and fetch_ledger is not None:
        fills = apply_ledger_fees(fills, fetch_ledger(since))
    return fills


def since_for_fills(placed_at: datetime | None) -> datetime:
    """Where to start looking for an order's fills (a little before it was placed)."""
    from datetime import timedelta

    return (placed_at or now_utc()) - timedelta(minutes=5)
