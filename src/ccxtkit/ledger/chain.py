"""The canonical encoding and hash of a ledger row (docs/ledger-format.md), in Python and SQL.

Both versions must agree byte for byte: Python hashes rows as they are appended, SQL recomputes
them inside DuckDB when verifying, so verify never has to pull a million rows into Python.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
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
    if kind == "decimal":
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


def row_hash(text: str) -> str:
    """SHA-256 of the canonical text, lowercase hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sql_text(kind: str, column: str) -> str:
    ref = f'"{column}"'
    if kind == "timestamp":
        return f"strftime({ref}, '{TIMESTAMP_FORMAT}')"
    if kind == "bool":
        return f"CASE WHEN {ref} THEN 'true' ELSE 'false' END"
    return f"CAST({ref} AS VARCHAR)"


def _sql_field(expr: str) -> str:
    # `||` yields NULL when either side is NULL, so coalesce gives NULL its marker.
    return f"coalesce(CAST(strlen({expr}) AS VARCHAR) || ':' || {expr}, '{NULL}')"


def canonical_select(table: str) -> str:
    """SELECT seq, tbl, prev_hash, row_hash, canon (the canonical text) over one table.

    Each value's text is computed once in an inner projection; the outer one length-prefixes
    and joins them (DuckDB would otherwise cast every value three times).
    """
    columns = TABLES[table]
    texts = [
        "seq",
        "prev_hash",
        "row_hash",
        f"{_sql_text('timestamp', 'recorded_at')} AS t_recorded_at",
        *(f"{_sql_text(c.kind, c.name)} AS t_{i}" for i, c in enumerate(columns)),
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
        f"SELECT seq, '{table}' AS tbl, prev_hash, row_hash, {' || '.join(parts)} AS canon "
        f'FROM (SELECT {", ".join(texts)} FROM "{table}")'
    )


def chain_union_sql() -> str:
    """Every chained row as (seq, tbl, prev_hash, row_hash, canon), across all tables."""
    return " UNION ALL ".join(canonical_select(t) for t in TABLES)


def now_utc() -> datetime:
    """The current UTC time, naive, microsecond precision (what TIMESTAMP stores)."""
    return datetime.now(UTC).replace(tzinfo=None)
