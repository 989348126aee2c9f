"""One DuckDB instance per process: visits attach and detach the file, and what a visit
remembers of the file is used only while the file is exactly as that visit left it."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from ccxtkit.errors import LedgerIntegrityError
from ccxtkit.ledger.store import open_ledger
from ccxtkit.ledger.verify import verify_chain

APPEND_ELSEWHERE = """
import sys
from pathlib import Path
from ccxtkit.ledger.store import open_ledger
with open_ledger(Path(sys.argv[1])) as ledger:
    for i in range(3):
        ledger.record_event("test.elsewhere", {"i": i})
print(ledger.head().seq)
"""


def _event(ledger, n: int) -> int:
    return ledger.record_event("test.here", {"n": n}, timestamp=datetime.now(UTC))


def test_between_visits_the_file_is_free_for_other_processes(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    with open_ledger(path) as ledger:
        first = _event(ledger, 1)
    # Our process keeps its DuckDB instance; another process must open the file read-write.
    done = subprocess.run(
        [sys.executable, "-c", APPEND_ELSEWHERE, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == first + 3
    # And our next visit sees their rows: it chains after them, never reusing a seq.
    with open_ledger(path) as ledger:
        assert _event(ledger, 2) == first + 4
    with open_ledger(path, read_only=True) as ledger:
        assert verify_chain(ledger).ok
        seqs = [r[0] for r in ledger.query("SELECT seq FROM control_events ORDER BY seq")]
    assert seqs == sorted(set(seqs))


def test_an_edit_after_our_visit_is_caught_by_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    with open_ledger(path) as ledger:
        seq = _event(ledger, 1)
    # Another DuckDB instance (a hand edit) changes the head row but not its hash.
    con = duckdb.connect(str(path))
    con.execute("UPDATE control_events SET details = '{\"n\": 666}' WHERE seq = ?", [seq])
    con.close()
    with pytest.raises(LedgerIntegrityError, match="last row"), open_ledger(path) as ledger:
        _event(ledger, 2)
    with pytest.raises(LedgerIntegrityError, match="last row"), open_ledger(path) as ledger:
        _event(ledger, 3)  # a refused visit left nothing behind that vouches for the file


def test_two_threads_visit_two_ledgers_at_once(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def work(path: Path) -> None:
        try:
            for n in range(20):
                with open_ledger(path) as ledger:
                    if n == 0:
                        barrier.wait(timeout=30)  # both files attached at the same moment
                    _event(ledger, n)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    paths = [tmp_path / "a.duckdb", tmp_path / "b.duckdb"]
    threads = [threading.Thread(target=work, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for path in paths:
        with open_ledger(path, read_only=True) as ledger:
            assert verify_chain(ledger).ok
            assert (
                ledger.query("SELECT count(*) FROM control_events WHERE kind = 'test.here'")[0][0]
                == 20
            )


def test_visits_run_duckdb_on_one_thread_and_whole_ledger_scans_on_every_core(
    tmp_path: Path,
) -> None:
    from ccxtkit.ledger.instance import all_cores, cores

    path = tmp_path / "l.duckdb"
    with open_ledger(path) as ledger:
        _event(ledger, 1)

        def threads() -> int:
            return int(ledger.query("SELECT current_setting('threads')")[0][0])

        assert threads() == 1
        with all_cores(ledger.con):
            assert threads() == cores()
            with all_cores(ledger.con):  # overlapping callers: the last one out restores it
                pass
            assert threads() == cores()
        assert threads() == 1
        assert verify_chain(ledger).ok
        assert threads() == 1
