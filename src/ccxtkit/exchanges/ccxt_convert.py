"""ccxt's dicts become vhc's dataclasses here: numbers to Decimal, milliseconds to UTC datetimes.

ccxt hands back floats (see gateway.py on why we keep its default `number`). Each float
goes through `money.to_decimal`, i.e. `Decimal(str(x))`: str() gives the shortest repr
that round-trips, which is the decimal the exchange sent for any price or amount with
at most 15 significant digits. Float noise (`8.580000000000001e-08`) can still carry more
than the ledger's 18 decimal places: every number is rounded to 18 places here, once, so an
order that filled is never refused afterwards for its fee's last digit. User input keeps the
strict check (money.to_ledger_decimal).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ccxtkit.money import LEDGER_CONTEXT, SCALE
from ccxtkit.money import to_decimal as _to_decimal_raw

from .base import Balance, Candle, LedgerEntry, Market, Order, Ticker, Trade, Transfer

Raw = dict[str, Any]


def to_decimal(value: object, what: str = "value") -> Decimal:
    """An exchange's number as a Decimal with at most the ledger's 18 decimal places."""
    return _quantized(_to_decimal_raw(value, what))


def _quantized(value: Decimal) -> Decimal:
    """Rounded (half even) to 18 places only when it has more: other values keep their form."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -18:
        return value.quantize(SCALE, context=LEDGER_CONTEXT)
    return value


def optional_decimal(value: object, what: str = "value") -> Decimal | None:
    """Like to_decimal, but None stays None (ccxt leaves unknown fields as None)."""
    return None if value is None else to_decimal(value, what)


_TRANSFER_STATUS = {"ok": "ok", "pending": "pending", "failed": "failed", "canceled": "canceled"}
_ORDER_STATUS = {"open", "closed", "canceled", "rejected", "expired"}


def ms_to_datetime(ms: object) -> datetime | None:
    """ccxt's millisecond timestamps as aware UTC datetimes."""
    if ms is None:
        return None
    return datetime.fromtimestamp(int(to_decimal(ms, "timestamp")) / 1000, tz=UTC)


def datetime_to_ms(when: datetime) -> int:
    """An aware datetime as ccxt's milliseconds (naive datetimes are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _dec(value: object, what: str) -> Decimal:
    return Decimal(0) if value is None else to_decimal(value, what)


def _step(market: Raw, key: str, tick_size: bool) -> Decimal | None:
    value = optional_decimal((market.get("precision") or {}).get(key), key)
    if value is None or value <= 0:
        return None
    # ccxt's precisionMode: TICK_SIZE gives the step itself, DECIMAL_PLACES a digit count.
    return value if tick_size else Decimal(1).scaleb(-int(value))


def to_market(raw: Raw, tick_size: bool = True) -> Market:
    """A ccxt market as a Market."""
    limits = (raw.get("limits") or {}).get("amount") or {}
    return Market(
        symbol=str(raw["symbol"]),
        base=str(raw["base"]),
        quote=str(raw["quote"]),
        amount_step=_step(raw, "amount", tick_size),
        price_step=_step(raw, "price", tick_size),
        min_amount=optional_decimal(limits.get("min"), "min amount"),
    )


def to_ticker(raw: Raw) -> Ticker:
    """A ccxt ticker as a Ticker (last falls back to close, then the bid/ask midpoint)."""
    bid = optional_decimal(raw.get("bid"), "bid")
    ask = optional_decimal(raw.get("ask"), "ask")
    last = optional_decimal(raw.get("last"), "last") or optional_decimal(raw.get("close"), "close")
    if last is None and bid is not None and ask is not None:
        last = (bid + ask) / 2
    if last is None:
        last = bid or ask or Decimal(0)
    return Ticker(
        symbol=str(raw["symbol"]),
        last=last,
        bid=bid,
        ask=ask,
        timestamp=ms_to_datetime(raw.get("timestamp")),
    )


def to_balances(raw: Raw) -> dict[str, Balance]:
    """A ccxt balance structure as Balances by asset (assets with nothing at all left out)."""
    out: dict[str, Balance] = {}
    totals = raw.get("total") or {}
    for asset in totals:
        entry = raw.get(asset) or {}
        total = optional_decimal(entry.get("total"), f"{asset} total")
        free = optional_decimal(entry.get("free"), f"{asset} free")
        used = optional_decimal(entry.get("used"), f"{asset} used")
        if total is None:
            total = (free or Decimal(0)) + (used or Decimal(0))
        if free is None:
            free = total - (used or Decimal(0))
        if used is None:
            used = total - free
        if total == 0 and free == 0 and used == 0:
            continue
        out[str(asset)] = Balance(asset=str(asset), free=free, used=used, total=total)
    return out


def _fee(raw: Raw) -> tuple[Decimal | None, str | None]:
    fees = [f for f in (raw.get("fees") or []) if f and f.get("cost") is not None]
    fee = raw.get("fee") or None
    if not fees and fee and fee.get("cost") is not None:
        fees = [fee]
    if not fees:
        return None, None
    currency = fees[0].get("currency")
    total = sum(
        (to_decimal(f["cost"], "fee") for f in fees if f.get("currency") == currency), Decimal(0)
    )
    return total, currency


def to_trade(raw: Raw) -> Trade:
    """A ccxt trade (fill) as a Trade."""
    amount = _dec(raw.get("amount"), "trade amount")
    price = _dec(raw.get("price"), "trade price")
    cost = optional_decimal(raw.get("cost"), "trade cost")
    fee, fee_currency = _fee(raw)
    return Trade(
        id=str(raw["id"]),
        order_id=None if raw.get("order") is None else str(raw["order"]),
        symbol=str(raw["symbol"]),
        side=str(raw["side"]),
        amount=amount,
        price=price,
        cost=_quantized(amount * price) if cost is None else cost,
        fee=fee or Decimal(0),
        fee_currency=fee_currency,
        timestamp=ms_to_datetime(raw.get("timestamp")) or datetime.now(UTC),
        client_order_id=raw.get("clientOrderId"),
    )


def to_order(raw: Raw, fallback: Raw | None = None) -> Order:
    """A ccxt order as an Order; `fallback` fills what the exchange's reply left out."""
    fb = fallback or {}

    def pick(key: str) -> Any:
        value = raw.get(key)
        return fb.get(key) if value is None else value

    amount = _dec(pick("amount"), "order amount")
    filled = _dec(raw.get("filled"), "filled")
    remaining = optional_decimal(raw.get("remaining"), "remaining")
    status = raw.get("status")
    if status not in _ORDER_STATUS:
        status = "open"
    fee, fee_currency = _fee(raw)
    # Some exchanges (kraken) list only the trade ids here: keep complete fills only.
    trades = tuple(
        to_trade(t)
        for t in (raw.get("trades") or [])
        if t.get("id") is not None and t.get("side") and t.get("amount") is not None
    )
    return Order(
        id=str(raw["id"]),
        client_order_id=pick("clientOrderId"),
        symbol=str(pick("symbol")),
        side=str(pick("side")),
        type=str(pick("type")),
        amount=amount,
        price=optional_decimal(pick("price"), "order price"),
        status=str(status),
        filled=filled,
        remaining=max(amount - filled, Decimal(0)) if remaining is None else remaining,
        average=optional_decimal(raw.get("average"), "average"),
        fee=fee,
        fee_currency=fee_currency,
        timestamp=ms_to_datetime(raw.get("timestamp")),
        trades=trades,
    )


def to_transfer(raw: Raw, kind: str) -> Transfer:
    """A ccxt transaction as a Transfer of the given kind (deposit | withdrawal)."""
    fee = raw.get("fee") or {}
    return Transfer(
        id=str(raw.get("id") or raw.get("txid")),
        kind=kind,
        asset=str(raw.get("currency")),
        amount=_dec(raw.get("amount"), "transfer amount"),
        fee=optional_decimal(fee.get("cost"), "transfer fee"),
        fee_currency=fee.get("currency"),
        status=_TRANSFER_STATUS.get(str(raw.get("status")), "pending"),
        timestamp=ms_to_datetime(raw.get("timestamp")) or datetime.now(UTC),
        txid=raw.get("txid"),
        address=raw.get("address") or raw.get("addressTo"),
        network=raw.get("network"),
        tag=raw.get("tag") or raw.get("tagTo"),
    )


def to_ledger_entry(raw: Raw) -> LedgerEntry:
    """A ccxt ledger entry as a LedgerEntry (amount signed by its direction)."""
    amount = _dec(raw.get("amount"), "ledger amount")
    fee = raw.get("fee") or {}
    return LedgerEntry(
        id=str(raw.get("id")),
        reference_id=raw.get("referenceId"),
        type=str(raw.get("type") or ""),
        asset=str(raw.get("currency")),
        amount=-amount if raw.get("direction") == "out" else amount,
        fee=_dec(fee.get("cost"), "ledger fee"),
        timestamp=ms_to_datetime(raw.get("timestamp")) or datetime.now(UTC),
    )


def to_candle(row: list[Any]) -> Candle:
    """A ccxt OHLCV row [ms, o, h, l, c, v] as a Candle."""
    when = ms_to_datetime(row[0])
    assert when is not None
    return Candle(
        timestamp=when,
        open=to_decimal(row[1], "open"),
        high=to_decimal(row[2], "high"),
        low=to_decimal(row[3], "low"),
        close=to_decimal(row[4], "close"),
        volume=_dec(row[5], "volume"),
    )
