"""The three signal shapes (Sheets JSON, Telegram text, TradingView JSON) into one `Parsed` signal.

Pure functions: bytes in, a `Parsed` or a `BadSignal` (answered 422) out. Numbers are read as
Decimal from their JSON text (never through float); anything huge, negative, non-finite or
with more digits than the ledger holds is refused here, before it reaches the queue.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

#: A body larger than this is refused before it is parsed.
MAX_BODY_BYTES = 16 * 1024
#: The largest amount or price a signal may carry (far above any real order).
MAX_NUMBER = Decimal("1E12")
#: Fraction digits the ledger keeps.
MAX_FRACTION_DIGITS = 18
#: Unix seconds above this are taken for milliseconds and refused (the year 5138).
MAX_UNIX_SECONDS = 10**11

_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9._-]{0,23}(/[A-Z0-9._-]{1,15}(:[A-Z0-9._-]{1,15})?)?")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
_ID = re.compile(r"[\x21-\x7e]{1,128}")  # printable ASCII, no spaces


class BadSignal(Exception):
    """The body is not a signal vhc can act on (422); `details` say where."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


@dataclass(frozen=True)
class Parsed:
    """One signal, whatever its source, as the queue keeps it."""

    external_id: str  # the sender's id (Telegram: chat:message)
    signal_time: datetime  # aware, UTC
    symbol: str  # upper case, e.g. BTC/USD (or RELIANCE)
    venue: str | None  # the exchange the signal names (an account name, or e.g. NSE)
    side: Literal["buy", "sell"]
    type: Literal["market", "limit"]
    amount: Decimal
    price: Decimal | None  # limit orders only
    product: str | None = None  # the seed's productType (MIS, CNC, ...): kept, not acted on
    chat_id: str | None = None
    message_id: str | None = None


# -- numbers and times ---------------------------------------------------------------------
def _number(value: Any, what: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what} must be a number")
    if isinstance(value, Decimal | int):
        d = Decimal(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,30}(\.[0-9]{1,30})?\s*", value):
        d = Decimal(value.strip())
    else:
        raise ValueError(f"{what} must be a number like 10 or 0.01")
    if not d.is_finite():
        raise ValueError(f"{what} must be a finite number")
    if d <= 0:
        raise ValueError(f"{what} must be greater than 0")
    if d > MAX_NUMBER:
        raise ValueError(f"{what} is too large (at most {MAX_NUMBER:f})")
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_FRACTION_DIGITS:
        raise ValueError(f"{what} has more than {MAX_FRACTION_DIGITS} decimal places")
    return d


def parse_time(value: Any, what: str = "timestamp") -> datetime:
    """Unix seconds (a number) or RFC 3339 text with an offset, as an aware UTC datetime."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{what} must be unix seconds or RFC 3339 text")
    if isinstance(value, int | Decimal) or (
        isinstance(value, str) and re.fullmatch(r"[0-9]{1,15}(\.[0-9]{1,9})?", value)
    ):
        seconds = Decimal(value)
        if not seconds.is_finite() or seconds < 0:
            raise ValueError(f"{what} must be unix seconds or RFC 3339 text")
        if seconds >= MAX_UNIX_SECONDS:
            raise ValueError(f"{what} looks like milliseconds: send unix seconds")
        return datetime.fromtimestamp(float(seconds), UTC)
    if isinstance(value, str) and len(value) <= 40:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{what} {value!r} is not RFC 3339 text") from None
        if moment.tzinfo is None:
            raise ValueError(f"{what} needs an offset (e.g. 2025-01-30T10:00:00Z)")
        return moment.astimezone(UTC)
    raise ValueError(f"{what} must be unix seconds or RFC 3339 text")


def _symbol(value: str) -> str:
    text = value.strip().upper()
    if not _SYMBOL.fullmatch(text):
        raise ValueError("symbol must look like BTC/USD (letters, digits, one '/')")
    return text


def _order_type(value: str | None, price: Decimal | None) -> Literal["market", "limit"]:
    if value is None:
        return "limit" if price is not None else "market"
    text = value.strip().lower()
    if text == "market":
        return "market"
    if text == "limit":
        return "limit"
    raise ValueError("orderType must be MARKET or LIMIT")


def _side(value: str) -> Literal["buy", "sell"]:
    text = value.strip().lower()
    if text == "buy":
        return "buy"
    if text == "sell":
        return "sell"
    raise ValueError("the side must be BUY or SELL")


def _price_for(kind: Literal["market", "limit"], price: Decimal | None) -> Decimal | None:
    if kind == "limit" and price is None:
        raise BadSignal("a LIMIT signal needs a price", {"field": "price"})
    return price if kind == "limit" else None  # a market order's price is only a reference


# -- JSON bodies -----------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def load_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, numbers as Decimal; BadSignal when it is not one."""
    try:
        data = json.loads(
            body.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadSignal("the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadSignal("the body must be a JSON object")
    return data


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class SheetsBody(_Strict):
    """The seed's Sheets / Apps Script webhook body."""

    id: str = Field(pattern=_ID.pattern)
    timestamp: Any
    symbol: str = Field(max_length=40)
    exchange: str = Field(max_length=40)
    transactionType: str = Field(max_length=8)  # noqa: N815 - the seed's field name
    quantity: Any
    price: Any = None
    orderType: str = Field(default="MARKET", max_length=8)  # noqa: N815
    productType: str | None = Field(default=None, max_length=16)  # noqa: N815

    @field_validator("exchange")
    @classmethod
    def _venue(cls, v: str) -> str:
        if not _WORD.fullmatch(v.strip()):
            raise ValueError("exchange must be a name like paper or NSE")
        return v.strip()


class TradingViewBody(_Strict):
    """A TradingView alert's message: the secret rides in the body (`passphrase`)."""

    passphrase: str = Field(max_length=256)
    id: str | None = Field(default=None, pattern=_ID.pattern)
    timestamp: Any
    symbol: str = Field(max_length=40)
    exchange: str | None = Field(default=None, max_length=40)
    action: str = Field(max_length=8)
    quantity: Any
    price: Any = None
    orderType: str | None = Field(default=None, max_length=8)  # noqa: N815


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    # Only where and what: never the input (it could be a mistyped secret).
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
        for e in exc.errors()
    ]


def _model(model: type[_Strict], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = _errors(exc)
        raise BadSignal(
            f"invalid signal: {errors[0]['field']}: {errors[0]['problem']}", {"errors": errors}
        ) from None


def _field(what: str, fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ValueError as exc:
        raise BadSignal(f"invalid signal: {what}: {exc}", {"field": what}) from None


def parse_sheets(data: dict[str, Any]) -> Parsed:
    """A Sheets body (already loaded JSON)."""
    body: SheetsBody = _model(SheetsBody, data)
    price = None if body.price in (None, "", 0) else _field("price", _number, body.price, "price")
    kind = _field("orderType", _order_type, body.orderType, price)
    return Parsed(
        external_id=body.id,
        signal_time=_field("timestamp", parse_time, body.timestamp),
        symbol=_field("symbol", _symbol, body.symbol),
        venue=body.exchange,
        side=_field("transactionType", _side, body.transactionType),
        type=kind,
        amount=_field("quantity", _number, body.quantity, "quantity"),
        price=_price_for(kind, price),
        product=body.productType,
    )


def parse_tradingview(data: dict[str, Any], fallback_id: str) -> Parsed:
    """A TradingView body (passphrase already checked); `fallback_id` when it has no `id`."""
    body: TradingViewBody = _model(TradingViewBody, data)
    price = None if body.price in (None, "", 0) else _field("price", _number, body.price, "price")
    kind = _field("orderType", _order_type, body.orderType, price)
    venue = body.exchange.strip() if body.exchange else None
    if venue is not None and not _WORD.fullmatch(venue):
        raise BadSignal("invalid signal: exchange must be a name like paper", {"field": "exchange"})
    return Parsed(
        external_id=body.id or fallback_id,
        signal_time=_field("timestamp", parse_time, body.timestamp),
        symbol=_field("symbol", _symbol, body.symbol),
        venue=venue,
        side=_field("action", _side, body.action),
        type=kind,
        amount=_field("quantity", _number, body.quantity, "quantity"),
        price=_price_for(kind, price),
    )


# -- Telegram --------------------------------------------------------------------------------
_KEYS = {
    "qty": "qty",
    "quantity": "qty",
    "price": "price",
    "type": "type",
    "order type": "type",
    "product": "product",
}


def telegram_message(data: dict[str, Any]) -> tuple[str, str, int, str]:
    """(chat id, message id, date, text) of an update's `message`; BadSignal otherwise."""
    message = data.get("message")
    if not isinstance(message, dict):
        raise BadSignal("the update carries no message (only text messages are signals)")
    chat = message.get("chat")
    chat_id = chat.get("id") if isinstance(chat, dict) else None
    message_id, date, text = message.get("message_id"), message.get("date"), message.get("text")
    if not isinstance(chat_id, int) or isinstance(chat_id, bool):
        raise BadSignal("the message has no chat id")
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise BadSignal("the message has no message_id")
    if not isinstance(date, int) or isinstance(date, bool):
        raise BadSignal("the message has no date")
    if not isinstance(text, str) or not text.strip():
        raise BadSignal("the message has no text")
    if len(text) > 1000:
        raise BadSignal("the message is too long to be a signal")
    return str(chat_id), str(message_id), date, text


def parse_telegram_text(text: str, chat_id: str, message_id: str, date: int) -> Parsed:
    """The seed's text format: `BUY RELIANCE NSE` then `Qty:`, `Price:`, `Type:`, `Product:`.

    Lines may also be separated by ` / ` (`BUY BTC/USD paper / Qty: 0.01 / Type: MARKET`).
    """
    lines = [
        part.strip()
        for line in text.strip().splitlines()
        for part in line.split(" / ")
        if part.strip()
    ]
    head = lines[0].split()
    if len(head) not in (2, 3):
        raise BadSignal(
            "the first line must be SIDE SYMBOL [EXCHANGE], e.g. BUY BTC/USD paper",
            {"line": 1},
        )
    fields: dict[str, str] = {}
    for number, line in enumerate(lines[1:], start=2):
        key, sep, value = line.partition(":")
        name = _KEYS.get(key.strip().lower())
        if not sep or name is None:
            raise BadSignal(
                f"line {number}: expected Qty:, Price:, Type: or Product:", {"line": number}
            )
        if name in fields:
            raise BadSignal(f"line {number}: {key.strip()} is given twice", {"line": number})
        fields[name] = value.strip()
    if "qty" not in fields:
        raise BadSignal("the signal needs a Qty: line", {"field": "Qty"})
    venue = head[2] if len(head) == 3 else None
    if venue is not None and not _WORD.fullmatch(venue):
        raise BadSignal("the exchange must be a name like paper or NSE", {"line": 1})
    price = _field("Price", _number, fields["price"], "Price") if "price" in fields else None
    kind = _field("Type", _order_type, fields.get("type"), price)
    product = fields.get("product")
    if product is not None and not _WORD.fullmatch(product):
        raise BadSignal("Product must be a word like MIS or CNC", {"field": "Product"})
    return Parsed(
        external_id=f"{chat_id}:{message_id}",
        signal_time=_field("date", parse_time, date),
        symbol=_field("symbol", _symbol, head[1]),
        venue=venue,
        side=_field("side", _side, head[0]),
        type=kind,
        amount=_field("Qty", _number, fields["qty"], "Qty"),
        price=_price_for(kind, price),
        product=product,
        chat_id=chat_id,
        message_id=message_id,
    )
