"""What a ledger file holds, read from the file itself, and refusing what vhc never puts there.

A macro, view, sequence or type stored in the file could change what vhc's own queries mean
(a macro named `sha256` shadows DuckDB's builtin). vhc stores none, so any of them is refused
before the first other query. The catalog is read only through `system.main.*`, which the
file cannot shadow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LedgerIntegrityError
from .schema import CHAIN_COLUMNS, SQL_TYPES, TABLES

if TYPE_CHECKING:
    import duckdb

_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT"}
_INT_TYPES |= {"UINTEGER", "UBIGINT"}


@dataclass(frozen=True)
class FileColumn:
    """A data column of a chained table as the file declares it."""

    name: str
    kind: str  # a key of schema.SQL_TYPES, or "decimal_any" (a DECIMAL of another scale)
    sql_type: str


def kind_of(sql_type: str) -> str | None:
    """The canonical-encoding kind of a DuckDB type, or None when the format has no text for it."""
    t = sql_type.upper()
    if t == "VARCHAR":
        return "text"
    if t == "DECIMAL(38,18)":
        return "decimal"
    if t.startswith("DECIMAL"):
        return "decimal_any"  # same text (18 fraction digits), but cast to DECIMAL(38,18) first
    if t == "TIMESTAMP":
        return "timestamp"
    if t == "BOOLEAN":
        return "bool"
    if t in _INT_TYPES:
        return "int"
    return None


def database_name(con: duckdb.DuckDBPyConnection) -> str:
    """The catalog name DuckDB gave the ledger file."""
    # The file is the connection's default catalog (ledger.instance attaches it and USEs it).
    return str(con.execute("SELECT current_database()").fetchall()[0][0])


def check_catalog(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a file holding any macro, function, view, sequence or type vhc did not create."""
    db = database_name(con)
    found: list[str] = []
    queries = {
        "macro": "SELECT function_name FROM system.main.duckdb_functions() "
        "WHERE NOT internal AND database_name = ?",
        "view": "SELECT view_name FROM system.main.duckdb_views() "
        "WHERE NOT internal AND NOT temporary AND database_name = ?",
        "sequence": "SELECT sequence_name FROM system.main.duckdb_sequences() "
        "WHERE database_name = ?",
        "type": "SELECT type_name FROM system.main.duckdb_types() "
        "WHERE NOT internal AND database_name = ?",
    }
    for what, sql in queries.items():
        found += [f"{what} {r[0]}" for r in con.execute(sql, [db]).fetchall()]
    if found:
        raise LedgerIntegrityError(
            f"the ledger {path} contains objects vhc never creates ({', '.join(sorted(found))}): "
            "someone edited the file; restore it from a backup"
        )


#: Per file, its on-disk state (file and WAL) when this process last found the catalog clean.
_CLEAN: dict[str, tuple[object, ...]] = {}


def disk_state(path: Path) -> tuple[object, ...]:
    """Identity, size and mtime of the file and its WAL: any other writer changes one of them."""
    state: list[object] = []
    for file in (path, path.with_name(path.name + ".wal")):
        try:
            st = file.stat()
        except FileNotFoundError:
            state.append(None)
            continue
        state.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(state)


def check_catalog_unless_unchanged(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """`check_catalog`, skipped while the file is as this process left it after a clean check."""
    key = str(path.resolve())
    if _CLEAN.get(key) == disk_state(path):
        return
    check_catalog(con, path)
    _CLEAN[key] = disk_state(path)


def mark_written_by_us(path: Path) -> None:
    """After our own connection (catalog checked, our lock held) closed: the file is still clean.

    Only vhc's own statements ran on it while we held the lock; a later writer changes the
    disk state, and the next open checks again.
    """
    _CLEAN[str(path.resolve())] = disk_state(path)


def chained_tables(con: duckdb.DuckDBPyConnection, path: Path) -> dict[str, tuple[FileColumn, ...]]:
    """Every table of the file whose first columns are the chain columns, with its data columns."""
    db = database_name(con)
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM system.main.duckdb_columns() "
        "WHERE database_name = ? AND schema_name = 'main' ORDER BY table_name, column_index",
        [db],
    ).fetchall()
    by_table: dict[str, list[tuple[str, str]]] = {}
    for table, column, sql_type in rows:
        by_table.setdefault(str(table), []).append((str(column), str(sql_type)))
    out: dict[str, tuple[FileColumn, ...]] = {}
    for table, cols in by_table.items():
        if tuple(c for c, _ in cols[: len(CHAIN_COLUMNS)]) != CHAIN_COLUMNS:
            continue
        data = []
        for name, sql_type in cols[len(CHAIN_COLUMNS) :]:
            kind = kind_of(sql_type)
            if kind is None:
                raise LedgerIntegrityError(
                    f"the ledger {path}: column {table}.{name} has type {sql_type}, which this "
                    "vhc cannot hash; it was written by a newer vhc: upgrade vhc"
                )
            data.append(FileColumn(name, kind, sql_type))
        out[table] = tuple(data)
    return out


def check_known_shape(tables: dict[str, tuple[FileColumn, ...]], path: Path) -> None:
    """Before writing: the file's chained tables must be exactly the ones this vhc writes."""
    for table, cols in tables.items():
        if table not in TABLES:
            raise LedgerIntegrityError(
                f"the ledger {path} has a chained table {table!r} this vhc does not know: it was "
                "written by a newer vhc; upgrade vhc before writing to it"
            )
        want = [(c.name, SQL_TYPES[c.kind]) for c in TABLES[table]]
        have = [(c.name, c.sql_type) for c in cols]
        if want != have:
            raise LedgerIntegrityError(
                f"the ledger {path}: table {table} has columns this vhc does not expect "
                f"({', '.join(n for n, _ in have)}); upgrade vhc or restore the file from a backup"
            )
