"""Putting each fill's fee in the currency the exchange really charged it in."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from decimal import Decimal

from .base import LedgerEntry, Trade

ZERO = Decimal(0)


def apply_ledger_fees(
    trades: Sequence[Trade], entries: Iterable[LedgerEntry] | None
) -> list[Trade]:
    """Trades with their fee in the currency the exchange's ledger actually charged it in.

    kraken's trade history labels every fee with the quote; its ledger shows the real asset
    (e.g. a fee token, or the base with `fcib`). A trade whose ledger lines carry a fee in
    exactly one asset gets that asset and amount; otherwise it is left as reported.
    """
    if not entries:
        return list(trades)
    fees: dict[str, dict[str, Decimal]] = {}
    for e in entries:
        if e.reference_id and e.fee:
            per = fees.setdefault(e.reference_id, {})
            per[e.asset.upper()] = per.get(e.asset.upper(), ZERO) + e.fee
    out = []
    for t in trades:
        charged = fees.get(t.id)
        if charged is not None and len(charged) == 1:
            ((asset, fee),) = charged.items()
            if asset != (t.fee_currency or "").upper() or fee != t.fee:
                t = dataclasses.replace(t, fee=fee, fee_currency=asset)
        out.append(t)
    return out
