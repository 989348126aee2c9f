"""Importing trades from the CSV format of DESIGN.md: all rows or none, each trade once."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from .. import crashpoints
from ..errors import InputError, VhcError
from ..money import LEDGER_CONTEXT, SCALE, is_usd_like, to_ledger_decimal
from .store import Ledger

REQUIRED = (
    "timestamp",
    "exchange",
    "symbol",
    "side",
    "amount",
    "price",
    "fee",
    "fee_currency",
    "trade_id",
)
OPTIONAL = ("order_id", "strategy", "notes")
_ZERO = Decimal(0)


@dataclass(frozen=True)
class ImportResult:
    """What an import did."""

    file: Path
    rows: int
    imported: int
    duplicates: int
    first_seq: int | None
    last_seq: int | None


#: No crypto trade predates Bitcoin's genesis block; nothing is recorded from the future.
EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)


def parse_timestamp(text: str, what: str = "timestamp") -> datetime:
    """ISO 8601; UTC when no offset is given; refused outside 2009-01-03 .. now + 1 day."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{what} {text!r} is not ISO 8601 (e.g. 2025-01-23T14:05:00Z)") from None
    except OverflowError:
        raise InputError(f"{what} {text!r} is out of range") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise InputError(f"{what} {text!r} is out of range") from None
    latest = datetime.now(UTC) + FUTURE_SLACK
    if not EARLIEST <= value <= latest:
        raise InputError(
            f"{what} {text!r} is outside 2009-01-03 .. {latest:%Y-%m-%d} (UTC); fix the date"
        )
    return value


def _check_header(header: list[str] | None, path: Path) -> list[str]:
    if not header:
        raise InputError(f"{path}: the file is empty; expected a header line")
    names = [h.strip() for h in header]
    if tuple(names[: len(REQUIRED)]) != REQUIRED:
        raise InputError(
            f"{path}:1: header must start with {','.join(REQUIRED)} (got {','.join(names)})"
        )
    extra = [n for n in names[len(REQUIRED) :] if n not in OPTIONAL]
    if extra:
        raise InputError(
            f"{path}:1: unknown column(s) {', '.join(extra)}; optional ones are "
            f"{', '.join(OPTIONAL)}"
        )
    return names


def _parse_row(cells: dict[str, str], source: str) -> dict[str, Any]:
    symbol = cells["symbol"].strip().upper()
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote:
        raise InputError(f"symbol {cells['symbol']!r} must look like BTC/USD")
    side = cells["side"].strip().lower()
    if side not in ("buy", "sell"):
        raise InputError(f"side {cells['side']!r} must be buy or sell")
    amount = to_ledger_decimal(cells["amount"], "amount")
    price = to_ledger_decimal(cells["price"], "price")
    fee = to_ledger_decimal(cells["fee"] or "0", "fee")
    if amount <= _ZERO:
        raise InputError(f"amount {cells['amount']!r} must be greater than 0")
    if price <= _ZERO:
        raise InputError(f"price {cells['price']!r} must be greater than 0")
    if fee < _ZERO:
        raise InputError(f"fee {cells['fee']!r} must not be negative")
    trade_id = cells["trade_id"].strip()
    exchange = cells["exchange"].strip().lower()
    if not trade_id:
        raise InputError("trade_id is empty; every trade needs the exchange's id")
    if not exchange:
        raise InputError("exchange is empty")
    fee_currency = cells["fee_currency"].strip().upper() or (quote if fee else None)
    cost = to_ledger_decimal(
        LEDGER_CONTEXT.multiply(amount, price).quantize(SCALE, context=LEDGER_CONTEXT), "cost"
    )
    return {
        "timestamp": parse_timestamp(cells["timestamp"]),
        "exchange": exchange,
        "symbol": symbol,
        "asset": base,
        "quote": quote,
        "side": side,
        "amount": amount,
        "price": price,
        "cost": cost,
        "fee": fee,
        "fee_currency": fee_currency,
        "trade_id": trade_id,
        "order_id": (cells.get("order_id") or "").strip() or None,
        "client_order_id": None,
        "strategy": (cells.get("strategy") or "").strip() or None,
        "source": source,
        "notes": (cells.get("notes") or "").strip() or None,
        "total_usd": cost if is_usd_like(quote) else None,
    }


def parse_trades_csv(path: Path, source: str = "import") -> list[tuple[int, dict[str, Any]]]:
    """Every row as (line number, ledger row); the first bad row raises with its line."""
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    with handle:
        reader = csv.reader(handle)
        try:
            names = _check_header(next(reader, None), path)
            for cells in reader:
                line = reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                if len(cells) != len(names):
                    raise InputError(
                        f"{path}:{line}: expected {len(names)} columns, found {len(cells)}"
                    )
                try:
                    rows.append((line, _parse_row(dict(zip(names, cells, strict=True)), source)))
                except VhcError as exc:
                    raise InputError(f"{path}:{line}: {exc.message}") from None
        except csv.Error as exc:
            raise InputError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text; save it as UTF-8 CSV") from None
    return rows


def _same_trade(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("timestamp", "symbol", "side", "amount", "price", "fee", "fee_currency")
    return all(a[k] == b[k] for k in keys)


#: Columns of `vhc ledger export --table trades --format csv` that the ledger computes itself.
LEDGER_ONLY = ("seq", "prev_hash", "row_hash", "recorded_at", "asset", "quote", "cost",
               "client_order_id", "source", "total_usd")  # fmt: skip


def import_trades(ledger: Ledger, path: Path, source: str = "import") -> ImportResult:
    """Import a trades CSV in one transaction; a trade already in the ledger is skipped.

    A file written by `vhc ledger export --table trades --format csv` imports too: the
    columns the ledger computes (seq, hashes, cost...) are dropped and computed again.
    """
    import tempfile
    from dataclasses import replace

    exported = _exported_columns(path)
    if exported is None:
        return _import_file(ledger, path, source)
    with tempfile.TemporaryDirectory(prefix="vhc-import-") as tmp:
        plain = Path(tmp) / (path.name if path.name not in ("", "-") else "stdin.csv")
        keep = [*REQUIRED, *(n for n in OPTIONAL if n in exported)]
        with (
            open(path, newline="", encoding="utf-8-sig") as src,
            open(plain, "w", newline="", encoding="utf-8") as dst,
        ):
            writer = csv.writer(dst, lineterminator="\n")
            writer.writerow(keep)
            for row in csv.DictReader(src):
                writer.writerow([row.get(n) or "" for n in keep])
        return replace(_import_file(ledger, plain, source), file=path)


def _exported_columns(path: Path) -> list[str] | None:
    """The header of a ledger export (it names ledger-only columns), else None."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except OSError:
        return None  # the importer proper names the problem
    names = [h.strip() for h in header or []]
    known = {*REQUIRED, *OPTIONAL, *LEDGER_ONLY}
    if set(REQUIRED) <= set(names) <= known and any(n in LEDGER_ONLY for n in names):
        return names
    return None


def _import_file(ledger: Ledger, path: Path, source: str) -> ImportResult:
    from .fast_import import fast_import

    names = _read_header(path)
    with ledger.transaction():
        bulk = fast_import(ledger, path, names, source)
        if bulk is not None:
            rows, imported, seqs = bulk
            ledger.record_event(
                "ledger.import",
                {"file": path.name, "rows": rows, "imported": imported},
                subject=str(path),
            )
            return ImportResult(
                path, rows, imported, rows - imported,
                seqs[0] if seqs else None, seqs[-1] if seqs else None,
            )  # fmt: skip
    return _import_row_by_row(ledger, path, source)


def _refuse_conflicts(
    ledger: Ledger,
    path: Path,
    seen: dict[tuple[str, str], tuple[int, dict[str, Any]]],
    existing: set[tuple[str, str]],
) -> None:
    """A trade id the ledger has with other values is a conflict, never a silent duplicate."""
    keys = [k for k in seen if k in existing]
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        where = " OR ".join("(exchange = ? AND trade_id = ?)" for _ in chunk)
        params = [v for k in chunk for v in k]
        for stored in ledger.rows(
            "SELECT exchange, trade_id, timestamp, symbol, side, amount, price, fee, fee_currency "
            f"FROM trades WHERE {where}",
            params,
        ):
            line, row = seen[(stored["exchange"], stored["trade_id"])]
            mine = {**row, "timestamp": row["timestamp"].astimezone(UTC).replace(tzinfo=None)}
            if not _same_trade(mine, stored):
                raise InputError(
                    f"{path}:{line}: trade_id {stored['trade_id']!r} on {stored['exchange']} is "
                    "already in the ledger with different values (a conflict, not a duplicate); "
                    "check which is right before importing"
                )


def _read_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return _check_header(next(csv.reader(handle), None), path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    except (csv.Error, UnicodeDecodeError):
        raise InputError(f"{path}:1: the header is not readable CSV text") from None


def _import_row_by_row(ledger: Ledger, path: Path, source: str) -> ImportResult:
    """The careful path: every row checked in Python, the first bad one named by its line."""
    parsed = parse_trades_csv(path, source)
    seen: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    unique: list[dict[str, Any]] = []
    for line, row in parsed:
        key = (row["exchange"], row["trade_id"])
        if key in seen:
            first_line, first = seen[key]
            if not _same_trade(first, row):
                raise InputError(
                    f"{path}:{line}: trade_id {key[1]!r} on {key[0]} already appears on line "
                    f"{first_line} with different values; fix the file"
                )
            continue
        seen[key] = (line, row)
        unique.append(row)
    exchanges = sorted({r["exchange"] for r in unique})
    existing: set[tuple[str, str]] = set()
    if exchanges:
        marks = ", ".join("?" for _ in exchanges)
        existing = {
            (e, t)
            for e, t in ledger.query(
                f"SELECT exchange, trade_id FROM trades WHERE exchange IN ({marks})", exchanges
            )
        }
    _refuse_conflicts(ledger, path, seen, existing)
    fresh = [r for r in unique if (r["exchange"], r["trade_id"]) not in existing]
    with ledger.transaction():
        seqs = ledger.append("trades", fresh)
        crashpoints.reach("ledger.import.mid_batch")  # rows inserted, transaction not committed
        ledger.record_event(
            "ledger.import",
            {"file": path.name, "rows": len(parsed), "imported": len(fresh)},
            subject=str(path),
        )
    return ImportResult(
        file=path,
        rows=len(parsed),
        imported=len(fresh),
        duplicates=len(parsed) - len(fresh),
        first_seq=seqs[0] if seqs else None,
        last_seq=seqs[-1] if seqs else None,
    )
