"""The one doorway for numbers: amounts, prices and fees become Decimal here and only here."""

from __future__ import annotations

from decimal import Context, Decimal, InvalidOperation

from .errors import InputError

#: DuckDB money columns are DECIMAL(38,18): 20 integer digits, 18 fraction digits.
SCALE = Decimal("1E-18")
MAX_ABS = Decimal("1E20")
#: Decimal's default 28 digits cannot hold 20 + 18 digits: ledger arithmetic uses this context.
LEDGER_CONTEXT = Context(prec=80)
CENT = Decimal("0.01")
ZERO = Decimal(0)

#: Quote currencies valued at one US dollar.
USD_LIKE = frozenset({"USD", "USDT", "USDC", "DAI", "PYUSD", "TUSD", "BUSD", "FDUSD", "ZUSD"})


def to_decimal(value: object, what: str = "value") -> Decimal:
    """Convert a string, int, Decimal or (ccxt's) float to Decimal; floats go through str()."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool) or value is None:
        raise InputError(f"{what}: expected a number, got {value!r}")
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise InputError(f"{what}: {value!r} is not a number") from None
    elif isinstance(value, float):
        # str() gives the shortest repr that round-trips, i.e. what the exchange sent.
        result = Decimal(str(value))
    else:
        raise InputError(f"{what}: expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise InputError(f"{what}: {value!r} is not a finite number")
    return result


def to_ledger_decimal(value: object, what: str = "value") -> Decimal:
    """A Decimal that fits DECIMAL(38,18) exactly, or a clear error."""
    d = to_decimal(value, what)
    if d.copy_abs() >= MAX_ABS:
        raise InputError(f"{what}: {d} is too large (at most 20 integer digits)")
    q = d.quantize(SCALE, context=LEDGER_CONTEXT)
    if q != d:
        raise InputError(f"{what}: {d} has more than 18 decimal places")
    return q


def optional_decimal(value: object, what: str = "value") -> Decimal | None:
    """Like to_decimal, but None stays None (ccxt leaves unknown fields as None)."""
    return None if value is None else to_decimal(value, what)


def is_usd_like(currency: str) -> bool:
    """True for USD and the stablecoins counted as USD."""
    return currency.upper() in USD_LIKE


def cents(value: Decimal) -> Decimal:
    """Round half-up to cents: only for printed forms and reports."""
    from decimal import ROUND_HALF_UP

    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def fmt(value: Decimal) -> str:
    """Plain notation without trailing zeros, for people (never scientific)."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
