"""Kite's instrument names (`NSE:INFY`): cheap to import, used on the trade and ledger paths."""

from __future__ import annotations

import re

#: Kite accounts hold and trade in rupees.
QUOTE = "INR"
#: Kite's instrument names, e.g. NSE:INFY, BSE:TATAMOTORS, NSE:M&M.
SYMBOL_PATTERN = r"^[A-Z]{2,4}:[A-Z0-9&_.-]+$"
_SYMBOL = re.compile(SYMBOL_PATTERN)


def is_kite_symbol(symbol: str) -> bool:
    """`NSE:INFY`-style: an exchange segment, a colon and Kite's trading symbol."""
    return bool(_SYMBOL.fullmatch(symbol))


def symbol_parts(symbol: str) -> tuple[str, str]:
    """(asset, quote) of a Kite symbol: the instrument itself, priced in INR."""
    return symbol, QUOTE
