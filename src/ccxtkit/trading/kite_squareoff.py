"""The kill switch's square-off of a Kite account (the seed's term).

After the sweep has cancelled every open order, each open intraday position (MIS, NRML) is
closed with the opposite order in the same product, at market. Delivery shares (CNC: today's
CNC position netted with the holdings) are sold only with `--flatten`, like the holdings of a
ccxt account. Every order goes through the kill switch's recorded path
(`trading.orders.send_emergency`: intent first, sent once, looked up by its tag on a lost
reply, never resent blind). Errors become lines of the account's result, never exceptions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..errors import OrderOutcomeUnknown, VhcError
from ..logs import redact
from ..money import fmt

if TYPE_CHECKING:
    from ..exchanges.base import ExchangeClient
    from ..risk.flatten import AccountResult
    from ..workspace import Workspace


def is_kite_client(client: Any) -> bool:
    """The client of a Kite account (positions and holdings of its own)."""
    return getattr(client, "broker", None) == "kite"


def square_off(
    ws: Workspace, name: str, client: ExchangeClient, result: AccountResult, flatten: bool
) -> None:
    """Close intraday positions; with `flatten` sell delivery shares too."""
    from .accounts import is_live_account
    from .orders import OrderRequest, send_emergency

    kite: Any = client
    live = is_live_account(name, ws.config.exchange(name))
    legs: list[tuple[str, str, Decimal]] = []  # symbol, product, signed quantity to close
    delivery: dict[str, Decimal] = {}
    for p in kite.fetch_positions():
        if p["product"] == "CNC":
            delivery[p["symbol"]] = delivery.get(p["symbol"], Decimal(0)) + p["quantity"]
        elif p["quantity"] != 0:
            legs.append((p["symbol"], p["product"], p["quantity"]))
    if flatten:
        for h in kite.fetch_holdings():
            delivery[h["symbol"]] = delivery.get(h["symbol"], Decimal(0)) + h["quantity"]
        legs += [(s, "CNC", q) for s, q in sorted(delivery.items()) if q > 0]
    for symbol, product, quantity in legs:
        side = "sell" if quantity > 0 else "buy"
        amount = abs(quantity)
        entry = {"asset": symbol, "symbol": symbol, "amount": fmt(amount), "product": product}
        request = OrderRequest(name, symbol, side, amount, source="kill_switch", product=product)
        try:
            cid, order, _ = send_emergency(ws, client, request, symbol, live)
        except OrderOutcomeUnknown as exc:
            result.closed.append({**entry, "status": "unknown", "note": _describe(exc)})
            result.errors.append(
                f"{symbol}: the outcome of closing {fmt(amount)} ({product}) is unknown "
                "(recorded; run `vhc trade recover`, do not close it again by hand)"
            )
            continue
        except Exception as exc:  # noqa: BLE001 - one position's failure must not stop the rest
            result.errors.append(
                f"{symbol}: closing {fmt(amount)} ({product}) failed: {_describe(exc)}"
            )
            continue
        result.closed.append(
            {
                **entry,
                "side": side,
                "order_id": order.id if order else "",
                "client_order_id": cid,
                "status": order.status if order else "unknown",
            }
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, VhcError):
        return redact(exc.message)
    return redact(f"{type(exc).__name__}: {exc}")
