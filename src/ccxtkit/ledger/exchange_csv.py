"""`vhc ledger import --from coinbase|kraken|binanceus FILE`: an exchange's own history export.

Each row is read through a pydantic model of that export's documented columns (bad values:
one line naming file:line), mapped to fills and transfers, and recorded like `ledger sync`
records them (ledger.sync.record_history): keyed by the exchange's own trade/reference id as
ccxt reports it, so the same trade read by `ledger sync` and from the file is recorded once.

- trades (and conversions, as the trades they are) become `trades` rows;
- deposits, withdrawals and staking/reward income become `transfers` rows; income carries
  `cost_basis_usd=` (its value when received) in its notes where the export gives the value;
- rows the export uses for moves inside the account (wallet to staking, say) are skipped and
  counted by type; any other type is listed as unknown, never dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ..errors import InputError
from ..exchanges.base import Trade, Transfer
from ..money import LEDGER_CONTEXT, SCALE
from ..workspace import Workspace
from .trades_csv import parse_timestamp

SOURCES = ("coinbase", "kraken", "binanceus")
ZERO = Decimal(0)


def _number(value: Any) -> Decimal | None:
    """An export's number: blank is None; `$`, thousands commas and spaces are dropped."""
    if value is None or isinstance(value, Decimal):
        return value
    text = str(value).strip().replace("$", "").replace(",", "").replace(" ", "")
    if text in ("", "-"):
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a number")
    return number


def _time(value: Any) -> datetime:
    """ISO 8601 or `YYYY-MM-DD HH:MM:SS[.fff][ UTC]`; no offset means UTC."""
    text = str(value).strip().removesuffix(" UTC").removesuffix("UTC").strip()
    try:
        return parse_timestamp(text.replace(" ", "T", 1), "time")
    except InputError as exc:
        raise ValueError(exc.message) from None


Number = Annotated[Decimal | None, BeforeValidator(_number)]
Time = Annotated[datetime, BeforeValidator(_time)]
Text = Annotated[str, BeforeValidator(lambda v: "" if v is None else str(v).strip())]


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class KrakenLedgerRow(_Row):
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


class KrakenTradeRow(_Row):
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


class CoinbaseRow(_Row):
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


class BinanceUsRow(_Row):
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


@dataclass
class Parsed:
    """A file's rows as movements, plus what was skipped (by type) and not understood."""

    trades: list[Trade] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    unknown: dict[str, list[int]] = field(default_factory=dict)
    rows: int = 0

    def skip(self, what: str) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + 1

    def not_understood(self, what: str, line: int) -> None:
        self.unknown.setdefault(what, []).append(line)


@dataclass(frozen=True)
class ExportImportResult:
    """What `vhc ledger import --from` did."""

    file: Path
    source: str
    exchange: str
    rows: int
    added: int
    known: int
    conflicts: list[str]
    skipped: dict[str, int]
    unknown: dict[str, list[int]]


# -- reading -------------------------------------------------------------------------------------
def _rows(path: Path, header_has: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, cells by column) after the header line (the first line holding `header_has`)."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        names: list[str] | None = None
        try:
            for cells in reader:
                line = reader.line_num
                stripped = [c.strip() for c in cells]
                if names is None:
                    if all(h in stripped for h in header_has):
                        names = stripped
                    continue  # preamble lines before the header (Coinbase writes some)
                if not any(stripped):
                    continue
                if len(cells) != len(names):
                    raise InputError(
                        f"{path}:{line}: expected {len(names)} columns, found {len(cells)}"
                    )
                yield line, dict(zip(names, cells, strict=True))
        except csv.Error as exc:
            raise InputError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text; save it as UTF-8 CSV") from None
        if names is None:
            raise InputError(
                f"{path}: no header line with {', '.join(header_has)}; is this the right export?"
            )


M = TypeVar("M", bound=_Row)


def _model(model: type[M], cells: dict[str, str], path: Path, line: int) -> M:
    try:
        return model.model_validate(cells)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise InputError(f"{path}:{line}: column {where}: {msg}") from None


def _cost(amount: Decimal, price: Decimal) -> Decimal:
    return LEDGER_CONTEXT.multiply(amount, price).quantize(SCALE, context=LEDGER_CONTEXT)


def _price(cost: Decimal, amount: Decimal) -> Decimal:
    return LEDGER_CONTEXT.divide(cost, amount).quantize(SCALE, context=LEDGER_CONTEXT)


def _trade(
    tid: str, when: datetime, base: str, quote: str, side: str, amount: Decimal, *,
    price: Decimal | None = None, cost: Decimal | None = None, fee: Decimal | None = None,
    fee_currency: str | None = None, order_id: str | None = None,
) -> Trade:  # fmt: skip
    if amount <= 0:
        raise ValueError(f"trade {tid}: amount must be greater than 0")
    if price is None:
        assert cost is not None
        price = _price(cost, amount)
    if cost is None:
        cost = _cost(amount, price)
    return Trade(
        id=tid, order_id=order_id or None, symbol=f"{base}/{quote}", side=side, amount=amount,
        price=price, cost=cost, fee=fee or ZERO,
        fee_currency=(fee_currency or quote) if fee else None, timestamp=when,
    )  # fmt: skip


def _transfer(
    tid: str, kind: str, when: datetime, asset: str, amount: Decimal, fee: Decimal | None = None,
    fee_currency: str | None = None,
) -> Transfer:  # fmt: skip
    return Transfer(
        id=tid, kind=kind, asset=asset.upper(), amount=abs(amount), fee=fee or None,
        fee_currency=(fee_currency or asset.upper()) if fee else None, status="ok",
        timestamp=when,
    )  # fmt: skip


def _income_note(what: str, usd: Decimal | None) -> str:
    basis = "" if usd is None else f"; cost_basis_usd={abs(usd).quantize(Decimal('0.01'))}"
    return f"{what} (income when received){basis}"


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


def _parse_kraken(path: Path) -> Parsed:
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
    for line, cells in _rows(path, ("refid", "time", "type", "asset", "amount")):
        out.rows += 1
        rows.append((line, _model(KrakenLedgerRow, cells, path, line)))
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
            out.transfers.append(_transfer(r.refid or r.txid, kind, r.time, asset, amount, fee))
        elif kind == "staking" or (kind == "earn" and sub == "reward"):
            tid = r.txid or r.refid
            if amount < 0:
                out.not_understood(f"{r.type}/{r.subtype} (negative)", line)
                continue
            out.transfers.append(_transfer(tid, "deposit", r.time, asset, amount, fee))
            out.notes[tid] = _income_note(f"kraken staking reward ({r.asset})", None)
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
    return _trade(
        refid, min(r.time for _, r in legs), base, quote, side, abs(moves[base]),
        cost=abs(moves[quote]), fee=fee, fee_currency=fee_currency,
    )  # fmt: skip


def _parse_kraken_trades(path: Path) -> Parsed:
    out = Parsed()
    for line, cells in _rows(path, ("txid", "ordertxid", "pair", "vol")):
        out.rows += 1
        r = _model(KrakenTradeRow, cells, path, line)
        pair = r.pair.replace("/", "").upper()
        quote = next((q for q in KRAKEN_PAIR_QUOTES if pair.endswith(q)), None)
        if quote is None or r.vol is None or r.price is None:
            raise InputError(f"{path}:{line}: pair {r.pair!r} is not one vhc can split")
        base = kraken_asset(pair.removesuffix(quote))
        try:
            out.trades.append(_trade(
                r.txid, r.time, base, kraken_asset(quote), r.type.lower(), r.vol,
                price=r.price, cost=r.cost, fee=r.fee, order_id=r.ordertxid,
            ))  # fmt: skip
        except ValueError as exc:
            raise InputError(f"{path}:{line}: {exc}") from None
    return out


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


def _parse_coinbase(path: Path) -> Parsed:
    import re

    out = Parsed()
    seen: dict[str, int] = {}
    convert = re.compile(r"Converted\s+([0-9.,]+)\s+(\S+)\s+to\s+([0-9.,]+)\s+(\S+)", re.I)
    for line, cells in _rows(path, ("Timestamp", "Transaction Type", "Asset")):
        out.rows += 1
        cells = {_COINBASE_ALIASES.get(k, k): v for k, v in cells.items()}
        r = _model(CoinbaseRow, cells, path, line)
        kind, asset, qty = r.type.lower(), r.asset.upper(), abs(r.quantity or ZERO)
        tid, quote = _cb_id(r, seen), (r.price_currency or "USD").upper()
        value = abs(r.subtotal) if r.subtotal is not None else None
        try:
            if kind in _CB_BUY or kind in _CB_SELL:
                pair = re.search(r"\bon\s+([A-Z0-9]+)-([A-Z0-9]+)\b", r.notes)
                if pair and pair.group(1) == asset:
                    quote = pair.group(2)
                side = "buy" if kind in _CB_BUY else "sell"
                out.trades.append(_trade(
                    tid, r.timestamp, asset, quote, side, qty, price=None if value else r.price,
                    cost=value, fee=abs(r.fees or ZERO), fee_currency=quote,
                ))  # fmt: skip
            elif kind == "convert":
                m = convert.search(r.notes)
                if m is None or value is None:
                    raise ValueError(
                        "a Convert row needs 'Converted X A to Y B' notes and a Subtotal"
                    )
                got, to = _number(m.group(3)), m.group(4).upper()
                assert got is not None
                fee = abs(r.fees or ZERO)
                # Two fills through the export's own USD value: the disposal and the purchase.
                out.trades.append(_trade(f"{tid}-sell", r.timestamp, asset, quote, "sell", qty,
                                         cost=value, fee=fee, fee_currency=quote))  # fmt: skip
                out.trades.append(_trade(f"{tid}-buy", r.timestamp, to, quote, "buy", got,
                                         cost=value))  # fmt: skip
            elif kind in _CB_INCOME:
                out.transfers.append(_transfer(tid, "deposit", r.timestamp, asset, qty))
                usd = value if quote == "USD" and value is not None else (
                    qty * r.price if quote == "USD" and r.price is not None else None
                )  # fmt: skip
                out.notes[tid] = _income_note(f"coinbase {r.type}", usd)
            elif kind in _CB_TRANSFERS:
                # A send's fee column is in USD; the quantity is what left the account.
                out.transfers.append(_transfer(tid, _CB_TRANSFERS[kind], r.timestamp, asset, qty))
            else:
                out.not_understood(r.type, line)
        except ValueError as exc:
            raise InputError(f"{path}:{line}: {exc}") from None
    return out


# -- Binance.US ----------------------------------------------------------------------------------
def _parse_binanceus(path: Path) -> Parsed:
    out = Parsed()
    header = ("Time", "Category", "Operation", "Transaction ID")
    for line, cells in _rows(path, header):
        out.rows += 1
        r = _model(BinanceUsRow, cells, path, line)
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
                out.transfers.append(_transfer(
                    tid, cat, r.time, r.primary_asset, amount, fee, r.fee_asset.upper() or None,
                ))  # fmt: skip
            elif cat == "distribution":
                amount = r.primary_amount or ZERO
                if amount < 0:  # a negative staking "reward" is the service's fee
                    out.transfers.append(
                        _transfer(tid, "withdrawal", r.time, r.primary_asset, amount)
                    )
                    out.notes[tid] = f"binanceus {r.operation}: staking service fee"
                else:
                    out.transfers.append(_transfer(tid, "deposit", r.time, r.primary_asset, amount))
                    out.notes[tid] = _income_note(f"binanceus {r.operation}", r.primary_usd)
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
    return _trade(
        r.transaction_id, r.time, r.base_asset.upper(), r.quote_asset.upper(), side,
        abs(r.base_amount), cost=abs(r.quote_amount), fee=abs(r.fee_amount or ZERO),
        fee_currency=r.fee_asset.upper() or None, order_id=r.order_id,
    )  # fmt: skip


_PARSERS = {"coinbase": _parse_coinbase, "kraken": _parse_kraken, "binanceus": _parse_binanceus}


def parse_export(source: str, path: Path) -> Parsed:
    """Read an exchange's export into movements (nothing written)."""
    parser = _PARSERS.get(source.lower())
    if parser is None:
        raise InputError(f"--from {source!r}: use one of {', '.join(SOURCES)}")
    try:
        return parser(path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def import_export(
    ws: Workspace, source: str, path: Path, exchange: str | None = None
) -> ExportImportResult:
    """Parse the export, then record its movements in one transaction (see module doc)."""
    from .. import crashpoints
    from .sync import record_history

    parsed = parse_export(source, path)
    account = exchange or source.lower()
    with ws.open_ledger() as ledger, ledger.transaction():
        done = record_history(
            ledger, account, parsed.trades, parsed.transfers, f"import:{source.lower()}",
            f"imported from the {source.lower()} export {path.name}", parsed.notes,
        )  # fmt: skip
        crashpoints.reach("ledger.import.mid_batch")  # rows inserted, not committed
        ledger.record_event(
            "ledger.import",
            {"file": path.name, "from": source.lower(), "exchange": account, "rows": parsed.rows,
             "imported": done.added, "known": done.known, "conflicts": len(done.conflicts),
             "skipped": parsed.skipped, "unknown": sorted(parsed.unknown)},
            subject=str(path),
        )  # fmt: skip
    return ExportImportResult(
        path, source.lower(), account, parsed.rows, done.added, done.known, done.conflicts,
        parsed.skipped, parsed.unknown,
    )  # fmt: skip
