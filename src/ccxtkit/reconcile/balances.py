"""The ledger's balance of each (exchange, asset): the one definition reconcile asserts against.

balance = trades (buy: base +amount, quote -cost; sell: base -amount, quote +cost; the fee
-fee in `fee_currency`, the quote when it is unset) + transfers (deposit, internal_in and
opening_balance +amount; withdrawal and internal_out -amount; a fee -fee in its currency, else
the asset). A transfer is counted in its latest state: rows that share (exchange, kind,
transfer_id) are one transfer, and the one with the highest seq wins, so a status change
recorded as a new row never doubles it. Transfers whose latest status is failed, canceled or
rejected moved nothing. Balance snapshots are NOT used: they are the exchange's word, and the
point is to check the exchange against the ledger's own history.

Summed in DuckDB (one pass per table, grouped), so a million trades costs tens of milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from ccxtkit.ledger.names import (
    NOT_MOVED,
    OPENING_BALANCE,
    TRANSFER_IN_KINDS,
    TRANSFER_OUT_KINDS,
    TRANSFERS_LATEST,
    sql_list,
)
from ccxtkit.ledger.store import Ledger

ZERO = Decimal(0)
IN_KINDS = TRANSFER_IN_KINDS | {OPENING_BALANCE}
OUT_KINDS = TRANSFER_OUT_KINDS


_TRADES_SQL = """
SELECT exchange, asset, quote, coalesce(fee_currency, quote), side,
       sum(amount), sum(cost), sum(fee)
FROM trades {where} GROUP BY ALL
"""

#: The latest row of each transfer (ledger.names.TRANSFERS_LATEST).
_TRANSFERS_SQL = f"""
WITH latest AS (
    SELECT exchange, kind, asset, amount, fee, fee_currency, status FROM {TRANSFERS_LATEST}
    {{where}}
)
SELECT exchange, asset, coalesce(fee_currency, asset), lower(kind), sum(amount), sum(fee)
FROM latest
WHERE coalesce(lower(status), '') NOT IN {sql_list(NOT_MOVED)}
GROUP BY ALL
"""


def _where(exchanges: Iterable[str] | None) -> tuple[str, list[str]]:
    if exchanges is None:
        return "", []
    names = sorted(set(exchanges))
    if not names:
        return "WHERE false", []
    return "WHERE exchange IN (" + ", ".join("?" for _ in names) + ")", names


def ledger_balances(
    ledger: Ledger, exchanges: Iterable[str] | None = None
) -> dict[tuple[str, str], Decimal]:
    """Balance per (exchange, asset) from the ledger's whole history (module docstring)."""
    where, params = _where(exchanges)
    out: dict[tuple[str, str], Decimal] = {}

    def add(exchange: str, asset: str | None, amount: Decimal | None) -> None:
        if asset and amount:
            key = (exchange, asset.upper())
            out[key] = out.get(key, ZERO) + amount

    with localcontext() as ctx:
        ctx.prec = 80  # sums of DECIMAL(38,18) must not round
        for ex, asset, quote, fee_cur, side, amount, cost, fee in ledger.query(
            _TRADES_SQL.format(where=where), params
        ):
            sign = 1 if side == "buy" else -1
            add(ex, asset, sign * amount)
            add(ex, quote, -sign * cost)
            add(ex, fee_cur, -(fee or ZERO))
        for ex, asset, fee_cur, kind, amount, fee in ledger.query(
            _TRANSFERS_SQL.format(where=where), params
        ):
            if kind in IN_KINDS:
                add(ex, asset, amount)
            elif kind in OUT_KINDS:
                add(ex, asset, -amount)
            add(ex, fee_cur, -(fee or ZERO))
    return out


@dataclass
class Inventory:
    """What the ledger knows of an account before reconcile reads the exchange."""

    assets: set[str] = field(default_factory=set)
    has_opening_balance: bool = False


_INVENTORY_SQL = """
SELECT exchange, upper(asset) FROM trades {where}
UNION SELECT exchange, upper(quote) FROM trades {where}
UNION SELECT exchange, upper(fee_currency) FROM trades {where} AND fee_currency IS NOT NULL
UNION SELECT exchange, upper(asset) FROM transfers {where}
"""


def inventory(ledger: Ledger, exchanges: Iterable[str]) -> dict[str, Inventory]:
    """Per account: the assets its ledger history touches, and whether it has an opening balance."""
    names = sorted(set(exchanges))
    out = {n: Inventory() for n in names}
    if not names:
        return out
    where, params = _where(names)
    for ex, asset in ledger.query(_INVENTORY_SQL.format(where=where), params * 4):
        out[ex].assets.add(asset)
    opening = ledger.query(
        f"SELECT DISTINCT exchange FROM transfers {where} AND lower(kind) = '{OPENING_BALANCE}'",
        params,
    )
    for (ex,) in opening:
        out[ex].has_opening_balance = True
    return out
