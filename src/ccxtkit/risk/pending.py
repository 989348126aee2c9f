"""Open orders and unresolved intents as the risk limits count them: as if they filled.

See `risk.exposure` for the rule; this module holds the query and the valuation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ccxtkit.ledger.names import TERMINAL_ORDER_EVENTS, TERMINAL_ORDER_STATUSES
from ccxtkit.money import is_usd_like

ZERO = Decimal(0)
# The ledger's vocabulary (ledger.names), as sorted tuples for SQL IN lists.
TERMINAL_EVENTS = tuple(sorted(TERMINAL_ORDER_EVENTS))
TERMINAL_STATUSES = tuple(sorted(TERMINAL_ORDER_STATUSES))


def sql_in(values: tuple[str, ...]) -> str:
    """A SQL IN list of literals from our own constants (never user input)."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _price(asset: str, prices_usd: Mapping[str, Decimal]) -> Decimal | None:
    return Decimal(1) if is_usd_like(asset) else prices_usd.get(asset)


@dataclass
class Pending:
    positions: dict[str, Decimal] = field(default_factory=dict)
    volume: Decimal = ZERO
    volume_unpriced: set[str] = field(default_factory=set)


def pending_exposure(
    rows: list[tuple[Any, ...]], prices_usd: Mapping[str, Decimal], unpriced: set[str]
) -> Pending:
    """What the open orders' remainders would add to positions and to today's volume."""
    out = Pending()
    for symbol, side, kind, amount, price, filled in rows:
        base, _, quote = str(symbol).partition("/")
        quote = quote.split(":")[0]
        remaining = Decimal(amount) - Decimal(filled or 0)
        if remaining <= 0:
            continue
        base_usd, quote_usd = _price(base, prices_usd), _price(quote, prices_usd)
        limit_usd = None if price is None or quote_usd is None else Decimal(price) * quote_usd
        # Worst case for the limits: a buy fills at its limit, a sell at the higher of its
        # limit and the market, a market order at the market.
        candidates = [v for v in (limit_usd, base_usd) if v is not None]
        unit: Decimal | None = max(candidates) if candidates else None
        if kind == "limit" and side == "buy" and limit_usd is not None:
            unit = limit_usd
        if unit is None:
            out.volume_unpriced.add(base if base_usd is None else quote)
            if not is_usd_like(base):
                unpriced.add(base)
            continue
        out.volume += remaining * unit
        acquired = base if side == "buy" else quote
        if is_usd_like(acquired):
            continue
        # The position is valued at the market; a sell's proceeds at its worst fill.
        add = remaining * (base_usd if side == "buy" and base_usd is not None else unit)
        out.positions[acquired] = out.positions.get(acquired, ZERO) + add
    return out
