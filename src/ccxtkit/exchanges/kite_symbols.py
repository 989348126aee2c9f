"""Kite's instrument names (`NSE:INFY`): cheap to import, used on the trade and ledger paths."""

from __future__ import annotations

import re

#: Kite accounts hold and trade in rupees.
QUOTE = "INR"
_SYMBOL = re.compile(r"[A-Z]{2,4}:[A-Z0-9&_.-]+")


def is_kite_symbol(symbol: str) -> bool:
    """`NSE:INFY`-style: an exchange segment, a colon and Kite's trading symbol."""
    return bool(_SYMBOL.fullmatch(symbol))


def symbol_parts(symbol: str) -> tuple[str, str]:
    """(asset, quote) of a Kite symbol: the instrument itself, priced in INR."""
    return symbol, QUOTE
