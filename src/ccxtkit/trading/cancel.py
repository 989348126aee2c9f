"""Cancelling one order and recording what the exchange then says about it."""

from __future__ import annotations

from ..errors import ExchangeError, FindingsError, InputError
from ..exchanges.base import Order
from ..money import fmt
from ..records import order_record, order_status
from ..workspace import Workspace
from . import recording
from .accounts import connect

#: ccxt states in which an order can no longer be canceled (canceled itself is idempotent).
FINISHED = ("closed", "expired", "rejected")


def cancel_order(ws: Workspace, order_ref: str, exchange: str | None = None) -> Order:
    """Cancel an order known to the ledger, by exchange order id or client order id."""
    params: list[object] = [order_ref, order_ref]
    where = "(e.order_id = ? OR o.client_order_id = ?)"
    if exchange:
        where += " AND o.exchange = ?"
        params.append(exchange)
    with ws.open_ledger() as ledger:
        found = ledger.rows(
            f"""SELECT DISTINCT o.exchange, o.client_order_id, o.symbol, e.order_id
                FROM orders o LEFT JOIN order_events e USING (exchange, client_order_id)
                WHERE {where} AND e.order_id IS NOT NULL""",
            params,
        )
    if not found:
        raise InputError(
            f"no order {order_ref!r} in the ledger{' on ' + exchange if exchange else ''}; "
            "see `vhc trade orders`"
        )
    if len({(f["exchange"], f["client_order_id"]) for f in found}) > 1:
        raise InputError(f"order {order_ref!r} is ambiguous; add --exchange")
    target = found[0]
    client = connect(ws, target["exchange"])
    try:
        order = client.fetch_order(target["order_id"], target["symbol"])
        if order.status not in FINISHED:
            try:
                client.cancel_order(target["order_id"], target["symbol"])
            except ExchangeError:
                # It may have filled in between: the order's state says which it was.
                order = client.fetch_order(target["order_id"], target["symbol"])
                if order.status not in FINISHED:
                    raise
            order = client.fetch_order(target["order_id"], target["symbol"])
    finally:
        client.close()
    with ws.open_ledger() as ledger, ledger.transaction():
        recording.record_order_state(
            ledger, target["exchange"], target["client_order_id"], order, {"via": "cancel"}
        )
        recording.record_fills(
            ledger, target["exchange"], order.trades, "trade", target["client_order_id"]
        )
    if order.status in FINISHED:
        # Not an exchange outage (exit 5 pages someone): the order ended before the cancel.
        done = FindingsError(
            f"order {target['order_id']} is already {order_status(order.status, order.filled)}"
            f" (filled {fmt(order.filled)} of {fmt(order.amount)}): nothing to cancel"
        )
        done.details = {"order": order_record(order, target["exchange"])}
        raise done
    return order
