"""The DuckDB ledger file: one writer at a time, append-only, every row hash-chained."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import LedgerBusyError, LedgerIntegrityError, VhcError
from ..filelock import flocked
from ..money import to_ledger_decimal
from . import outbox
from .catalog import (
    FileColumn,
    chained_tables,
    check_catalog_unless_unchanged,
    check_known_shape,
    disk_state,
    mark_written_by_us,
)
from .chain import GENESIS_HASH, canonical, canonical_of, now_utc, row_hash, utc_naive
from .instance import attach, detach
from .names import VIEWS, create_views
from .schema import MIGRATIONS, TABLES, all_columns

if TYPE_CHECKING:
    import duckdb

T = TypeVar("T")

#: Above this many rows an append goes through Arrow instead of VALUES statements.
_BULK_ROWS = 500
#: Below that, rows go in multi-row VALUES statements of at most this many rows.
_VALUES_ROWS = 64


@dataclass(frozen=True)
class Head:
    """The last row of the chain: what a digest records."""

    seq: int
    hash: str


@dataclass
class Memo:
    """Figures read from the file, each with the tables it read and their write counts then.

    Every write goes through `Ledger.append`, which counts it per table, so a figure stays
    true while none of its tables has been written to; a rollback forgets every figure.
    """

    figures: dict[str, tuple[tuple[tuple[str, int], ...], Any]] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=dict)

    def wrote(self, table: str) -> None:
        """Count a write to `table` (its figures are stale from now on)."""
        self.writes[table] = self.writes.get(table, 0) + 1

    def forget(self) -> None:
        """Drop every figure, in place: the last visit's record of them holds this object."""
        self.figures.clear()


class Ledger:
    """An open ledger. Use `open_ledger`; every write goes through `append`."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        path: Path,
        read_only: bool = False,
        tables: dict[str, tuple[FileColumn, ...]] | None = None,
    ) -> None:
        self.con = con
        self.path = path
        self.read_only = read_only
        #: The chained tables as the file declares them (not as this vhc would): see catalog.py.
        self.tables: dict[str, tuple[FileColumn, ...]] = {}
        self._head: Head | None = None
        self._head_checked = False
        self._in_tx = False
        self._views_made = False
        #: The file's applied migrations (set when the file is opened).
        self.applied: tuple[str, ...] = ()
        #: Readers' figures of this file (`remembered`); carried to our next visit (`_open`).
        self.memo = Memo()
        if tables is None:
            self.load_tables()
        else:
            self.tables = tables

    def load_tables(self) -> None:
        """Re-read which chained tables the file holds (after a migration created some)."""
        self.tables = chained_tables(self.con, self.path)
        self._head = None
        self.memo.forget()

    def remembered(self, name: str, tables: Sequence[str], compute: Callable[[], T]) -> T:
        """`compute()`, or what it gave earlier (in this visit, or our last visit that left the
        file as it is now) while none of `tables`, every table it reads, was written to since.

        For figures asked for several times per order; the caller must not mutate the value.
        """
        stamp = tuple((t, self.memo.writes.get(t, 0)) for t in tables)
        found = self.memo.figures.get(name)
        if found is not None and found[0] == stamp:
            return found[1]  # type: ignore[no-any-return]
        value = compute()
        self.memo.figures[name] = (stamp, value)
        return value

    def kinds(self, table: str) -> list[tuple[str, str]]:
        """(column, kind) of a chained table's data columns, as stored in the file."""
        return [(c.name, c.kind) for c in self.tables[table]]

    # -- reading -------------------------------------------------------------------------
    def head(self) -> Head:
        """The chain's last (seq, hash) over every chained table in the file (genesis if empty)."""
        if self._head is None:
            names = list(self.tables)
            if not names:
                self._head = Head(0, GENESIS_HASH)
                return self._head
            # max() per table is answered from column statistics only as a UNION ALL of plain
            # aggregates (about 1 ms on a million rows); scalar subqueries, or an ORDER BY over
            # the union, scan every row (20-60 ms). The table's position says which row is whose.
            # fetchall, not fetchone: DuckDB 2 refuses register() (the bulk append) while a
            # result is left unfinished on the connection.
            maxes = self.con.execute(
                " UNION ALL ".join(
                    f'SELECT {i} AS t, max(seq) AS m FROM "{t}"' for i, t in enumerate(names)
                )
            ).fetchall()
            found = [(int(m), names[i]) for i, m in maxes if m is not None]
            if not found:
                self._head = Head(0, GENESIS_HASH)
            else:
                seq, table = max(found)
                rows = self.con.execute(
                    f'SELECT row_hash FROM "{table}" WHERE seq = ?', [seq]
                ).fetchall()
                self._head = Head(seq, str(rows[0][0]))
        return self._head

    def checked_head(self) -> Head | None:
        """The head, if this visit checked it against its row (or appended after that)."""
        return self._head if self._head_checked else None

    def trust_head(self) -> None:
        """The head is the one our last visit checked and left: no need to check it again."""
        self._head_checked = True

    def set_head(self, head: Head) -> None:
        """After a bulk insert that chained its own rows (ledger.fast_import)."""
        self._head = head
        self.memo.forget()

    def head_for_append(self) -> Head:
        """The head to chain onto, after checking once that the head row is what it claims.

        Appending to an edited chain would bury the edit under valid-looking rows: the head
        row's hash is recomputed from its content and its link to the row before is checked.
        """
        if self.read_only:
            raise VhcError("internal: the ledger was opened read-only")
        head = self.head()
        if not self._head_checked:
            problem = self._head_problem(head)
            if problem:
                raise LedgerIntegrityError(
                    f"the ledger {self.path} is broken at its last row (seq {head.seq}): "
                    f"{problem}; nothing was written. Run `vhc ledger verify` and restore "
                    "the ledger from a backup"
                )
            self._head_checked = True
        return head

    def _head_problem(self, head: Head) -> str | None:
        if head.seq == 0:
            return None
        names = list(self.tables)
        # One UNION ALL over every table finds who holds the last two seqs (each table's part
        # is pruned by its seq zone maps); only the head row is read whole, to rehash it.
        holders = self.con.execute(
            " UNION ALL ".join(
                f'SELECT {i} AS t, seq, row_hash FROM "{t}" WHERE seq IN (?, ?)'
                for i, t in enumerate(names)
            ),
            [head.seq, head.seq - 1] * len(names),
        ).fetchall()
        last = [(names[i], h) for i, seq, h in holders if seq == head.seq]
        before = [h for _i, seq, h in holders if seq == head.seq - 1]
        if len(last) != 1 or (head.seq > 1 and len(before) != 1):
            return "a sequence number is used twice or missing"
        table = last[0][0]
        cur = self.con.execute(f'SELECT * FROM "{table}" WHERE seq = ?', [head.seq])
        columns = [d[0] for d in cur.description or []]
        row = dict(zip(columns, cur.fetchall()[0], strict=True))
        if row_hash(canonical_of(table, self.kinds(table), row)) != row["row_hash"]:
            return f"its contents (table {table}) do not match its hash"
        expected = before[0] if head.seq > 1 else GENESIS_HASH
        if row["prev_hash"] != expected:
            return "it does not link to the row before it"
        return None

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query and return all rows."""
        self._views_for(sql)
        return self.con.execute(sql, params or []).fetchall()

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Run a read query and return rows as dicts keyed by column name."""
        self._views_for(sql)
        cur = self.con.execute(sql, params or [])
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def _views_for(self, sql: str) -> None:
        # The TEMP views (ledger.names) are made in the visit whose query first names one:
        # most visits (an order's three, the every-minute check) use none, 1.5 ms each saved.
        if not self._views_made and any(name in sql for name in VIEWS):
            create_views(self.con, set(self.tables))
            self._views_made = True

    # -- writing -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Ledger]:
        """Group appends so that all of them land or none do."""
        if self._in_tx:
            yield self
            return
        self.con.execute("BEGIN TRANSACTION")
        self._in_tx = True
        saved_head = self._head
        try:
            yield self
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            self._head = saved_head
            self.memo.forget()  # figures read inside the transaction saw its rows
            raise
        finally:
            self._in_tx = False

    def append(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        recorded_at: datetime | None = None,
    ) -> list[int]:
        """Append rows to a chained table; returns their sequence numbers."""
        if table not in TABLES:
            raise VhcError(f"internal: {table!r} is not a ledger table")
        if not rows:
            return []
        columns = TABLES[table]
        stamp = utc_naive(recorded_at) if recorded_at else now_utc()
        head = self.head_for_append()
        seq, prev = head.seq, head.hash
        records: list[tuple[Any, ...]] = []
        for raw in rows:
            unknown = set(raw) - {c.name for c in columns}
            if unknown:
                raise VhcError(f"internal: unknown column(s) {sorted(unknown)} for {table}")
            row = {c.name: _normalise(c.kind, c.name, raw.get(c.name)) for c in columns}
            for c in columns:
                if c.required and row[c.name] is None:
                    raise VhcError(f"internal: {table}.{c.name} is required")
            seq += 1
            digest = row_hash(canonical(table, seq, prev, stamp, row))
            records.append((seq, prev, digest, stamp, *row.values()))
            prev = digest
        with self.transaction():
            self.memo.wrote(table)
            self._insert(table, records)
        self._head = Head(seq, prev)
        return list(range(head.seq + 1, seq + 1))

    def _insert(self, table: str, records: list[tuple[Any, ...]]) -> None:
        names = all_columns(table)
        quoted = ", ".join(f'"{n}"' for n in names)
        if len(records) < _BULK_ROWS:
            # One statement per chunk: DuckDB's executemany runs one statement per row, 3-5x
            # slower than a multi-row VALUES (measured: 16 rows 31 ms against 6 ms).
            marks = "(" + ", ".join("?" for _ in names) + ")"
            for start in range(0, len(records), _VALUES_ROWS):
                chunk = records[start : start + _VALUES_ROWS]
                self.con.execute(
                    f'INSERT INTO "{table}" ({quoted}) VALUES ' + ", ".join([marks] * len(chunk)),
                    [value for record in chunk for value in record],
                )
            return
        import pyarrow as pa

        columns = list(zip(*records, strict=True))
        arrow_types = _arrow_types(table)
        batch = pa.table(
            {
                n: pa.array(col, type=t)
                for n, col, t in zip(names, columns, arrow_types, strict=True)
            }
        )
        self.con.register("_vhc_bulk", batch)
        try:
            self.con.execute(f'INSERT INTO "{table}" ({quoted}) SELECT {quoted} FROM _vhc_bulk')
        finally:
            self.con.unregister("_vhc_bulk")

    def record_event(
        self,
        kind: str,
        details: Mapping[str, Any] | None = None,
        actor: str | None = None,
        subject: str | None = None,
        timestamp: datetime | None = None,
    ) -> int:
        """Append one control event (the audit trail) and return its seq."""
        row = {
            "timestamp": timestamp or now_utc(),
            "kind": kind,
            "actor": actor or default_actor(),
            "subject": subject,
            "details": json.dumps(details or {}, sort_keys=True, default=str),
        }
        return self.append("control_events", [row])[0]


def _normalise(kind: str, name: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "decimal":
        return to_ledger_decimal(value, name)
    if kind == "timestamp":
        if not isinstance(value, datetime):
            raise VhcError(f"internal: {name} must be a datetime, got {type(value).__name__}")
        return utc_naive(value)
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return str(value)


def _arrow_types(table: str) -> list[Any]:
    import pyarrow as pa

    by_kind = {
        "text": pa.string(),
        "decimal": pa.decimal128(38, 18),
        "timestamp": pa.timestamp("us"),
        "int": pa.int64(),
        "bool": pa.bool_(),
    }
    chain = [pa.int64(), pa.string(), pa.string(), pa.timestamp("us")]
    return chain + [by_kind[c.kind] for c in TABLES[table]]


def default_actor() -> str:
    """Who is acting: the OS user name (recorded in control events)."""
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def applied_migrations(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Names recorded in the file's `schema_migrations` (none for a new file)."""
    exists = con.execute(
        "SELECT count(*) FROM system.main.duckdb_tables() "
        "WHERE table_name = 'schema_migrations' AND schema_name = 'main' "
        "AND database_name = current_database()"
    ).fetchall()[0][0]
    if not exists:
        return []
    return [str(r[0]) for r in con.execute("SELECT name FROM schema_migrations").fetchall()]


def _needed_version(ledger: Ledger, unknown: list[str]) -> str:
    """The vhc version the unknown migrations' own chained events say they need."""
    if "control_events" not in ledger.tables:
        return "a newer vhc"
    versions = []
    for (details,) in ledger.query(
        "SELECT details FROM control_events WHERE kind = 'ledger.migration'"
    ):
        try:
            data = json.loads(details)
        except (TypeError, ValueError):
            continue
        if isinstance(data, dict) and data.get("migration") in unknown and data.get("since"):
            versions.append(str(data["since"]))
    if not versions:
        return "a newer vhc"

    def key(v: str) -> tuple[int, ...]:
        return tuple(int(p) if p.isdigit() else 0 for p in v.split("."))

    return f"vhc {max(versions, key=key)} or later"


def _check_migrations(ledger: Ledger, applied: list[str]) -> None:
    known = {m.name for m in MIGRATIONS}
    unknown = sorted(set(applied) - known)
    if unknown:
        raise LedgerIntegrityError(
            f"the ledger {ledger.path} was written by a newer vhc (migration "
            f"{', '.join(unknown)}); it needs {_needed_version(ledger, unknown)} to be "
            "written to: upgrade vhc (reading and `vhc ledger verify` still work)"
        )


def _migrate(ledger: Ledger, applied: list[str]) -> None:
    """Apply the migrations this file lacks, each with its chained `ledger.migration` event."""
    from .. import __version__

    con = ledger.con
    pending = [m for m in MIGRATIONS if m.name not in applied]
    if not pending:
        return
    with ledger.transaction():
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)"
        )
        for migration in pending:
            for sql in migration.statements:
                con.execute(sql)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?)", [migration.name, now_utc()])
            ledger.load_tables()
            check_known_shape(ledger.tables, ledger.path)
            ledger.record_event(
                "ledger.migration",
                {"migration": migration.name, "since": migration.since, "vhc": __version__},
                subject=migration.name,
            )


@contextmanager
def ledger_lock(path: Path, wait_seconds: float) -> Iterator[None]:
    """Hold the ledger's lock file; wait up to `wait_seconds`, then raise LedgerBusyError.

    While it waits it holds a shared flock on `<ledger>.want`: a process keeping the ledger
    open between its visits (`ledger.keeper`, in `vhc serve`) sees that and lets go.
    """

    def busy() -> LedgerBusyError:
        return LedgerBusyError(
            f"the ledger {path} is in use by another vhc process "
            f"(waited {wait_seconds:g} s); try again when it has finished, "
            "or raise ledger.lock_wait_seconds"
        )

    lock_path = path.with_name(path.name + ".lock")
    with ExitStack() as waiting:

        def announce() -> None:
            waiting.enter_context(flocked(want_path(path), shared=True))

        with flocked(lock_path, wait_seconds, busy, poll_seconds=0.05, on_wait=announce) as fd:
            waiting.close()  # the lock is ours: no longer waiting
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield


def want_path(path: Path) -> Path:
    """The file a process waiting for the ledger's lock holds a shared flock on."""
    return path.with_name(path.name + ".want")


@contextmanager
def open_ledger(
    path: Path, wait_seconds: float | Decimal = 30, read_only: bool = False
) -> Iterator[Ledger]:
    """Lock, open (creating and migrating if needed), yield a Ledger, and close.

    Hold it briefly: talk to exchanges first, then open the ledger, write, and leave. In a
    process that keeps this ledger open (`ledger.keeper`), a visit reuses the open file.
    """
    from . import keeper

    if keeper.keeps(path):
        with keeper.visit(path, float(wait_seconds), read_only) as kept:
            yield kept
        return
    with visit_file(path, float(wait_seconds), read_only) as ledger:
        yield ledger


@contextmanager
def visit_file(path: Path, wait_seconds: float, read_only: bool) -> Iterator[Ledger]:
    """One visit that opens and closes the file: lock, open, drain the outbox, close."""
    with ledger_lock(path, wait_seconds):
        ledger = open_file(path, read_only)
        clean = False  # set once the caller's work with the file ended without an exception
        try:
            if not read_only:
                outbox.drain(ledger)
            yield ledger
            clean = True
        finally:
            close_file(ledger, clean)


def open_file(path: Path, read_only: bool) -> Ledger:
    """Attach the file and ready it (checks, migrations, views); the caller holds the lock."""
    import duckdb

    new = not path.exists()
    if read_only and new:
        raise VhcError(f"no ledger at {path} yet: run `vhc init` or record something first")
    try:
        con = attach(path, read_only)
    except duckdb.IOException as exc:
        # Our flock is held, so a DuckDB lock conflict is a non-vhc process (busy, exit 7);
        # any other I/O error means the file is not a readable ledger (exit 6).
        if "lock" in str(exc).lower():
            raise LedgerBusyError(f"cannot open the ledger {path}: {exc}") from None
        raise LedgerIntegrityError(f"the ledger {path} cannot be opened: {exc}") from None
    except duckdb.Error as exc:
        raise LedgerIntegrityError(f"the ledger {path} cannot be opened: {exc}") from None
    try:
        if new:
            os.chmod(path, 0o600)
        try:
            # First, before any other query: nothing in the file may redefine what SQL means.
            check_catalog_unless_unchanged(con, path)
            ledger, applied = _open(con, path, read_only)
            if not read_only:
                _check_migrations(ledger, applied)
                check_known_shape(ledger.tables, path)
                _migrate(ledger, applied)
                if len(applied) < len(MIGRATIONS):
                    applied = applied_migrations(con)  # this visit migrated the file
                missing = [t for t in TABLES if t not in ledger.tables]
                if missing:
                    raise LedgerIntegrityError(
                        f"the ledger {path} lacks the table(s) {', '.join(missing)}: "
                        "it was edited; restore it from a backup"
                    )
            ledger.applied = tuple(applied)
        except duckdb.Error as exc:
            raise LedgerIntegrityError(
                f"the ledger {path} is damaged ({exc}); restore it from a backup"
            ) from None
    except BaseException:
        detach(con)
        raise
    return ledger


def close_file(ledger: Ledger, clean: bool) -> None:
    """Detach (DuckDB checkpoints); `clean`: only vhc's own work ran on it (under our lock)."""
    left = Known(ledger.tables, ledger.applied, ledger.checked_head(), ledger.memo)
    detach(ledger.con)
    if not ledger.read_only and clean:
        path = ledger.path
        mark_written_by_us(path)  # still under our lock: our own writes changed the file
        _KNOWN[str(path.resolve())] = (disk_state(path), left)


@dataclass(frozen=True)
class Known:
    """What this process knew of a ledger file when its last writing visit closed it."""

    tables: dict[str, tuple[FileColumn, ...]]
    applied: tuple[str, ...]
    head: Head | None  # checked against its row's content in that visit, or None
    memo: Memo  # the figures that visit read or was handed


#: Per file: its disk state (catalog.disk_state) when our last writing visit closed it.
_KNOWN: dict[str, tuple[tuple[object, ...], Known]] = {}


def _open(con: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> tuple[Ledger, list[str]]:
    """The Ledger and its applied migrations, from what our last visit left when still true.

    The file must be as that visit closed it (identity, size, mtime of file and WAL) and its
    head the same: every write appends a chained row, so another writer, however quick,
    moves the head. Otherwise both are read from the file again.
    """
    entry = _KNOWN.get(str(path.resolve()))
    if entry is not None and entry[0] == disk_state(path):
        known = entry[1]
        ledger = Ledger(con, path, read_only=read_only, tables=known.tables)
        if known.head is not None and ledger.head() == known.head:
            ledger.trust_head()
            ledger.memo = known.memo  # nobody wrote since: its figures are still true
            return ledger, list(known.applied)
        ledger.load_tables()
    else:
        ledger = Ledger(con, path, read_only=read_only)
    return ledger, applied_migrations(con)
