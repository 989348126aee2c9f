"""How the risk limits print money, amounts and percentages in their messages."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from ccxtkit.money import cents, fmt


def usd(value: Decimal, exact: bool = False) -> str:
    """'$12,000.00'; with exact=True every digit is kept so near-boundary values differ."""
    if exact and value != cents(value):
        whole, _, frac = fmt(value).partition(".")
        return f"${int(whole):,}.{frac}" if whole != "-0" else f"-$0.{frac}"
    return f"${cents(value):,.2f}"


def qty(value: Decimal) -> str:
    """An asset amount for people: thousands separators, trailing zeros dropped."""
    text = fmt(value)
    whole, dot, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}{dot}{frac}"


def same_cents(a: Decimal, b: Decimal) -> bool:
    """True when two USD amounts print alike at cents, so the message must show all digits."""
    return cents(a) == cents(b)


def pct(value: Decimal, exact: bool) -> str:
    if exact:
        return f"{fmt(value)}%"
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}%"


__all__ = ["pct", "qty", "same_cents", "usd"]
