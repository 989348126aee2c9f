"""Verify split over processes by seq range reports exactly what one process reports: the first
bad row overall (not the first a worker found), links across range boundaries included, and
each worker refuses a tampered catalog on its own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from ccxtkit.cli.app import main
from ccxtkit.ledger import verify
from ccxtkit.ledger.chain import canonical_of, row_hash
from ccxtkit.ledger.store import open_ledger
from ccxtkit.ledger.trades_csv import import_trades
from ccxtkit.workspace import init_workspace

HEADER = "timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id\n"


def write_trades(path: Path, rows: int) -> None:
    t0 = datetime(2024, 1, 1)
    with path.open("w", encoding="utf-8") as out:
        out.write(HEADER)
        for i in range(rows):
            ts = (t0 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.write(f"{ts},kraken,BTC/USD,buy,0.{i % 997 + 1:03d},{20000 + i},0.25,USD,T-{i}\n")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger of a few thousand trades (plus the migrations' control events)."""
    folder = tmp_path_factory.mktemp("parallel")
    data = folder / "t.csv"
    write_trades(data, 3000)
    path = folder / "pristine.duckdb"
    with open_ledger(path) as ledger:
        import_trades(ledger, data)
    return path


@pytest.fixture
def ledger_path(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "l.duckdb"
    copy.write_bytes(pristine.read_bytes())
    return copy


def head_seq(path: Path) -> int:
    with open_ledger(path, read_only=True) as ledger:
        return ledger.head().seq


def boundary(path: Path, workers: int, index: int = 0) -> int:
    """The last seq of range `index` when verify splits the ledger over `workers` ranges."""
    hi = verify._ranges(head_seq(path), workers)[index][1]
    assert hi is not None
    return hi


def worker(path: Path, *ranges: str) -> list[dict[str, object]]:
    """Run a verify worker as verify runs it, giving it these "lo hi" ranges: its JSON lines."""
    proc = subprocess.run(
        [sys.executable, "-c", verify._WORKER, str(path)],
        input="".join(f"{r}\n" for r in ranges),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def run(path: Path, workers: int) -> verify.VerifyResult:
    with open_ledger(path, read_only=True) as ledger:
        return verify.verify_chain(ledger, workers=workers)


def edit(path: Path, *statements: str) -> None:
    con = duckdb.connect(str(path))
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.close()


def rehash(path: Path, seq: int, change: Callable[[dict[str, object]], None]) -> str:
    """Change a trades row and give it the hash of its new content (a forger's edit)."""
    with open_ledger(path, read_only=True) as ledger:
        kinds = ledger.kinds("trades")
        row = ledger.rows("SELECT * FROM trades WHERE seq = ?", [seq])[0]
    change(row)
    digest = row_hash(canonical_of("trades", kinds, row))
    edit(
        path,
        f"UPDATE trades SET prev_hash = '{row['prev_hash']}', notes = "
        f"{'NULL' if row['notes'] is None else repr(row['notes'])}, row_hash = '{digest}' "
        f"WHERE seq = {seq}",
    )
    return digest


def test_intact_ledger_verifies_the_same_over_one_two_and_three_processes(
    ledger_path: Path,
) -> None:
    one, two, three = (run(ledger_path, n) for n in (1, 2, 3))
    assert one.ok and two.ok and three.ok
    assert one.rows == two.rows == three.rows == head_seq(ledger_path) > 3000


def test_edit_in_the_second_half_is_reported_with_its_seq(ledger_path: Path) -> None:
    """The edited row lies in a worker's range, not the parent's."""
    seq = boundary(ledger_path, 2) + 700
    edit(ledger_path, f"UPDATE trades SET notes = 'edited' WHERE seq = {seq}")
    for workers in (1, 2, 3):
        problem = run(ledger_path, workers).problem
        assert problem is not None and problem.seq == seq and problem.table == "trades"
        assert "modified" in problem.reason


def test_the_first_bad_row_overall_wins_over_a_workers_earlier_finding(
    ledger_path: Path,
) -> None:
    """Edits in the last and the middle range: the lower seq is named whichever ends first."""
    low = boundary(ledger_path, 3, 0) + 5
    high = boundary(ledger_path, 3, 1) + 5
    edit(ledger_path, f"UPDATE trades SET notes = 'x' WHERE seq IN ({low}, {high})")
    for workers in (1, 2, 3):
        problem = run(ledger_path, workers).problem
        assert problem is not None and problem.seq == low, workers


def test_broken_link_exactly_at_the_range_boundary_is_caught(ledger_path: Path) -> None:
    """The first row of the worker's range, rehashed to match content, links to a forged hash."""
    cut = boundary(ledger_path, 2)

    def relink(row: dict[str, object]) -> None:
        row["prev_hash"] = "f" * 64

    rehash(ledger_path, cut + 1, relink)
    for workers in (1, 2):
        problem = run(ledger_path, workers).problem
        assert problem is not None and problem.seq == cut + 1, workers
        assert "does not link" in problem.reason


def test_rehashed_last_row_of_the_first_range_breaks_the_next_ranges_link(
    ledger_path: Path,
) -> None:
    """Every row of the first range checks out; only the boundary link shows the rewrite."""
    cut = boundary(ledger_path, 2)

    def note(row: dict[str, object]) -> None:
        row["notes"] = "rewritten"

    rehash(ledger_path, cut, note)
    for workers in (1, 2):
        problem = run(ledger_path, workers).problem
        assert problem is not None and problem.seq == cut + 1, workers
        assert "does not link" in problem.reason


@pytest.mark.parametrize("offset", [0, 1])
def test_deleted_row_at_the_boundary_is_named(ledger_path: Path, offset: int) -> None:
    cut = boundary(ledger_path, 2)
    edit(ledger_path, f"DELETE FROM trades WHERE seq = {cut + offset}")
    one, two = run(ledger_path, 1).problem, run(ledger_path, 2).problem
    assert one is not None and one == two
    assert one.seq == cut + offset + 1 and "deleted" in one.reason


def test_a_worker_refuses_a_tampered_catalog_itself(ledger_path: Path) -> None:
    """The worker process runs the catalog refusal before any other query of its own."""
    edit(ledger_path, "CREATE MACRO sha256(x) AS NULL")
    lines = worker(ledger_path, "10 -")
    assert len(lines) == 1 and "macro sha256" in lines[0]["refused"]


@pytest.mark.slow
def test_cli_verify_of_a_large_ledger_names_an_edit_in_the_last_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Above PARALLEL_ROWS (split over processes when there are 4+ cores): same output and exit."""
    home = tmp_path / "ws"
    init_workspace(home)
    data = tmp_path / "big.csv"
    write_trades(data, verify.PARALLEL_ROWS + 1000)

    def vhc(*args: str) -> tuple[int, str]:
        with pytest.raises(SystemExit) as exc:
            main(["--home", str(home), *args])
        out = capsys.readouterr()
        assert "Traceback" not in out.out + out.err
        return int(exc.value.code or 0), out.out + out.err

    assert vhc("ledger", "import", "--trades", str(data))[0] == 0
    path = home / "ledger" / "vhc.duckdb"
    total = head_seq(path)
    code, out = vhc("ledger", "verify")
    assert code == 0 and f"ledger OK: {total} rows" in out
    seq = total - 10
    edit(path, f"UPDATE trades SET price = price + 1 WHERE seq = {seq}")
    code, out = vhc("--json", "ledger", "verify")
    assert code == 6
    doc = json.loads(out[: out.index("\n}") + 2])
    assert doc["ok"] is False and doc["problem"].startswith(f"row seq {seq} (table trades)")


def test_a_worker_proves_its_range_and_its_boundary_link(ledger_path: Path) -> None:
    """Run as verify runs it: the worker's own answer (not this process's fallback) is whole."""
    cut = boundary(ledger_path, 2)
    total = head_seq(ledger_path)
    hello, whole, second = worker(ledger_path, f"{cut} -", f"- {cut}")
    with open_ledger(ledger_path, read_only=True) as ledger:
        assert hello == {"shape": verify._shape(ledger)}
    assert whole == {"distinct": total - cut, "low": cut + 1, "bad": None, "whole": True}
    assert second == {"distinct": cut, "low": 1, "bad": None, "whole": True}
    rehash(ledger_path, cut, lambda row: row.update(notes="rewritten"))
    assert worker(ledger_path, f"{cut} -")[1]["whole"] is False


@pytest.mark.parametrize("damage", ["none", "delete", "relink", "duplicate"])
def test_the_three_link_checks_agree(
    ledger_path: Path, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches up to _SMALL_BATCH rows are link-checked in Python; larger ones by comparing
    buffers when their seqs run on and every row links, else with pyarrow kernels: the same
    damage (or none) gives the same answer every way."""
    seq = boundary(ledger_path, 2) - 3
    if damage == "delete":
        edit(ledger_path, f"DELETE FROM trades WHERE seq = {seq}")
    elif damage == "relink":
        rehash(ledger_path, seq, lambda row: row.update(prev_hash="e" * 64))
    elif damage == "duplicate":
        edit(ledger_path, f"INSERT INTO trades SELECT * FROM trades WHERE seq = {seq}")
    small = run(ledger_path, 1).problem
    monkeypatch.setattr(verify, "_SMALL_BATCH", 0)
    buffers = run(ledger_path, 1).problem
    monkeypatch.setattr(verify._Links, "_add_run", lambda *_: False)
    kernels = run(ledger_path, 1).problem
    assert small == buffers == kernels
    if damage == "none":
        assert small is None
    else:
        assert small is not None and small.seq in (seq, seq + 1)


def test_an_intact_large_ledger_verifies_without_pyarrow_compute(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    write_trades(data, verify._SMALL_BATCH + 5_000)  # batches above the plain-Python size
    path = tmp_path / "big.duckdb"
    with open_ledger(path) as ledger:
        import_trades(ledger, data)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ccxtkit.ledger.store import open_ledger\n"
        "from ccxtkit.ledger.verify import verify_chain\n"
        "with open_ledger(Path(sys.argv[1]), 5, read_only=True) as ledger:\n"
        "    assert verify_chain(ledger, workers=1).ok\n"
        "print('pyarrow.compute' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_worker_that_dies_has_its_ranges_verified_by_the_parent(
    ledger_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that exits without answering (killed, out of memory) changes nothing."""
    seq = boundary(ledger_path, 2) + 40
    edit(ledger_path, f"UPDATE trades SET notes = 'edited' WHERE seq = {seq}")
    monkeypatch.setattr(verify, "_WORKER", "import sys; sys.exit(9)")
    problem = run(ledger_path, 2).problem
    assert problem is not None and problem.seq == seq and "modified" in problem.reason


def test_split_verify_gives_the_connection_its_threads_back(ledger_path: Path) -> None:
    with open_ledger(ledger_path, read_only=True) as ledger:
        before = ledger.query("SELECT current_setting('threads')")[0][0]
        assert verify.verify_chain(ledger, workers=2).ok
        assert ledger.query("SELECT current_setting('threads')")[0][0] == before
