"""Exporting ledger tables to csv, parquet or json, and reading the audit trail."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .instance import all_cores
from .schema import TABLES, all_columns
from .store import Ledger

FORMATS = ("csv", "parquet", "json")


@dataclass(frozen=True)
class ExportResult:
    """What was written where."""

    table: str
    format: str
    path: Path
    rows: int


def _column_sql(name: str, kind: str | None, fmt: str) -> str:
    """One exported column: exact strings for money in JSON, RFC 3339 times in text formats."""
    if fmt == "json" and kind == "decimal":
        return f'CAST("{name}" AS VARCHAR) AS "{name}"'
    if fmt in ("csv", "json") and kind == "timestamp":
        # Ledger times are naive UTC: say so, as RFC 3339 does (machines read these files).
        return f"strftime(\"{name}\", '%Y-%m-%dT%H:%M:%S.%f') || '+00:00' AS \"{name}\""
    return f'"{name}"'


def export_table(ledger: Ledger, table: str, fmt: str, output: Path) -> ExportResult:
    """Write one table, in chain order, to `output` (mode 0600)."""
    if table not in TABLES:
        raise UsageError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    kinds = {"seq": "int", "recorded_at": "timestamp"} | {c.name: c.kind for c in TABLES[table]}
    # JSON numbers become floats in most readers: money travels as exact strings there.
    select = ", ".join(_column_sql(n, kinds.get(n), fmt) for n in all_columns(table))
    from ..workspace import output_path

    output_path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--output {output}: {exc.strerror or exc}") from None
    options = {
        "csv": "FORMAT CSV, HEADER",
        "parquet": "FORMAT PARQUET",
        "json": "FORMAT JSON, ARRAY true",
    }
    tmp = output.with_name(f".{output.name}.tmp")
    query = f'SELECT {select} FROM "{table}" ORDER BY seq'
    path_sql = str(tmp).replace("'", "''")
    import duckdb

    try:
        with all_cores(ledger.con):
            ledger.con.execute(f"COPY ({query}) TO '{path_sql}' ({options[fmt]})")
        os.chmod(tmp, 0o600)
        os.replace(tmp, output)
    except (duckdb.IOException, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {output}: {exc}") from None
    rows = ledger.query(f'SELECT count(*) FROM "{table}"')[0][0]
    return ExportResult(table, fmt, output, int(rows))


def audit_log(ledger: Ledger, limit: int) -> list[dict[str, Any]]:
    """The latest control events, newest first."""
    return ledger.rows(
        "SELECT seq, timestamp, kind, actor, subject, details FROM control_events "
        "ORDER BY seq DESC LIMIT ?",
        [limit],
    )
