"""One DuckDB instance per process; a ledger file is attached for one visit and detached after.

Creating a DuckDB database instance (`duckdb.connect`) costs 15-40 ms whatever the file, and
a command visits its ledger several times (read, check and record the intent, record the
outcome). ATTACH and DETACH on an instance kept for the process cost 1-5 ms, and DETACH
closes the file and its DuckDB lock just as closing a connection does, so another process
can open the ledger between our visits. Each visit gets its own cursor (its own
connection: its own `USE`, temp views, registered relations and transaction) and its own
alias, so two threads visiting two ledgers never share either.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

_lock = threading.Lock()
_instance: duckdb.DuckDBPyConnection | None = None
_aliases = itertools.count(1)


def _shared() -> duckdb.DuckDBPyConnection:
    global _instance
    with _lock:
        if _instance is None:
            import duckdb

            _instance = duckdb.connect(":memory:")
        return _instance


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
