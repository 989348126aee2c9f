"""The hash chain: every kind of tampering is caught by `vhc ledger verify` and the standalone
verifier alike; Python's hash equals DuckDB's; appends in any order keep a valid chain."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccxtkit.cli.app import main
from ccxtkit.ledger.chain import GENESIS_HASH, canonical, chain_union_sql, row_hash
from ccxtkit.ledger.schema import TABLES
from ccxtkit.ledger.store import Ledger, open_ledger
from ccxtkit.ledger.verify import verify_chain
from ccxtkit.workspace import init_workspace

REPO = Path(__file__).resolve().parents[1]
VERIFIER = REPO / "tools" / "verify_ledger.py"
T0 = datetime(2025, 1, 2, 3, 4, 5, 678901)


# -- building a real ledger ----------------------------------------------------------------
def trade(i: int) -> dict[str, Any]:
    return {
        "timestamp": T0 + timedelta(minutes=i),
        "exchange": "kraken",
        "symbol": "BTC/USD",
        "asset": "BTC",
        "quote": "USD",
        "side": "buy" if i % 2 else "sell",
        "amount": Decimal("0.12345") + Decimal(i) / 1000,
        "price": Decimal("101234.50"),
        "cost": Decimal("12497.40") + i,
        "fee": Decimal("3.12"),
        "fee_currency": "USD",
        "trade_id": f"T-{i}",
        "source": "test",
        "notes": "Zürich désk ☃" if i % 7 == 0 else None,
    }


def order(i: int) -> dict[str, Any]:
    return {
        "timestamp": T0 + timedelta(seconds=i),
        "client_order_id": f"c-{i}",
        "exchange": "paper",
        "symbol": "ETH/USDT",
        "side": "buy",
        "type": "limit",
        "amount": Decimal("1.5"),
        "price": Decimal("3000.01"),
        "source": "test",
        "live": i % 2 == 0,
    }


def transfer(i: int) -> dict[str, Any]:
    return {
        "timestamp": T0 + timedelta(hours=i),
        "exchange": "kraken",
        "kind": "deposit",
        "asset": "USD",
        "amount": Decimal(1000 + i),
        "source": "test",
    }


def snapshot(i: int) -> dict[str, Any]:
    return {
        "timestamp": T0 + timedelta(days=i),
        "exchange": "kraken",
        "asset": "BTC",
        "total": Decimal("-0.000000000000000001") * i,
        "source": "test",
    }


def populate(ledger: Ledger) -> None:
    """A few hundred rows across several tables, interleaved, incl. one bulk (Arrow) append."""
    for i in range(40):
        ledger.append("trades", [trade(i), trade(i + 1000)])
        ledger.append("orders", [order(i)])
        ledger.append("transfers", [transfer(i)])
        ledger.append("balance_snapshots", [snapshot(i)])
        ledger.record_event("test.step", {"i": i}, actor="tester", subject=f"s{i}")
    ledger.append("trades", [trade(i) for i in range(2000, 2600)])  # >= 500 rows: Arrow path
    ledger.append("orders", [order(i) for i in range(100, 110)])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A workspace with a populated ledger, built once; returns (home, head seq)."""
    home = tmp_path_factory.mktemp("template") / "ws"
    init_workspace(home)
    with open_ledger(home / "ledger" / "vhc.duckdb", 5) as ledger:
        populate(ledger)
        head = ledger.head().seq
    assert head > 800
    return home, head


@pytest.fixture
def ws(template: tuple[Path, int], tmp_path: Path) -> Path:
    """A private copy of the template workspace."""
    home = tmp_path / "ws"
    shutil.copytree(template[0], home)
    return home


def ledger_file(home: Path) -> Path:
    return home / "ledger" / "vhc.duckdb"


def tamper(home: Path, *statements: str) -> None:
    """Edit the DuckDB file directly, as an attacker with file access would (vhc is closed)."""
    con = duckdb.connect(str(ledger_file(home)))
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.close()


def seq_of(home: Path, table: str, offset: int) -> int:
    con = duckdb.connect(str(ledger_file(home)), read_only=True)
    try:
        row = con.execute(f"SELECT seq FROM {table} ORDER BY seq LIMIT 1 OFFSET {offset}")
        return int(row.fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


# -- running both verifiers ---------------------------------------------------------------
def standalone(home: Path, digest: Path | None = None) -> tuple[int, str]:
    """tools/verify_ledger.py in its own process: plain duckdb + hashlib, no vhc code."""
    args = [sys.executable, str(VERIFIER), str(ledger_file(home))]
    if digest is not None:
        args.append(str(digest))
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def vhc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def vhc_verify(
    capsys: pytest.CaptureFixture[str], home: Path, digest: Path | None = None
) -> tuple[int, str]:
    extra = ["--digest", str(digest)] if digest else []
    code, out, err = vhc(capsys, "--home", str(home), "ledger", "verify", *extra)
    assert "Traceback" not in out + err
    return code, err


def assert_both_fail_at(
    capsys: pytest.CaptureFixture[str], home: Path, seq: int, digest: Path | None = None
) -> str:
    # The standalone verifier runs first: `vhc ledger verify` records its own event afterwards.
    code, text = standalone(home, digest)
    assert code == 6, text
    assert f"seq {seq}" in text and text.startswith("FAIL"), text
    code, err = vhc_verify(capsys, home, digest)
    assert code == 6, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ledger verify failed at row seq ")
    assert f"row seq {seq} " in lines[0], lines[0]
    return lines[0]


def assert_both_pass(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, text = standalone(home)
    assert code == 0 and text.startswith("OK"), text
    code, err = vhc_verify(capsys, home)
    assert code == 0, err


def take_digest(capsys: pytest.CaptureFixture[str], home: Path, out: Path) -> dict[str, Any]:
    code, stdout, err = vhc(
        capsys, "--json", "--home", str(home), "ledger", "digest", "--output", str(out)
    )
    assert code == 0, err
    doc: dict[str, Any] = json.loads(stdout)
    assert json.loads(out.read_text()) == doc
    return doc


# -- tamper cases ---------------------------------------------------------------------------
def test_untouched_ledger_verifies(capsys: pytest.CaptureFixture[str], ws: Path) -> None:
    assert_both_pass(capsys, ws)
    assert_both_pass(capsys, ws)  # and again, after verify recorded its own event


def test_flip_one_cell(capsys: pytest.CaptureFixture[str], ws: Path) -> None:
    k = seq_of(ws, "trades", 30)
    tamper(ws, f"UPDATE trades SET amount = amount + 0.000000000000000001 WHERE seq = {k}")
    assert "modified" in assert_both_fail_at(capsys, ws, k)


def test_flip_text_cell_to_null(capsys: pytest.CaptureFixture[str], ws: Path) -> None:
    k = seq_of(ws, "control_events", 10)
    tamper(ws, f"UPDATE control_events SET subject = NULL WHERE seq = {k}")
    assert_both_fail_at(capsys, ws, k)


def test_delete_row(capsys: pytest.CaptureFixture[str], ws: Path) -> None:
    k = seq_of(ws, "orders", 12)
    tamper(ws, f"DELETE FROM orders WHERE seq = {k}")
    assert "deleted" in assert_both_fail_at(capsys, ws, k + 1)


def test_insert_copy_with_duplicate_seq(capsys: pytest.CaptureFixture[str], ws: Path) -> None:
    k = seq_of(ws, "trades", 50)
    tamper(ws, f"INSERT INTO trades SELECT * FROM trades WHERE seq = {k}")
    assert_both_fail_at(capsys, ws, k)


def test_insert_forged_row_with_duplicate_seq_in_other_table(
    capsys: pytest.CaptureFixture[str], ws: Path
) -> None:
    k = seq_of(ws, "trades", 60)
    tamper(
        ws,
        "INSERT INTO transfers SELECT * REPLACE (amount * 100 AS amount) FROM transfers "
        "WHERE source = 'test' ORDER BY seq LIMIT 1",
        f"UPDATE transfers SET seq = {k} WHERE seq = "
        "(SELECT min(seq) FROM transfers WHERE source = 'test') AND amount > 50000",
    )
    assert_both_fail_at(capsys, ws, k)


def forge_row_at(home: Path, k: int) -> None:
    """Renumber every row from k on, then insert a well-formed trade at k linked to k-1."""
    con = duckdb.connect(str(ledger_file(home)))
    try:
        for table in TABLES:
            con.execute(f'UPDATE "{table}" SET seq = seq + 1 WHERE seq >= ?', [k])
        prev = con.execute(
            f"SELECT row_hash FROM ({chain_union_sql()}) WHERE seq = ?", [k - 1]
        ).fetchone()
        assert prev is not None
        row = trade(99999)
        stamp = datetime(2025, 6, 1, 12, 0, 0)
        digest = row_hash(canonical("trades", k, prev[0], stamp, row))
        cols = ["seq", "prev_hash", "row_hash", "recorded_at", *row]
        marks = ", ".join("?" for _ in cols)
        con.execute(
            f"INSERT INTO trades ({', '.join(cols)}) VALUES ({marks})",
            [k, prev[0], digest, stamp, *row.values()],
        )
    finally:
        con.close()


def test_insert_forged_row_in_the_middle(capsys: pytest.CaptureFixture[str], ws: Path) -> None:
    k = seq_of(ws, "orders", 20)
    forge_row_at(ws, k)
    # The forged row itself is well-formed; the row after it can no longer link or hash.
    assert_both_fail_at(capsys, ws, k + 1)


def test_swap_two_rows(capsys: pytest.CaptureFixture[str], ws: Path) -> None:
    a, b = seq_of(ws, "trades", 100), seq_of(ws, "trades", 140)
    tamper(
        ws,
        f"UPDATE trades SET seq = CASE WHEN seq = {a} THEN {b} ELSE {a} END "
        f"WHERE seq IN ({a}, {b})",
    )
    assert_both_fail_at(capsys, ws, a)


def test_swap_contents_of_adjacent_rows(capsys: pytest.CaptureFixture[str], ws: Path) -> None:
    """Reorder two neighbours but keep each position's seq, prev_hash and row_hash."""
    a = seq_of(ws, "trades", 650)
    tamper(
        ws,
        f"""UPDATE trades SET amount = CASE WHEN seq = {a} THEN
                (SELECT amount FROM trades WHERE seq = {a + 1})
              ELSE (SELECT amount FROM trades WHERE seq = {a}) END,
            trade_id = CASE WHEN seq = {a} THEN
                (SELECT trade_id FROM trades WHERE seq = {a + 1})
              ELSE (SELECT trade_id FROM trades WHERE seq = {a}) END
            WHERE seq IN ({a}, {a + 1})""",
    )
    assert_both_fail_at(capsys, ws, a)


def test_truncate_tail_caught_only_with_digest(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    digest_file = tmp_path / "offsite" / "digest.json"
    digest = take_digest(capsys, ws, digest_file)
    cut = digest["seq"] - 25
    tamper(ws, *(f'DELETE FROM "{t}" WHERE seq > {cut}' for t in TABLES))
    code, text = standalone(ws)
    assert code == 0, text  # internally consistent: without a digest nothing can tell
    assert_both_fail_at(capsys, ws, digest["seq"], digest_file)
    code, err = vhc_verify(capsys, ws)
    assert code == 0, err


def rewrite_from(home: Path, k: int) -> None:
    """Change row k, then recompute every later prev_hash and row_hash correctly."""
    con = duckdb.connect(str(ledger_file(home)))
    try:
        table = con.execute(f"SELECT tbl FROM ({chain_union_sql()}) WHERE seq = ?", [k])
        tbl = table.fetchone()[0]  # type: ignore[index]
        con.execute(
            f'UPDATE "{tbl}" SET recorded_at = recorded_at + INTERVAL 1 SECOND WHERE seq = ?', [k]
        )
        prev = con.execute(
            f"SELECT row_hash FROM ({chain_union_sql()}) WHERE seq = ?", [k - 1]
        ).fetchone()[0]  # type: ignore[index]
        head = con.execute(f"SELECT max(seq) FROM ({chain_union_sql()})").fetchone()[0]  # type: ignore[index]
        for seq in range(k, head + 1):
            for t in TABLES:
                cur = con.execute(f'SELECT * FROM "{t}" WHERE seq = ?', [seq])
                found = cur.fetchone()
                if found is None:
                    continue
                names = [d[0] for d in cur.description]
                row = dict(zip(names, found, strict=True))
                new = row_hash(canonical(t, seq, prev, row["recorded_at"], row))
                con.execute(
                    f'UPDATE "{t}" SET prev_hash = ?, row_hash = ? WHERE seq = ?', [prev, new, seq]
                )
                prev = new
    finally:
        con.close()


def test_rewrite_history_caught_only_with_digest(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    digest_file = tmp_path / "digest.json"
    digest = take_digest(capsys, ws, digest_file)
    rewrite_from(ws, digest["seq"] - 30)
    code, text = standalone(ws)
    assert code == 0, text
    line = assert_both_fail_at(capsys, ws, digest["seq"], digest_file)
    assert "rewritten" in line


def test_digest_of_untouched_ledger_passes(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    digest_file = tmp_path / "digest.json"
    take_digest(capsys, ws, digest_file)
    vhc_verify(capsys, ws)  # the ledger grows after the digest: still extends it
    code, text = standalone(ws, digest_file)
    assert code == 0, text
    code, err = vhc_verify(capsys, ws, digest_file)
    assert code == 0, err


# -- Python hash == DuckDB hash -------------------------------------------------------------
# Built from text, which is exact: Decimal arithmetic would round to 28 digits.
DEC = (
    st.builds(
        lambda n, scale: Decimal(f"{n}E-{scale}"),
        st.integers(-(10**38) + 1, 10**38 - 1),
        st.just(18),
    )
    | st.builds(
        lambda n, scale: Decimal(f"{n}E-{scale}"),
        st.integers(-(10**19), 10**19),
        st.integers(0, 18),
    )
    | st.sampled_from([Decimal(0), Decimal("-0"), Decimal("-0.000"), Decimal("1E+19")])
)

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)

STAMP = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)) | st.builds(
    lambda d, minutes: d.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(-14 * 60, 14 * 60),
)

BY_KIND: dict[str, st.SearchStrategy[Any]] = {
    "text": TEXT,
    "decimal": DEC,
    "timestamp": STAMP,
    "bool": st.booleans(),
    "int": st.integers(-(2**63), 2**63 - 1),
}


@st.composite
def rows_of(draw: st.DrawFn, table: str) -> dict[str, Any]:
    row = {}
    for col in TABLES[table]:
        value = draw(BY_KIND[col.kind])
        row[col.name] = value if col.required else draw(st.none() | st.just(value))
    return row


TABLE = st.sampled_from(sorted(TABLES))


@pytest.fixture(scope="module")
def scratch() -> Iterator[Ledger]:
    with tempfile.TemporaryDirectory() as tmp, open_ledger(Path(tmp) / "p.duckdb", 5) as ledger:
        yield ledger


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), table=TABLE)
def test_python_hash_equals_duckdb_hash(scratch: Ledger, data: st.DataObject, table: str) -> None:
    row = data.draw(rows_of(table))
    stamp = data.draw(STAMP)
    head = scratch.head()
    (seq,) = scratch.append(table, [row], recorded_at=stamp)
    found = scratch.query(
        f"SELECT canon, sha256(canon), row_hash, prev_hash FROM ({chain_union_sql()}) "
        "WHERE seq = ?",
        [seq],
    )
    canon_sql, hash_sql, stored, prev = found[0]
    assert prev == head.hash
    # What Python hashed at append time, recomputed from the values as DuckDB returns them.
    cur = scratch.con.execute(f'SELECT * FROM "{table}" WHERE seq = ?', [seq])
    names = [d[0] for d in cur.description or []]
    back = dict(zip(names, cur.fetchone() or (), strict=True))
    canon_py = canonical(table, seq, prev, back["recorded_at"], back)
    assert canon_py == canon_sql
    assert row_hash(canon_py) == hash_sql == stored


APPENDS = st.lists(st.tuples(TABLE, st.integers(1, 4)), min_size=1, max_size=8)


@settings(max_examples=12, deadline=None)
@given(plan=APPENDS, data=st.data())
def test_chain_verifies_after_any_appends(plan: list[tuple[str, int]], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp, open_ledger(Path(tmp) / "c.duckdb", 5) as ledger:
        total = ledger.head().seq  # a new ledger starts with its migration events
        for table, n in plan:
            rows = [data.draw(rows_of(table)) for _ in range(n)]
            seqs = ledger.append(table, rows)
            assert seqs == list(range(total + 1, total + n + 1))
            total += n
        result = verify_chain(ledger)
        assert result.ok, result.problem
        assert result.rows == total and result.head.seq == total


def test_new_ledger_starts_from_genesis_with_its_migration_event(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "e.duckdb", 1) as ledger:
        first = ledger.rows(
            "SELECT seq, prev_hash, kind, details FROM control_events ORDER BY seq LIMIT 1"
        )
        assert verify_chain(ledger).ok
    assert [(r["seq"], r["prev_hash"], r["kind"]) for r in first] == [
        (1, GENESIS_HASH, "ledger.migration")
    ]
    assert json.loads(first[0]["details"])["migration"] == "0001_initial"


def test_now_is_utc() -> None:
    # Guard for the fixture data: timestamps passed aware are stored as UTC wall time.
    aware = datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert canonical("prices", 1, GENESIS_HASH, aware, {}) == canonical(
        "prices", 1, GENESIS_HASH, datetime(2025, 1, 1, 10, tzinfo=UTC), {}
    )
