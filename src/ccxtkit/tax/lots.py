"""Pure lot matching: acquisitions become lots, disposals consume them in the method's order.

FIFO, LIFO and HIFO differ only in the sort key of candidate lots (as in rp2). Pools are
per (wallet, asset) or per asset (universal). Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from itertools import count
from typing import cast

from ccxtkit.errors import InputError

ZERO = Decimal(0)


class Method(StrEnum):
    """Lot-selection order."""

    FIFO = "fifo"
    LIFO = "lifo"
    HIFO = "hifo"


class Basis(StrEnum):
    """Where lots are pooled: per account (2025+ US rule) or across all accounts."""

    PER_WALLET = "per_wallet"
    UNIVERSAL = "universal"


@dataclass(slots=True, eq=False)
class Lot:
    """Units of one asset acquired together: quantity, USD basis (fees included), date."""

    order: int  # acquisition order: the tie-breaker after the date
    asset: str
    wallet: str
    acquired: datetime
    ts: int  # acquired, as epoch microseconds (a cheap sort key)
    qty: Decimal  # quantity this lot was created with
    cost: Decimal  # USD basis of `qty`
    remaining: Decimal
    unknown_basis: bool = False

    @property
    def unit_cost(self) -> Decimal:
        """USD basis per unit (HIFO ranks by this; an unknown basis ranks last)."""
        return ZERO if self.unknown_basis else self.cost / self.qty


@dataclass(slots=True)  # not frozen: frozen __init__ is several times slower
class Acquire:
    """Units come in with a USD basis (unknown_basis: opening balances, outside deposits)."""

    time: datetime
    ts: int
    wallet: str
    asset: str
    qty: Decimal
    cost: Decimal
    ref: object  # what str() names the source row by (built only when needed: it is slow)
    unknown_basis: bool = False


@dataclass(slots=True)  # not frozen: frozen __init__ is several times slower
class Dispose:
    """Units leave in a taxable event for `proceeds` USD (fees already deducted)."""

    time: datetime
    ts: int
    wallet: str
    asset: str
    qty: Decimal
    proceeds: Decimal
    ref: object  # str() names the trade: exchange, trade id, timestamp
    kind: str = "trade"


@dataclass(slots=True)  # not frozen: frozen __init__ is several times slower
class Move:
    """Units move between own wallets: lots keep their dates and basis (not a disposal)."""

    time: datetime
    ts: int
    from_wallet: str
    to_wallet: str
    asset: str
    qty: Decimal
    ref: object


@dataclass(slots=True)  # not frozen: frozen __init__ is several times slower
class Remove:
    """Units leave to an outside address with no sale recorded: lots leave, no gain or loss."""

    time: datetime
    ts: int
    wallet: str
    asset: str
    qty: Decimal
    ref: object


Event = Acquire | Dispose | Move | Remove


@dataclass(slots=True)  # not frozen: frozen __init__ is several times slower
class Match:
    """One disposal's use of one lot: a Form 8949 row before rounding."""

    asset: str
    wallet: str
    acquired: datetime
    sold: datetime
    qty: Decimal
    proceeds: Decimal
    cost: Decimal
    unknown_basis: bool
    method: Method
    ref: object
    kind: str
    acquired_ts: int = 0  # epoch microseconds (a cheap key for date conversions)
    sold_ts: int = 0


def sort_key(method: Method, lot: Lot) -> tuple[object, ...]:
    """Candidate order: FIFO oldest first, LIFO newest first, HIFO highest unit basis first."""
    if method is Method.FIFO:
        return (lot.ts, lot.order)
    if method is Method.LIFO:
        return (-lot.ts, -lot.order)
    return (-lot.unit_cost, lot.ts, lot.order)


@dataclass(slots=True)
class Pool:
    """The live lots of one (wallet, asset) or one asset, in a heap ordered by one method.

    Only one heap is kept: elections change the method rarely, and a rebuild is O(n).
    Used-up lots leave the heap as soon as they reach its top, so memory follows live lots.
    """

    method: Method = Method.FIFO
    heap: list[tuple[object, ...]] = field(default_factory=list)
    total: Decimal = ZERO

    def add(self, lot: Lot, tick: Callable[[], int]) -> None:
        self.total += lot.remaining
        heapq.heappush(self.heap, (*sort_key(self.method, lot), tick(), lot))

    def _order_by(self, method: Method, tick: Callable[[], int]) -> None:
        if method is not self.method:
            live = [lot for e in self.heap if (lot := cast(Lot, e[-1])).remaining > 0]
            self.heap = [(*sort_key(method, lot), tick(), lot) for lot in live]
            heapq.heapify(self.heap)
            self.method = method

    def take(
        self, qty: Decimal, method: Method, tick: Callable[[], int]
    ) -> Iterator[tuple[Lot, Decimal, Decimal]]:
        """Consume `qty` in method order: yields (lot, quantity taken, basis of that quantity)."""
        self._order_by(method, tick)
        need = qty
        self.total -= qty
        heap = self.heap
        while need > 0:
            lot = heap[0][-1]
            assert isinstance(lot, Lot)
            took = lot.remaining if lot.remaining <= need else need
            # Basis of a piece is measured against the lot as created (rp2 does the same),
            # so splitting a lot in any order gives the same figures.
            basis = lot.cost if took == lot.qty else lot.cost * took / lot.qty
            lot.remaining -= took
            need -= took
            if lot.remaining <= 0:
                heapq.heappop(heap)
            yield lot, took, basis

    def drop(self, qty: Decimal, method: Method, tick: Callable[[], int]) -> None:
        """Consume `qty` in method order without reporting the pieces (earlier years)."""
        self._order_by(method, tick)
        need = qty
        self.total -= qty
        heap = self.heap
        while need > 0:
            lot = cast(Lot, heap[0][-1])
            if lot.remaining <= need:
                need -= lot.remaining
                lot.remaining = ZERO
                heapq.heappop(heap)
            else:
                lot.remaining -= need
                need = ZERO


def match_lots(
    events: Iterable[Event],
    method_at: Callable[[datetime], Method],
    basis: Basis = Basis.PER_WALLET,
    report_from: int | None = None,
) -> Iterator[Match]:
    """Replay events in order and yield a Match for every piece of every disposal.

    Disposals before `report_from` (epoch microseconds) still consume lots but yield nothing.
    Raises InputError naming the event when a wallet gives up more than it holds.
    """
    quiet_until = report_from if report_from is not None else -(2**62)
    pools: dict[tuple[str, str], Pool] = {}
    orders = count()
    ticks = count()

    def tick() -> int:
        return next(ticks)

    def pool(wallet: str, asset: str) -> Pool:
        key = (wallet if basis is Basis.PER_WALLET else "", asset)
        found = pools.get(key)
        if found is None:
            found = pools[key] = Pool()
        return found

    for ev in events:
        if isinstance(ev, Acquire):
            if ev.qty <= 0:
                continue
            lot = Lot(
                next(orders), ev.asset, ev.wallet, ev.time, ev.ts, ev.qty, ev.cost, ev.qty,
                ev.unknown_basis,
            )  # fmt: skip
            pool(ev.wallet, ev.asset).add(lot, tick)
        elif isinstance(ev, Dispose):
            if ev.qty <= 0:
                continue
            src = pool(ev.wallet, ev.asset)
            _require(src, ev.qty, ev.asset, ev.wallet, ev.ref, basis)
            method = method_at(ev.time)
            if ev.ts < quiet_until:
                src.drop(ev.qty, method, tick)
                continue
            for lot, took, cost in src.take(ev.qty, method, tick):
                proceeds = ev.proceeds if took == ev.qty else ev.proceeds * took / ev.qty
                yield Match(
                    ev.asset, ev.wallet, lot.acquired, ev.time, took, proceeds, cost,
                    lot.unknown_basis, method, ev.ref, ev.kind, lot.ts, ev.ts,
                )  # fmt: skip
        elif isinstance(ev, Move):
            if ev.qty <= 0 or basis is Basis.UNIVERSAL:
                continue  # universal pools do not care which account holds a lot
            src = pool(ev.from_wallet, ev.asset)
            _require(src, ev.qty, ev.asset, ev.from_wallet, ev.ref, basis)
            dst = pool(ev.to_wallet, ev.asset)
            moved = list(src.take(ev.qty, method_at(ev.time), tick))
            for lot, took, cost in moved:
                piece = Lot(
                    lot.order, lot.asset, ev.to_wallet, lot.acquired, lot.ts, took, cost, took,
                    lot.unknown_basis,
                )  # fmt: skip
                dst.add(piece, tick)
        else:
            if ev.qty <= 0:
                continue
            src = pool(ev.wallet, ev.asset)
            _require(src, ev.qty, ev.asset, ev.wallet, ev.ref, basis)
            src.drop(ev.qty, method_at(ev.time), tick)


def _require(src: Pool, qty: Decimal, asset: str, wallet: str, ref: object, basis: Basis) -> None:
    if src.total < qty:
        where = f"the {wallet} account" if basis is Basis.PER_WALLET else "all accounts"
        raise InputError(
            f"{ref} gives up {qty.normalize():f} {asset} but {where} held only "
            f"{max(src.total, ZERO).normalize():f} {asset} at that time: record the missing "
            "acquisition, deposit or opening balance (`vhc ledger import`) and run again"
        )


def anniversary(day: date) -> date:
    """Same date one year later; Feb 29 maps to Feb 28 (the last day of a full year's holding)."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


def is_long_term(acquired: date, sold: date) -> bool:
    """Held more than one year: sold after the anniversary of the acquisition date."""
    return sold > anniversary(acquired)
