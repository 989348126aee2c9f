"""One JSON shape per kind of record, used by every command's `--json` (docs/json.md).

Amounts are normalized decimal strings ("10", "0.5"), timestamps RFC 3339 with an explicit
offset, nested data as objects (never a JSON string inside JSON), order states spelled as
ccxt spells them (`canceled`).
"""

from __future__ import annotations

import json
from dataclasses import fields, is_dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any


def decimal_str(value: Decimal) -> str:
    """A normalized decimal string: no exponent, no trailing zeros ("10", "0.5", "-3")."""
    if not value.is_finite():
        return str(value)
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def timestamp(value: datetime) -> str:
    """RFC 3339 with an explicit offset; a naive time is vhc's UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


#: ccxt order status -> the order status of docs/json.md (the ledger's event names).
ORDER_STATUS = {
    "open": "open",
    "closed": "filled",
    "canceled": "canceled",
    "cancelled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
}


def order_status(status: str | None, filled: Decimal | None) -> str:
    """One spelling for an order's state, whether the ledger or the exchange told it."""
    name = ORDER_STATUS.get(status or "", status or "intent")
    if name == "open" and filled:
        return "partially_filled"
    return name


def order_record(
    row: Any, exchange: str | None = None, client_order_id: str | None = None
) -> dict[str, Any]:
    """An order, from the exchange (exchanges.base.Order) or the ledger (a `trade orders` row)."""
    get = row.get if isinstance(row, dict) else lambda k, d=None: getattr(row, k, d)
    filled = get("filled")
    return {
        "exchange": get("exchange", exchange),
        "order_id": get("order_id") or get("id"),
        "client_order_id": get("client_order_id") or client_order_id,
        "symbol": get("symbol"),
        "side": get("side"),
        "type": get("type"),
        "amount": jsonable(get("amount")),
        "price": jsonable(get("price")),
        "status": order_status(get("state") or get("status"), filled),
        "filled": jsonable(filled),
        "average": jsonable(get("average")),
        "timestamp": jsonable(get("timestamp")),
    }


def trade_record(trade: Any, exchange: str | None = None) -> dict[str, Any]:
    """A fill (exchanges.base.Trade or a ledger trades row)."""
    get = trade.get if isinstance(trade, dict) else lambda k, d=None: getattr(trade, k, d)
    return {
        "exchange": get("exchange", exchange),
        "trade_id": get("trade_id") or get("id"),
        "order_id": get("order_id"),
        "client_order_id": get("client_order_id"),
        "symbol": get("symbol"),
        "side": get("side"),
        "amount": jsonable(get("amount")),
        "price": jsonable(get("price")),
        "cost": jsonable(get("cost")),
        "fee": jsonable(get("fee")),
        "fee_currency": get("fee_currency"),
        "timestamp": jsonable(get("timestamp")),
    }


def ledger_event_record(row: dict[str, Any]) -> dict[str, Any]:
    """A control event of the audit trail; its details as an object, not a JSON string."""
    return {
        "seq": row["seq"],
        "timestamp": jsonable(row["timestamp"]),
        "kind": row["kind"],
        "actor": row.get("actor"),
        "subject": row.get("subject"),
        "details": jsonable(nested(row.get("details"))),
    }


def allowlist_record(
    entry: Any, state: str | None = None, usable_from: datetime | None = None
) -> dict[str, Any]:
    """An allowlist entry, whether just added, removed or listed."""
    listed = getattr(entry, "usable_from", None)
    if usable_from is None and not callable(listed):
        usable_from = listed
    return {
        "asset": getattr(entry, "asset", None),
        "address": entry.address,
        "network": getattr(entry, "network", None),
        "tag": getattr(entry, "tag", None),
        "label": getattr(entry, "label", None),
        "state": state or getattr(entry, "state", None),
        "added_at": jsonable(getattr(entry, "added_at", None)),
        "usable_from": jsonable(usable_from),
    }


def _by_type(value: Any) -> dict[str, Any] | None:
    """The one serializer of a core record type, if value is one."""
    from .exchanges.base import Order, Trade

    if isinstance(value, Order):
        return order_record(value)
    if isinstance(value, Trade):
        return trade_record(value)
    return None


def jsonable(value: Any) -> Any:
    """Dataclasses, Decimals, times, paths and enums as JSON values in vhc's one vocabulary."""
    if is_dataclass(value) and not isinstance(value, type):
        record = _by_type(value)
        if record is not None:
            return record
        names = [f.name for f in fields(value) if not f.name.startswith("_")]
        return {name: jsonable(getattr(value, name)) for name in names}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Decimal):
        return decimal_str(value)
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    return value


def nested(value: Any) -> Any:
    """A payload stored as JSON text (ledger details) as the object it holds."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
