"""Ledger trades and transfers become acquisitions, disposals and moves with USD values (pure).

Conventions (docs/tax.md explains why):
- Every trade is valued at G = cost x USD rate of the quote (1 for USD and stablecoins, else the
  trade's `total_usd`, else the prices table). The fee is F = fee x USD rate of its currency.
- buy: acquire the base at G + F. A non-fiat quote given up (plus the fee, when paid in the
  quote) is disposed of at its USD value. A fee in the base shrinks the units received.
- sell: dispose of the base for G - F. A non-fiat quote received is acquired at its USD value.
  A fee in the base is extra base given up with no proceeds.
- Crypto spent on a fee in a third currency is itself disposed of at its USD value.
- A withdrawal and a deposit with the same txid on two own accounts are one move; the units lost
  on the way (sent - received) are a network fee, disposed of at their USD value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from ccxtkit.errors import InputError
from ccxtkit.ledger import names
from ccxtkit.money import is_usd_like

from .lots import Acquire, Dispose, Event, Move, Remove
from .prices import FIAT_USD, PriceIndex, is_fiat

ZERO = Decimal(0)
OUT_KINDS = names.TRANSFER_OUT_KINDS
IN_KINDS = names.TRANSFER_IN_KINDS
#: Transfer statuses that mean the money did not move (the report reads each transfer's latest
#: row, names.TRANSFERS_LATEST, so a pending row later settled is never counted twice).
NOT_MOVED = names.NOT_MOVED
_BASIS_NOTE = re.compile(r"cost_basis_usd\s*=\s*([0-9]+(?:\.[0-9]+)?)")


class TradeRow(NamedTuple):
    """The columns of a ledger trade that taxes need (a tuple: a million are built per report)."""

    seq: int
    time: datetime
    ts: int
    exchange: str
    symbol: str
    asset: str
    quote: str
    side: str
    amount: Decimal
    price: Decimal
    cost: Decimal
    fee: Decimal
    fee_currency: str | None
    trade_id: str
    total_usd: Decimal | None

    @property
    def ref(self) -> str:
        return f"trade {self.trade_id} on {self.exchange} at {self.time:%Y-%m-%dT%H:%M:%SZ}"

    def __str__(self) -> str:
        return self.ref


@dataclass(frozen=True, slots=True)
class TransferRow:
    """The columns of a ledger transfer that taxes need."""

    seq: int
    time: datetime
    ts: int
    exchange: str
    kind: str
    asset: str
    amount: Decimal
    fee: Decimal | None
    fee_currency: str | None
    txid: str | None
    status: str | None
    notes: str | None = None

    @property
    def ref(self) -> str:
        tx = f" txid {self.txid}" if self.txid else ""
        return (
            f"{self.kind} seq {self.seq} on {self.exchange}{tx} at {self.time:%Y-%m-%dT%H:%M:%SZ}"
        )


@dataclass(slots=True)
class Findings:
    """What the conversion noticed: trades lacking a USD price, transfers it had to guess about."""

    missing_prices: list[str]
    warnings: list[str]


def trade_events(t: TradeRow, prices: PriceIndex, found: Findings) -> list[Event]:
    """The acquisitions and disposals of one trade (see the module docstring)."""
    quote_fiat = is_fiat(t.quote)
    rate: Decimal | None
    if t.total_usd is not None and t.cost > 0 and not is_usd_like(t.quote):
        rate = t.total_usd / t.cost  # the importer's own USD value of the trade wins
    else:
        rate = prices.usd(t.quote, t.ts)
    # asset, quote and fee_currency arrive upper-cased (report.TRADE_SQL)
    fee_ccy = (t.fee_currency or t.quote) if t.fee else None
    if (fee_ccy is None or fee_ccy == t.quote) and t.quote in FIAT_USD:
        # The common case, kept short: a trade against dollars with the fee in dollars.
        if t.side == "buy":
            return [Acquire(t.time, t.ts, t.exchange, t.asset, t.amount, t.cost + t.fee, t)]
        if t.side == "sell":
            return [Dispose(t.time, t.ts, t.exchange, t.asset, t.amount, t.cost - t.fee, t)]
    fee_rate: Decimal | None = ZERO
    if fee_ccy is not None:
        if fee_ccy == t.quote:
            fee_rate = rate
        elif fee_ccy == t.asset:
            fee_rate = None if rate is None else t.cost * rate / t.amount
        else:
            fee_rate = prices.usd(fee_ccy, t.ts)
    if rate is None or fee_rate is None:
        lacking = t.quote if rate is None else fee_ccy
        found.missing_prices.append(f"{t.ref} ({lacking}/USD)")
        rate, fee_rate = rate or ZERO, fee_rate or ZERO
    g = t.cost * rate
    f = t.fee * fee_rate
    out: list[Event] = []
    w, ref = t.exchange, t
    if t.side == "buy":
        got = t.amount - t.fee if fee_ccy == t.asset else t.amount
        basis = g if fee_ccy == t.asset else g + f
        if not quote_fiat:
            give, value = t.cost, g
            if fee_ccy == t.quote:
                give, value = give + t.fee, value + f
            out.append(Dispose(t.time, t.ts, w, t.quote, give, value, ref))
        if fee_ccy not in (None, t.quote, t.asset) and not is_fiat(fee_ccy):
            out.append(Dispose(t.time, t.ts, w, fee_ccy, t.fee, f, ref, "fee"))
        out.append(Acquire(t.time, t.ts, w, t.asset, got, basis, ref))
    elif t.side == "sell":
        if fee_ccy == t.asset:
            out.append(Dispose(t.time, t.ts, w, t.asset, t.amount + t.fee, g, ref))
        else:
            out.append(Dispose(t.time, t.ts, w, t.asset, t.amount, g - f, ref))
        if fee_ccy not in (None, t.quote, t.asset) and not is_fiat(fee_ccy):
            out.append(Dispose(t.time, t.ts, w, fee_ccy, t.fee, f, ref, "fee"))
        if not quote_fiat:
            if fee_ccy == t.quote:
                out.append(Acquire(t.time, t.ts, w, t.quote, t.cost - t.fee, g - f, ref))
            else:
                out.append(Acquire(t.time, t.ts, w, t.quote, t.cost, g, ref))
    else:
        raise InputError(f"{ref}: side {t.side!r} is neither buy nor sell; fix the ledger import")
    return out


def link_transfers(
    rows: Iterable[TransferRow],
) -> tuple[list[tuple[TransferRow, TransferRow]], list[TransferRow]]:
    """Pair own-account moves: an out and an in of the same asset with the same txid.

    The in must be on another account, no earlier than the out, and no larger than what left.
    Returns (pairs, everything else). Rows whose status says the money did not move are dropped.
    """
    live = [r for r in rows if (r.status or "ok").lower() not in NOT_MOVED]
    outs: dict[tuple[str, str], list[TransferRow]] = {}
    for r in live:
        if r.kind in OUT_KINDS and r.txid:
            outs.setdefault((r.txid, r.asset.upper()), []).append(r)
    pairs: list[tuple[TransferRow, TransferRow]] = []
    paired: set[int] = set()
    for r in sorted(live, key=lambda x: (x.ts, x.seq)):
        if r.kind not in IN_KINDS or not r.txid:
            continue
        for o in sorted(outs.get((r.txid, r.asset.upper()), []), key=lambda x: (x.ts, x.seq)):
            if (
                o.seq not in paired
                and o.exchange != r.exchange
                and o.ts <= r.ts
                and r.amount <= _sent(o)
            ):
                pairs.append((o, r))
                paired.update((o.seq, r.seq))
                break
    rest = [r for r in live if r.seq not in paired]
    return pairs, rest


def _sent(o: TransferRow) -> Decimal:
    """Units that left the account: the amount, plus the fee when paid in the same asset."""
    fee_in_asset = o.fee and (o.fee_currency is None or o.fee_currency.upper() == o.asset.upper())
    return o.amount + (o.fee or ZERO) if fee_in_asset else o.amount


def _noted_basis(r: TransferRow) -> Decimal | None:
    match = _BASIS_NOTE.search(r.notes or "")
    return Decimal(match.group(1)) if match else None


def transfer_events(
    rows: Iterable[TransferRow], prices: PriceIndex, found: Findings
) -> list[tuple[int, int, Event]]:
    """Moves, unknown-basis acquisitions, removals and fee disposals, as (ts, seq, event) sorted."""
    pairs, rest = link_transfers(rows)
    out: list[tuple[int, int, Event]] = []

    def fee_disposal(at: TransferRow, asset: str, qty: Decimal) -> None:
        if qty <= 0 or is_fiat(asset):
            return
        rate = prices.usd(asset, at.ts)
        if rate is None:
            found.missing_prices.append(f"{at.ref} (network fee, {asset}/USD)")
            rate = ZERO
        ev = Dispose(at.time, at.ts, at.exchange, asset, qty, qty * rate, at.ref, "fee")
        out.append((at.ts, at.seq, ev))

    for o, i in pairs:
        if is_fiat(o.asset):
            continue
        fee_disposal(o, o.asset, _sent(o) - i.amount)
        move = Move(o.time, o.ts, o.exchange, i.exchange, o.asset.upper(), i.amount, o.ref)
        out.append((o.ts, o.seq, move))
        if o.fee and o.fee_currency and o.fee_currency.upper() != o.asset.upper():
            fee_disposal(o, o.fee_currency.upper(), o.fee)
    for r in rest:
        if is_fiat(r.asset):
            continue
        if r.kind == "opening_balance" or r.kind in IN_KINDS:
            noted = _noted_basis(r)
            if noted is None:
                what = "opening balance" if r.kind == "opening_balance" else "deposit from outside"
                found.warnings.append(
                    f"{r.ref}: {r.amount.normalize():f} {r.asset} {what} has no known cost "
                    "basis; its disposals are flagged BASIS UNKNOWN (add 'cost_basis_usd=N' "
                    "to the row's notes if you know it)"
                )
            acq = Acquire(
                r.time, r.ts, r.exchange, r.asset.upper(), r.amount, noted or ZERO, r.ref,
                unknown_basis=noted is None,
            )  # fmt: skip
            out.append((r.ts, r.seq, acq))
        elif r.kind in OUT_KINDS:
            found.warnings.append(
                f"{r.ref}: {r.amount.normalize():f} {r.asset} left to an address not matched to "
                "an own-account deposit; treated as a transfer out, not a sale"
            )
            gone = Remove(r.time, r.ts, r.exchange, r.asset.upper(), r.amount, r.ref)
            out.append((r.ts, r.seq, gone))
            fee_disposal(r, r.asset.upper(), _sent(r) - r.amount)
            if r.fee and r.fee_currency and r.fee_currency.upper() != r.asset.upper():
                fee_disposal(r, r.fee_currency.upper(), r.fee)
        else:
            raise InputError(f"{r.ref}: unknown transfer kind {r.kind!r}")
    out.sort(key=lambda item: (item[0], item[1]))  # stable: a move's fee precedes the move
    return out


def merged_events(
    trades: Iterable[TradeRow],
    transfer_events_sorted: list[tuple[int, int, Event]],
    prices: PriceIndex,
    found: Findings,
) -> Iterator[Event]:
    """Trades' events and transfers' events in (time, ledger seq) order; trades arrive sorted."""
    pending = iter(transfer_events_sorted)
    nxt = next(pending, None)
    for t in trades:
        while nxt is not None and (nxt[0], nxt[1]) < (t.ts, t.seq):
            yield nxt[2]
            nxt = next(pending, None)
        yield from trade_events(t, prices, found)
    while nxt is not None:
        yield nxt[2]
        nxt = next(pending, None)
