"""Coinbase's and Binance.US's "Transaction History" exports (`vhc ledger import --from`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import Field

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
    number,
    parse_row,
    read_rows,
)


class CoinbaseRow(Row):
    """One line of Coinbase's "Transaction History" export (old and new column names)."""

    id: Text = Field("", alias="ID")
    timestamp: Time = Field(alias="Timestamp")
    type: Text = Field(alias="Transaction Type")
    asset: Text = Field(alias="Asset")
    quantity: Number = Field(alias="Quantity Transacted")
    price_currency: Text = Field("USD", alias="Price Currency")
    price: Number = Field(None, alias="Price at Transaction")
    subtotal: Number = Field(None, alias="Subtotal")
    total: Number = Field(None, alias="Total (inclusive of fees and/or spread)")
    fees: Number = Field(None, alias="Fees and/or Spread")
    notes: Text = Field("", alias="Notes")


class BinanceUsRow(Row):
    """One line of Binance.US's "Transaction History" export."""

    time: Time = Field(alias="Time")
    category: Text = Field(alias="Category")
    operation: Text = Field(alias="Operation")
    order_id: Text = Field("", alias="Order ID")
    transaction_id: Text = Field(alias="Transaction ID")
    primary_asset: Text = Field("", alias="Primary Asset")
    primary_amount: Number = Field(None, alias="Realized Amount For Primary Asset")
    primary_usd: Number = Field(None, alias="Realized Amount for Primary Asset in USD")
    base_asset: Text = Field("", alias="Base Asset")
    base_amount: Number = Field(None, alias="Realized Amount For Base Asset")
    quote_asset: Text = Field("", alias="Quote Asset")
    quote_amount: Number = Field(None, alias="Realized Amount for Quote Asset")
    fee_asset: Text = Field("", alias="Fee Asset")
    fee_amount: Number = Field(None, alias="Realized Amount for Fee Asset")


#: Old Coinbase headers, mapped to the new names the model reads.
_COINBASE_ALIASES = {
    "Spot Price Currency": "Price Currency",
    "Spot Price at Transaction": "Price at Transaction",
    "Total (inclusive of fees)": "Total (inclusive of fees and/or spread)",
    "Fees": "Fees and/or Spread",
}


# -- Coinbase ------------------------------------------------------------------------------------
_CB_BUY = {"buy", "advanced trade buy"}
_CB_SELL = {"sell", "advanced trade sell"}
_CB_INCOME = {
    "rewards income", "staking income", "coinbase earn", "learning reward", "inflation reward",
    "reward income", "staking reward", "interest income",
}  # fmt: skip
_CB_TRANSFERS = {
    "receive": "deposit", "send": "withdrawal", "deposit": "deposit", "withdrawal": "withdrawal",
    "pro withdrawal": "internal_in", "pro deposit": "internal_out",
    "exchange withdrawal": "internal_in", "exchange deposit": "internal_out",
}  # fmt: skip


def _cb_id(r: CoinbaseRow, seen: dict[str, int]) -> str:
    if r.id:
        return r.id
    # The old export has no id: one from the row's content (the nth identical row gets -n).
    text = "|".join([r.timestamp.isoformat(), r.type, r.asset, str(r.quantity), r.notes])
    digest = "cb-" + hashlib.sha256(text.encode()).hexdigest()[:20]
    seen[digest] = seen.get(digest, 0) + 1
    return digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"


def parse_coinbase(path: Path) -> Parsed:

    out = Parsed()
    seen: dict[str, int] = {}
    convert = re.compile(r"Converted\s+([0-9.,]+)\s+(\S+)\s+to\s+([0-9.,]+)\s+(\S+)", re.I)
    for line, cells in read_rows(path, ("Timestamp", "Transaction Type", "Asset")):
        out.rows += 1
        cells = {_COINBASE_ALIASES.get(k, k): v for k, v in cells.items()}
        r = parse_row(CoinbaseRow, cells, path, line)
        kind, asset, qty = r.type.lower(), r.asset.upper(), abs(r.quantity or ZERO)
        tid, quote = _cb_id(r, seen), (r.price_currency or "USD").upper()
        value = abs(r.subtotal) if r.subtotal is not None else None
        try:
            if kind in _CB_BUY or kind in _CB_SELL:
                pair = re.search(r"\bon\s+([A-Z0-9]+)-([A-Z0-9]+)\b", r.notes)
                if pair and pair.group(1) == asset:
                    quote = pair.group(2)
                side = "buy" if kind in _CB_BUY else "sell"
                out.trades.append(make_trade(
                    tid, r.timestamp, asset, quote, side, qty, price=None if value else r.price,
                    cost=value, fee=abs(r.fees or ZERO), fee_currency=quote,
                ))  # fmt: skip
            elif kind == "convert":
                m = convert.search(r.notes)
                if m is None or value is None:
                    raise ValueError(
                        "a Convert row needs 'Converted X A to Y B' notes and a Subtotal"
                    )
                got, to = number(m.group(3)), m.group(4).upper()
                assert got is not None
                fee = abs(r.fees or ZERO)
                # Two fills through the export's own USD value: the disposal and the purchase.
                out.trades.append(make_trade(f"{tid}-sell", r.timestamp, asset, quote, "sell", qty,
                                         cost=value, fee=fee, fee_currency=quote))  # fmt: skip
                out.trades.append(make_trade(f"{tid}-buy", r.timestamp, to, quote, "buy", got,
                                         cost=value))  # fmt: skip
            elif kind in _CB_INCOME:
                out.transfers.append(make_transfer(tid, "deposit", r.timestamp, asset, qty))
                usd = value if quote == "USD" and value is not None else (
                    qty * r.price if quote == "USD" and r.price is not None else None
                )  # fmt: skip
                out.notes[tid] = income_note(f"coinbase {r.type}", usd)
            elif kind in _CB_TRANSFERS:
                # A send's fee column is in USD; the quantity is what left the account.
                out.transfers.append(
                    make_transfer(tid, _CB_TRANSFERS[kind], r.timestamp, asset, qty)
                )
            else:
                out.not_understood(r.type, line)
        except ValueError as exc:
            raise InputError(f"{path}:{line}: {exc}") from None
    return out


# -- Binance.US ----------------------------------------------------------------------------------
def parse_binanceus(path: Path) -> Parsed:
    out = Parsed()
    header = ("Time", "Category", "Operation", "Transaction ID")
    for line, cells in read_rows(path, header):
        out.rows += 1
        r = parse_row(BinanceUsRow, cells, path, line)
        cat, op = r.category.lower(), r.operation.lower()
        tid = r.transaction_id
        if not tid:
            raise InputError(f"{path}:{line}: Transaction ID is empty")
        try:
            if cat in ("spot trading", "buy", "sell", "quick buy") and op in ("buy", "sell"):
                out.trades.append(_binance_trade(r, op))
            elif cat == "convert":
                out.trades.append(_binance_trade(r, "sell"))
            elif cat in ("deposit", "withdrawal"):
                amount = r.primary_amount or ZERO
                fee = abs(r.fee_amount) if r.fee_amount else None
                out.transfers.append(make_transfer(
                    tid, cat, r.time, r.primary_asset, amount, fee, r.fee_asset.upper() or None,
                ))  # fmt: skip
            elif cat == "distribution":
                amount = r.primary_amount or ZERO
                if amount < 0:  # a negative staking "reward" is the service's fee
                    out.transfers.append(
                        make_transfer(tid, "withdrawal", r.time, r.primary_asset, amount)
                    )
                    out.notes[tid] = f"binanceus {r.operation}: staking service fee"
                else:
                    out.transfers.append(
                        make_transfer(tid, "deposit", r.time, r.primary_asset, amount)
                    )
                    out.notes[tid] = income_note(f"binanceus {r.operation}", r.primary_usd)
            elif cat == "staking":
                out.skip(f"{r.category}/{r.operation} (between wallets of the account)")
            else:
                out.not_understood(f"{r.category}/{r.operation}", line)
        except ValueError as exc:
            raise InputError(f"{path}:{line}: {exc}") from None
    return out


def _binance_trade(r: BinanceUsRow, side: str) -> Trade:
    if r.base_amount is None or r.quote_amount is None:
        raise ValueError("a trade needs both the base and the quote amount")
    return make_trade(
        r.transaction_id, r.time, r.base_asset.upper(), r.quote_asset.upper(), side,
        abs(r.base_amount), cost=abs(r.quote_amount), fee=abs(r.fee_amount or ZERO),
        fee_currency=r.fee_asset.upper() or None, order_id=r.order_id,
    )  # fmt: skip
