"""One DuckDB instance per process; a ledger file is attached for one visit and detached after.

Creating a DuckDB database instance (`duckdb.connect`) costs 15-40 ms whatever the file, and
a command visits its ledger several times (read, check and record the intent, record the
outcome). ATTACH and DETACH on an instance kept for the process cost 1-5 ms, and DETACH
closes the file and its DuckDB lock just as closing a connection does, so another process
can open the ledger between our visits. Each visit gets its own cursor (its own
connection: its own `USE`, temp views, registered relations and transaction) and its own
alias, so two threads visiting two ledgers never share either.

The instance runs DuckDB on one thread. A visit's queries are small (an order's thirty take
1-5 ms each over a million-trade ledger) and a second thread only adds the cost of waking it:
a third of each query's time, measured. Work that scans the whole ledger (an import, verify)
asks for every core while it runs (`all_cores`).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

_lock = threading.Lock()
_instance: duckdb.DuckDBPyConnection | None = None
_aliases = itertools.count(1)
_wide = 0  # visits inside all_cores() just now


def _shared() -> duckdb.DuckDBPyConnection:
    global _instance
    with _lock:
        if _instance is None:
            import duckdb

            _instance = duckdb.connect(":memory:", config={"threads": 1})
        return _instance


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextmanager
def all_cores(con: duckdb.DuckDBPyConnection, threads: int | None = None) -> Iterator[None]:
    """DuckDB on `threads` (default every core) while a large scan runs; one thread after.

    The setting is the instance's, shared by every thread of the process: the first of
    overlapping callers sets it and the last one out restores it.
    """
    global _wide
    with _lock:
        _wide += 1
        if _wide == 1:
            con.execute(f"SET threads = {max(1, threads or cores())}")
    try:
        yield
    finally:
        with _lock:
            _wide -= 1
            if _wide == 0:
                con.execute("SET threads = 1")


def attach(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    """A connection whose default catalog is the ledger file at `path` (created if missing).

    Raises duckdb's own errors (a lock held by another process, a damaged file) for the
    caller to translate.
    """
    con = _shared().cursor()
    alias = f"vhc_ledger_{next(_aliases)}"
    quoted = str(path).replace("'", "''")
    try:
        con.execute(f"ATTACH '{quoted}' AS {alias}" + (" (READ_ONLY)" if read_only else ""))
        con.execute(f"USE {alias}")
    except BaseException:
        con.close()
        raise
    return con


def detach(con: duckdb.DuckDBPyConnection) -> None:
    """Close the visit: roll back what was left open, detach the file, drop the cursor."""
    import duckdb

    try:
        alias = str(con.execute("SELECT current_database()").fetchall()[0][0])
        try:
            con.execute("ROLLBACK")  # only if a transaction was left open; else an error
        except duckdb.Error:
            pass
        con.execute("USE memory")
        con.execute(f"DETACH {alias}")
    except duckdb.Error:
        # Left attached, the file would stay locked for this process's life: drop the instance.
        _reset()
        raise
    finally:
        con.close()


def _reset() -> None:
    global _instance
    with _lock:
        if _instance is not None:
            _instance.close()
            _instance = None
