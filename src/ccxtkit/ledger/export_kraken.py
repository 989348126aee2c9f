"""Kraken's "Ledgers" and "Trades" exports (`vhc ledger import --from kraken`)."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

from ..errors import InputError
from ..exchanges.base import Trade
from .export_rows import (
    ZERO,
    Number,
    Parsed,
    Row,
    Text,
    Time,
    income_note,
    make_trade,
    make_transfer,
    parse_row,
    read_rows,
)


class KrakenLedgerRow(Row):
    """One line of Kraken's "Ledgers" export."""

    txid: Text
    refid: Text
    time: Time
    type: Text
    subtype: Text = ""
    aclass: Text = ""
    asset: Text
    amount: Number
    fee: Number = None


class KrakenTradeRow(Row):
    """One line of Kraken's "Trades" export (price and pair as the exchange gives them)."""

    txid: Text
    ordertxid: Text = ""
    pair: Text
    time: Time
    type: Text
    price: Number
    cost: Number
    fee: Number = None
    vol: Number


# -- Kraken --------------------------------------------------------------------------------------
#: Kraken's legacy asset ids -> ccxt's codes.
_KRAKEN_ASSETS = {
    "XXBT": "BTC", "XBT": "BTC", "XETH": "ETH", "XXRP": "XRP", "XLTC": "LTC", "XXLM": "XLM",
    "XXDG": "DOGE", "XDG": "DOGE", "XETC": "ETC", "XZEC": "ZEC", "XXMR": "XMR", "XREP": "REP",
    "ZUSD": "USD", "ZEUR": "EUR", "ZGBP": "GBP", "ZCAD": "CAD", "ZJPY": "JPY", "ZAUD": "AUD",
    "KFEE": "KFEE",
}  # fmt: skip
#: Which side of a pair is the quote: the first of these found.
_QUOTES = ("USD", "EUR", "GBP", "CAD", "JPY", "AUD", "CHF", "USDT", "USDC", "DAI", "BTC", "ETH")
#: Kraken staking/earn wallet suffixes (ETH2.S, DOT.S, USDC.M, SOL.F...): the asset itself.
_WALLET_SUFFIXES = (".S", ".M", ".F", ".B", ".P")


def kraken_asset(code: str) -> str:
    """ccxt's code for an asset as Kraken's exports spell it."""
    up = code.strip().upper()
    for suffix in _WALLET_SUFFIXES:
        if up.endswith(suffix):
            up = up.removesuffix(suffix)
            break
    if up == "ETH2":
        return "ETH"
    return _KRAKEN_ASSETS.get(up, up)


def _quote_rank(asset: str) -> int:
    return _QUOTES.index(asset) if asset in _QUOTES else len(_QUOTES)


def parse_kraken(path: Path) -> Parsed:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = [h.strip() for h in next(csv.reader(handle), [])]
    if "ordertxid" in header and "pair" in header:
        return _parse_kraken_trades(path)
    return _parse_kraken_ledgers(path)


def _parse_kraken_ledgers(path: Path) -> Parsed:
    out = Parsed()
    groups: dict[str, list[tuple[int, KrakenLedgerRow]]] = {}
    failed_withdrawals: set[str] = set()
    rows: list[tuple[int, KrakenLedgerRow]] = []
    for line, cells in read_rows(path, ("refid", "time", "type", "asset", "amount")):
        out.rows += 1
        rows.append((line, parse_row(KrakenLedgerRow, cells, path, line)))
    for _, r in rows:
        if r.type == "withdrawal" and (r.amount or ZERO) > 0:
            failed_withdrawals.add(r.refid)  # the refund of a withdrawal that failed
    for line, r in rows:
        kind, sub = r.type.lower(), r.subtype.lower()
        asset, amount, fee = kraken_asset(r.asset), r.amount or ZERO, r.fee or ZERO
        if kind in ("trade", "spend", "receive"):
            groups.setdefault(r.refid, []).append((line, r))
        elif kind in ("deposit", "withdrawal"):
            if r.refid in failed_withdrawals:
                out.skip("withdrawal that failed (refunded)")
                continue
            if not r.txid and not r.refid:
                raise InputError(f"{path}:{line}: a {kind} without refid")
            out.transfers.append(make_transfer(r.refid or r.txid, kind, r.time, asset, amount, fee))
        elif kind == "staking" or (kind == "earn" and sub == "reward"):
            tid = r.txid or r.refid
            if amount < 0:
                out.not_understood(f"{r.type}/{r.subtype} (negative)", line)
                continue
            out.transfers.append(make_transfer(tid, "deposit", r.time, asset, amount, fee))
            out.notes[tid] = income_note(f"kraken staking reward ({r.asset})", None)
        elif kind == "transfer" or (kind == "earn" and sub in _EARN_MOVES):
            out.skip(f"{r.type}/{r.subtype or '-'} (between wallets of the account)")
        else:
            out.not_understood(f"{r.type}/{r.subtype}" if r.subtype else r.type, line)
    for refid, legs in groups.items():
        line = legs[0][0]
        try:
            out.trades.append(_kraken_ledger_trade(refid, legs))
        except ValueError as exc:
            raise InputError(f"{path}:{line}: {exc}") from None
    return out


#: Quote suffixes of Kraken pair names (XXBTZUSD, XBTUSDT, ETHXBT), longest first.
KRAKEN_PAIR_QUOTES = ("ZUSD", "ZEUR", "ZGBP", "ZCAD", "ZJPY", "XXBT", "XETH", "USDT", "USDC",
                      "USD", "EUR", "GBP", "CAD", "JPY", "CHF", "AUD", "DAI", "XBT", "ETH")  # fmt: skip
_EARN_MOVES = {"allocation", "deallocation", "autoallocation", "migration", ""}


def _kraken_ledger_trade(refid: str, legs: list[tuple[int, KrakenLedgerRow]]) -> Trade:
    """A trade's ledger lines (one per asset, fees on them) as the fill."""
    moves: dict[str, Decimal] = {}
    fees: dict[str, Decimal] = {}
    for _, r in legs:
        asset = kraken_asset(r.asset)
        moves[asset] = moves.get(asset, ZERO) + (r.amount or ZERO)
        if r.fee:
            fees[asset] = fees.get(asset, ZERO) + r.fee
    sides = [a for a, v in moves.items() if v != 0]
    if len(sides) != 2:
        raise ValueError(f"trade {refid}: expected two assets moving, found {len(sides)}")
    base, quote = sorted(sides, key=_quote_rank, reverse=True)
    side = "buy" if moves[base] > 0 else "sell"
    if (moves[quote] > 0) == (moves[base] > 0):
        raise ValueError(f"trade {refid}: both assets move the same way")
    fee_currency, fee = next(iter(fees.items())) if len(fees) == 1 else (None, ZERO)
    if len(fees) > 1:
        raise ValueError(f"trade {refid}: fees in more than one asset")
    return make_trade(
        refid, min(r.time for _, r in legs), base, quote, side, abs(moves[base]),
        cost=abs(moves[quote]), fee=fee, fee_currency=fee_currency,
    )  # fmt: skip


def _parse_kraken_trades(path: Path) -> Parsed:
    out = Parsed()
    for line, cells in read_rows(path, ("txid", "ordertxid", "pair", "vol")):
        out.rows += 1
        r = parse_row(KrakenTradeRow, cells, path, line)
        pair = r.pair.replace("/", "").upper()
        quote = next((q for q in KRAKEN_PAIR_QUOTES if pair.endswith(q)), None)
        if quote is None or r.vol is None or r.price is None:
            raise InputError(f"{path}:{line}: pair {r.pair!r} is not one vhc can split")
        base = kraken_asset(pair.removesuffix(quote))
        try:
            out.trades.append(make_trade(
                r.txid, r.time, base, kraken_asset(quote), r.type.lower(), r.vol,
                price=r.price, cost=r.cost, fee=r.fee, order_id=r.ordertxid,
            ))  # fmt: skip
        except ValueError as exc:
            raise InputError(f"{path}:{line}: {exc}") from None
    return out
