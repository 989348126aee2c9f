"""Pure matching rules: the exchange's movements against the ledger's, and balance assertions.

Nothing here does I/O; the service hands in what it read. Movements match by the exchange's
own id (trade id; transfer id, else the transaction hash):

- **missing trade**: on the exchange, not in the ledger.
- **phantom trade**: in the ledger (in the range), not on the exchange.
- **mismatched trade**: same id, different symbol/side/amount/price/fee (or fee currency).
- **unknown deposit** (status "missing deposit"): money arrived that the ledger never recorded.
- **unknown withdrawal**: money left that the ledger never recorded. Nobody asked vhc for it, so
  it may be unauthorized: the most serious finding there is (severity critical).
- **phantom / mismatched transfer**: the ledger's deposit or withdrawal is absent or different.
- **unexplained entry**: a line of the exchange's own ledger tied to no trade or transfer.

A balance assertion (beancount's idea) carries the expected value (the ledger's), the actual
one (the exchange's), the difference, and a status naming the likely cause: the findings whose
effect on that asset's balance is non-zero, and "unexplained difference" for what they leave.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ccxtkit.exchanges.base import LedgerEntry, Trade, Transfer
from ccxtkit.ledger import names
from ccxtkit.money import fmt, is_usd_like

ZERO = Decimal(0)
NOT_MOVED = names.NOT_MOVED
IN_KINDS = names.TRANSFER_IN_KINDS
OUT_KINDS = names.TRANSFER_OUT_KINDS

#: finding kind -> (balance-status label, severity). Ordered by how much a person should worry.
KINDS: dict[str, tuple[str, str]] = {
    "unknown_withdrawal": ("unknown withdrawal", "critical"),
    "unknown_deposit": ("missing deposit", "warning"),
    "missing_trade": ("missing trade", "warning"),
    "phantom_trade": ("phantom trade", "warning"),
    "fee_mismatch": ("fee mismatch", "warning"),
    "mismatched_trade": ("mismatched trade", "warning"),
    "phantom_transfer": ("phantom transfer", "warning"),
    "mismatched_transfer": ("mismatched transfer", "warning"),
    "unexplained_entry": ("unexplained ledger entry", "warning"),
    "exchange_unreadable": ("exchange could not be read", "warning"),
}


@dataclass(frozen=True)
class Tolerance:
    """Two amounts agree when within `absolute`, or within `relative` of the larger."""

    absolute: Decimal = Decimal("1e-10")
    relative: Decimal = Decimal("1e-9")

    def same(self, a: Decimal, b: Decimal) -> bool:
        """True when a and b agree within the tolerance."""
        diff = abs(a - b)
        return diff <= self.absolute or diff <= self.relative * max(abs(a), abs(b))


@dataclass(frozen=True, slots=True)
class LedgerTrade:
    """The ledger columns of a trade that matching needs."""

    trade_id: str
    timestamp: datetime
    symbol: str
    side: str
    amount: Decimal
    price: Decimal
    cost: Decimal
    fee: Decimal
    fee_currency: str | None


@dataclass(frozen=True, slots=True)
class LedgerTransfer:
    """The ledger columns of a transfer that matching needs (its latest row)."""

    transfer_id: str | None
    kind: str
    asset: str
    amount: Decimal
    fee: Decimal | None
    fee_currency: str | None
    txid: str | None
    status: str | None
    timestamp: datetime


@dataclass(frozen=True)
class Finding:
    """One movement that does not agree. `effect`: what it moves on the exchange that the
    ledger does not (per asset), i.e. the part of each balance difference it explains."""

    exchange: str
    kind: str
    ref: str
    timestamp: datetime | None
    subject: str  # symbol of a trade, asset of a transfer
    amount: Decimal | None
    detail: str
    effect: tuple[tuple[str, Decimal], ...] = ()
    value_usd: Decimal | None = None
    action: str = "reported"  # reported | synced | adopted
    trade: Trade | None = None  # what --auto-sync would record
    transfer: Transfer | None = None

    @property
    def label(self) -> str:
        """The words a person reads: 'unknown withdrawal', 'missing trade', ..."""
        return KINDS[self.kind][0]

    @property
    def severity(self) -> str:
        """info | warning | critical (an unknown withdrawal is always critical)."""
        if self.action == "adopted":
            return "info"
        return KINDS[self.kind][1]

    def with_(self, **changes: object) -> Finding:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BalanceCheck:
    """A balance assertion: the ledger's (expected) and the exchange's (actual) balance."""

    exchange: str
    asset: str
    local: Decimal
    actual: Decimal
    difference: Decimal  # actual - local
    difference_usd: Decimal | None  # None: no price for the asset
    status: str
    ok: bool


# -- trades ------------------------------------------------------------------------------


def _quote(symbol: str) -> str:
    return symbol.partition("/")[2].split(":")[0].upper()


def _base(symbol: str) -> str:
    return symbol.partition("/")[0].upper()


def trade_effect(
    symbol: str, side: str, amount: Decimal, cost: Decimal, fee: Decimal, fee_cur: str | None
) -> dict[str, Decimal]:
    """How a trade moves each asset's balance (fee in its currency; the quote when unset)."""
    sign = 1 if side == "buy" else -1
    out: dict[str, Decimal] = {}
    for asset, delta in (
        (_base(symbol), sign * amount),
        (_quote(symbol), -sign * cost),
        ((fee_cur or _quote(symbol)).upper(), -fee),
    ):
        out[asset] = out.get(asset, ZERO) + delta
    return out


def _ex_effect(t: Trade) -> dict[str, Decimal]:
    return trade_effect(t.symbol, t.side, t.amount, t.cost, t.fee, t.fee_currency)


def _ledger_effect(r: LedgerTrade) -> dict[str, Decimal]:
    return trade_effect(r.symbol, r.side, r.amount, r.cost, r.fee, r.fee_currency)


def _minus(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> tuple[tuple[str, Decimal], ...]:
    keys = sorted(set(a) | set(b))
    return tuple(
        (k, a.get(k, ZERO) - b.get(k, ZERO)) for k in keys if a.get(k, ZERO) != b.get(k, ZERO)
    )


def _trade_diffs(t: Trade, r: LedgerTrade, tol: Tolerance) -> tuple[list[str], bool]:
    """What differs (words), and whether only the fee does."""
    diffs = []
    if t.symbol.upper() != r.symbol.upper():
        diffs.append(f"symbol {r.symbol} in ledger, {t.symbol} on exchange")
    if t.side != r.side:
        diffs.append(f"side {r.side} in ledger, {t.side} on exchange")
    for name, mine, theirs in (("amount", r.amount, t.amount), ("price", r.price, t.price)):
        if not tol.same(mine, theirs):
            diffs.append(f"{name} {fmt(mine)} in ledger, {fmt(theirs)} on exchange")
    only_fee = not diffs
    quote = _quote(t.symbol)
    mine_cur = (r.fee_currency or _quote(r.symbol)).upper()
    theirs_cur = (t.fee_currency or quote).upper()
    if not tol.same(r.fee, t.fee) or (mine_cur != theirs_cur and (r.fee or t.fee)):
        diffs.append(
            f"fee {fmt(r.fee)} {mine_cur} in ledger, {fmt(t.fee)} {theirs_cur} on exchange"
        )
    return diffs, only_fee and bool(diffs)


def match_trades(
    exchange: str,
    on_exchange: Iterable[Trade],
    in_ledger: Iterable[LedgerTrade],
    since: datetime,
    until: datetime,
    tol: Tolerance = Tolerance(),
) -> list[Finding]:
    """Missing, phantom and mismatched trades of one account over [since, until).

    `in_ledger` may reach beyond the range (a margin for clock skew): a ledger trade outside
    the range still satisfies an exchange trade, but is never called phantom.
    """
    ledger_by_id = {r.trade_id: r for r in in_ledger}
    seen: set[str] = set()
    out: list[Finding] = []
    for t in on_exchange:
        seen.add(t.id)
        r = ledger_by_id.get(t.id)
        what = f"{t.side} {fmt(t.amount)} {t.symbol} @ {fmt(t.price)}"
        if r is None:
            out.append(
                Finding(
                    exchange,
                    "missing_trade",
                    t.id,
                    t.timestamp,
                    t.symbol,
                    t.amount,
                    f"{what} is on the exchange but not in the ledger",
                    tuple(sorted(_ex_effect(t).items())),
                    trade=t,
                )  # fmt: skip
            )
            continue
        diffs, only_fee = _trade_diffs(t, r, tol)
        if diffs:
            out.append(
                Finding(
                    exchange,
                    "fee_mismatch" if only_fee else "mismatched_trade",
                    t.id,
                    t.timestamp,
                    t.symbol,
                    t.amount,
                    f"{what}: " + "; ".join(diffs),
                    _minus(_ex_effect(t), _ledger_effect(r)),
                )  # fmt: skip
            )
    for r in ledger_by_id.values():
        if r.trade_id not in seen and since <= r.timestamp < until:
            out.append(
                Finding(
                    exchange,
                    "phantom_trade",
                    r.trade_id,
                    r.timestamp,
                    r.symbol,
                    r.amount,
                    f"{r.side} {fmt(r.amount)} {r.symbol} @ {fmt(r.price)} is in the ledger "
                    "but the exchange does not report it",
                    tuple((a, -v) for a, v in sorted(_ledger_effect(r).items())),
                )  # fmt: skip
            )
    return out


# -- transfers ---------------------------------------------------------------------------


def _transfer_effect(kind: str, asset: str, amount: Decimal, fee: Decimal | None,
                     fee_cur: str | None) -> dict[str, Decimal]:  # fmt: skip
    sign = 1 if kind in IN_KINDS else -1
    out = {asset.upper(): sign * amount}
    if fee:
        cur = (fee_cur or asset).upper()
        out[cur] = out.get(cur, ZERO) - fee
    return out


def _moved(status: str | None) -> bool:
    return (status or "ok").lower() not in NOT_MOVED


def match_transfers(
    exchange: str,
    on_exchange: Iterable[Transfer],
    in_ledger: Iterable[LedgerTransfer],
    since: datetime,
    until: datetime,
    tol: Tolerance = Tolerance(),
) -> list[Finding]:
    """Unknown deposits/withdrawals, phantom and mismatched transfers over [since, until)."""
    rows = [r for r in in_ledger if r.kind in IN_KINDS or r.kind in OUT_KINDS]
    by_id = {(r.kind in IN_KINDS, r.transfer_id): r for r in rows if r.transfer_id}
    by_txid = {(r.kind in IN_KINDS, r.txid): r for r in rows if r.txid}
    matched: set[int] = set()
    out: list[Finding] = []
    for t in on_exchange:
        incoming = t.kind == "deposit"
        r = by_id.get((incoming, t.id)) or (by_txid.get((incoming, t.txid)) if t.txid else None)
        if r is not None:
            matched.add(id(r))
        what = f"{t.kind} of {fmt(t.amount)} {t.asset} ({t.status})"
        ex_effect = _transfer_effect(t.kind, t.asset, t.amount, t.fee, t.fee_currency)
        if not _moved(t.status):
            if r is not None and _moved(r.status):
                out.append(Finding(exchange, "mismatched_transfer", t.id, t.timestamp, t.asset,
                                   t.amount, f"{what}: the ledger counts it, the exchange says "
                                   f"{t.status}", tuple((a, -v) for a, v in sorted(
                                       _transfer_effect(r.kind, r.asset, r.amount, r.fee,
                                                        r.fee_currency).items()))))  # fmt: skip
            continue
        if r is None:
            if incoming:
                # A pending deposit is not credited yet: nothing to explain until it lands.
                if t.status != "pending":
                    out.append(Finding(exchange, "unknown_deposit", t.id, t.timestamp, t.asset,
                                       t.amount, f"{what} arrived; the ledger has no record of it",
                                       tuple(sorted(ex_effect.items())), transfer=t))  # fmt: skip
            else:
                to = f" to {t.address}" if t.address else ""
                out.append(Finding(
                    exchange, "unknown_withdrawal", t.id, t.timestamp, t.asset, t.amount,
                    f"UNAUTHORIZED? {what}{to} was not made through vhc: the most serious "
                    "finding; check the account's API keys, sessions and 2FA now",
                    tuple(sorted(ex_effect.items())), transfer=t))  # fmt: skip
            continue
        diffs = []
        if t.asset.upper() != r.asset.upper():
            diffs.append(f"asset {r.asset} in ledger, {t.asset} on exchange")
        if not tol.same(r.amount, t.amount):
            diffs.append(f"amount {fmt(r.amount)} in ledger, {fmt(t.amount)} on exchange")
        if t.fee is not None and r.fee is not None and not tol.same(r.fee, t.fee):
            diffs.append(f"fee {fmt(r.fee)} in ledger, {fmt(t.fee)} on exchange")
        if diffs:
            mine = _transfer_effect(r.kind, r.asset, r.amount, r.fee, r.fee_currency)
            out.append(Finding(exchange, "mismatched_transfer", t.id, t.timestamp, t.asset,
                               t.amount, f"{what}: " + "; ".join(diffs),
                               _minus(ex_effect, mine)))  # fmt: skip
    for r in rows:
        if id(r) in matched or not _moved(r.status) or not (since <= r.timestamp < until):
            continue
        if not (r.transfer_id or r.txid):
            continue  # nothing to match it by (e.g. a hand-entered row): not checkable
        ref = r.transfer_id or r.txid or ""
        out.append(Finding(exchange, "phantom_transfer", ref, r.timestamp, r.asset, r.amount,
                           f"{r.kind} of {fmt(r.amount)} {r.asset} is in the ledger but the "
                           "exchange does not report it", tuple((a, -v) for a, v in sorted(
                               _transfer_effect(r.kind, r.asset, r.amount, r.fee,
                                                r.fee_currency).items()))))  # fmt: skip
    return out


def unexplained_entries(
    exchange: str, entries: Iterable[LedgerEntry] | None, known_refs: set[str]
) -> list[Finding]:
    """Lines of the exchange's ledger that belong to no trade or transfer it reported."""
    out = []
    for e in entries or ():
        if (e.amount or e.fee) and (e.reference_id or e.id) not in known_refs:
            effect = {e.asset.upper(): e.amount - e.fee}
            out.append(Finding(exchange, "unexplained_entry", e.id, e.timestamp, e.asset,
                               e.amount, f"{e.type or 'entry'} of {fmt(e.amount)} {e.asset} "
                               f"(fee {fmt(e.fee)}) in the exchange's ledger matches no trade "
                               "or transfer", tuple(effect.items())))  # fmt: skip
    return out


# -- balances ----------------------------------------------------------------------------


def usd_value(asset: str, amount: Decimal, prices: Mapping[str, Decimal]) -> Decimal | None:
    """amount in USD: stablecoins and USD at 1, else the asset's price; None when unpriced."""
    if is_usd_like(asset):
        return amount
    price = prices.get(asset.upper())
    return None if price is None else amount * price


def _negligible(asset: str, amount: Decimal, prices: Mapping[str, Decimal],
                threshold: Decimal, tol: Tolerance) -> bool:  # fmt: skip
    if amount == 0:
        return True
    usd = usd_value(asset, amount, prices)
    if usd is None:
        return abs(amount) <= tol.absolute
    return abs(usd) <= threshold


def assert_balances(
    exchange: str,
    local: Mapping[str, Decimal],
    actual: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    threshold: Decimal,
    findings: Sequence[Finding],
    has_opening_balance: bool,
    tol: Tolerance = Tolerance(),
) -> list[BalanceCheck]:
    """One assertion per asset of the account (either side); see the module docstring."""
    explained: dict[str, Decimal] = {}
    causes: dict[str, list[str]] = {}
    order = list(KINDS)
    for f in sorted(findings, key=lambda f: order.index(f.kind)):
        for asset, delta in f.effect:
            if delta:
                explained[asset] = explained.get(asset, ZERO) + delta
                if f.label not in causes.setdefault(asset, []):
                    causes[asset].append(f.label)
    fee_assets = {a for f in findings if f.kind == "fee_mismatch" for a, _ in f.effect}
    out = []
    for asset in sorted(set(local) | set(actual)):
        mine, theirs = local.get(asset, ZERO), actual.get(asset, ZERO)
        diff = theirs - mine
        usd = usd_value(asset, diff, prices)
        if _negligible(asset, diff, prices, threshold, tol):
            status = "OK" if diff == 0 else "OK (within threshold)"
            out.append(BalanceCheck(exchange, asset, mine, theirs, diff, usd, status, True))
            continue
        labels = list(causes.get(asset, []))
        residual = diff - explained.get(asset, ZERO)
        if not _negligible(asset, residual, prices, threshold, tol):
            if not has_opening_balance and not labels:
                labels.append("no opening balance (adopt with --auto-sync)")
            elif asset in fee_assets and not labels:
                labels.append("fee mismatch")
            else:
                labels.append("unexplained difference")
        out.append(BalanceCheck(exchange, asset, mine, theirs, diff, usd, ", ".join(labels), False))
    return out
