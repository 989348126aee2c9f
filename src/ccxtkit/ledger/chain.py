"""The canonical encoding and hash of a ledger row (docs/ledger-format.md), in Python and SQL.

Both texts must agree byte for byte: Python builds it as rows are appended; DuckDB builds it
(with builtin string functions only) when verifying, and Python hashes it with hashlib. No
hash is ever computed by SQL, so nothing stored in the file can stand in for SHA-256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..money import LEDGER_CONTEXT
from .schema import TABLES

FORMAT_TAG = "vhc1"
GENESIS_HASH = "0" * 64
NULL = "~"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_SCALE = Decimal("1E-18")
_ZERO = Decimal(0).quantize(_SCALE)


def utc_naive(value: datetime) -> datetime:
    """The UTC wall time of `value` without tzinfo, as stored in TIMESTAMP columns."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def encode_value(kind: str, value: Any) -> str | None:
    """The text of one value in the canonical encoding (None for NULL)."""
    if value is None:
        return None
    if kind in ("decimal", "decimal_any"):
        d = Decimal(value).quantize(_SCALE, context=LEDGER_CONTEXT)
        return format(d if d else _ZERO, "f")  # DuckDB has no negative zero
    if kind == "timestamp":
        # isoformat pads the year to 4 digits like DuckDB's %Y; strftime would write 999, not 0999.
        return utc_naive(value).isoformat(timespec="microseconds") + "Z"
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def _field(text: str | None) -> str:
    if text is None:
        return NULL
    return f"{len(text.encode('utf-8'))}:{text}"


def canonical(
    table: str, seq: int, prev_hash: str, recorded_at: datetime, row: Mapping[str, Any]
) -> str:
    """The canonical text of a row: tag, table, seq, prev hash, recorded_at, then its columns."""
    parts = [
        FORMAT_TAG,
        _field(table),
        _field(str(seq)),
        _field(prev_hash),
        _field(encode_value("timestamp", recorded_at)),
    ]
    parts.extend(_field(encode_value(c.kind, row.get(c.name))) for c in TABLES[table])
    return "".join(parts)


def canonical_of(table: str, kinds: Sequence[tuple[str, str]], row: Mapping[str, Any]) -> str:
    """The canonical text of a stored row (chain columns included) given its (name, kind) list."""
    parts = [
        FORMAT_TAG,
        _field(table),
        _field(str(row["seq"])),
        _field(row["prev_hash"]),
        _field(encode_value("timestamp", row["recorded_at"])),
    ]
    parts.extend(_field(encode_value(kind, row.get(name))) for name, kind in kinds)
    return "".join(parts)


def row_hash(text: str) -> str:
    """SHA-256 of the canonical text, lowercase hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sql_text(kind: str, column: str) -> str:
    ref = f'"{column}"'
    if kind == "decimal_any":
        # A DECIMAL of another scale (a future table) still gets exactly 18 fraction digits.
        return f"CAST(CAST({ref} AS DECIMAL(38,18)) AS VARCHAR)"
    if kind == "timestamp":
        return f"strftime({ref}, '{TIMESTAMP_FORMAT}')"
    if kind == "bool":
        return f"CASE WHEN {ref} THEN 'true' ELSE 'false' END"
    return f"CAST({ref} AS VARCHAR)"


def _sql_field(expr: str) -> str:
    # One concat() per field (and one for the row) costs DuckDB a quarter less than `||` chains.
    return f"CASE WHEN {expr} IS NULL THEN '{NULL}' ELSE concat(strlen({expr}), ':', {expr}) END"


def sql_concat(parts: Sequence[str]) -> str:
    """SQL joining these text expressions (none of them NULL) into one string."""
    if not parts:
        return "''"
    return parts[0] if len(parts) == 1 else f"concat({', '.join(parts)})"


def canonical_select(
    table: str, kinds: Sequence[tuple[str, str]] | None = None, where: str = ""
) -> str:
    """SELECT seq, tbl, prev_hash, row_hash, canon (the canonical text) over one table.

    `kinds` is the table's (column, kind) list as the file declares it (default: this vhc's);
    `where`, a condition on the table's own columns (verify's seq ranges). Each value's text is
    computed once in an inner projection; the outer one length-prefixes and joins them (DuckDB
    would otherwise cast every value three times).
    """
    columns = kinds if kinds is not None else [(c.name, c.kind) for c in TABLES[table]]
    texts = [
        "seq",
        "prev_hash",
        "row_hash",
        f"{_sql_text('timestamp', 'recorded_at')} AS t_recorded_at",
        *(f"{_sql_text(kind, name)} AS t_{i}" for i, (name, kind) in enumerate(columns)),
    ]
    parts = [
        f"'{FORMAT_TAG}'",
        f"'{len(table.encode())}:{table}'",
        _sql_field("CAST(seq AS VARCHAR)"),
        _sql_field("prev_hash"),
        _sql_field("t_recorded_at"),
        *(_sql_field(f"t_{i}") for i in range(len(columns))),
    ]
    return (
        f"SELECT seq, '{table}' AS tbl, prev_hash, row_hash, {sql_concat(parts)} AS canon "
        f'FROM (SELECT {", ".join(texts)} FROM "{table}"{f" WHERE {where}" if where else ""})'
    )


def chain_union_sql(tables: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> str:
    """Every chained row as (seq, tbl, prev_hash, row_hash, canon), across all tables."""
    if tables is None:
        return " UNION ALL ".join(canonical_select(t) for t in TABLES)
    return " UNION ALL ".join(canonical_select(t, k) for t, k in tables.items())


def now_utc() -> datetime:
    """The current UTC time, naive, microsecond precision (what TIMESTAMP stores)."""
    return datetime.now(UTC).replace(tzinfo=None)
