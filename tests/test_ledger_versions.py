"""Issue 14, finding 1: the format is pinned by a golden file, and files and code of different
versions never fork the chain (an old file is read and extended; a newer file is only read)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from ccxtkit.cli.app import main
from ccxtkit.ledger.chain import canonical_of, row_hash
from ccxtkit.ledger.schema import MIGRATIONS
from ccxtkit.workspace import init_workspace

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden_ledger.duckdb"
#: Written by vhc 0.1.0 (tests/data/make_golden_ledger.py). Never change these two values.
GOLDEN_HEAD = (8, "50a391ad73dcf71d128ebdebccba5b794611b72480d786b34663e40d02ac3edf")
CSV = (
    "timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id\n"
    "2025-01-23T14:05:00Z,kraken,BTC/USD,buy,0.5,60000,3,USD,T-1\n"
)


def vhc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return int(exc.value.code or 0), out.out, out.err


def ledger_file(home: Path) -> Path:
    return home / "ledger" / "vhc.duckdb"


@pytest.fixture
def golden_ws(tmp_path: Path) -> Path:
    """A workspace whose ledger is a copy of the golden file."""
    home = tmp_path / "ws"
    init_workspace(home)
    shutil.copyfile(GOLDEN, ledger_file(home))
    os.chmod(ledger_file(home), 0o600)
    return home


def standalone(path: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "verify_ledger.py"), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_golden_ledger_has_its_known_head(
    capsys: pytest.CaptureFixture[str], golden_ws: Path
) -> None:
    code, out, err = vhc(capsys, "--json", "--home", str(golden_ws), "ledger", "verify")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["head"]["seq"], doc["head"]["hash"]) == GOLDEN_HEAD and doc["rows"] == 8
    code, text = standalone(ledger_file(golden_ws))
    assert code == 0 and text.strip().endswith(f"head seq 8 hash {GOLDEN_HEAD[1]}"), text


def test_old_file_new_code_reads_without_writing_then_extends(
    capsys: pytest.CaptureFixture[str], golden_ws: Path, tmp_path: Path
) -> None:
    before = sha(ledger_file(golden_ws))
    for args in (("ledger", "verify"), ("ledger", "digest"), ("ledger", "log")):
        assert vhc(capsys, "--home", str(golden_ws), *args)[0] == 0
    assert sha(ledger_file(golden_ws)) == before
    trades = tmp_path / "t.csv"
    trades.write_text(CSV)
    code, _, err = vhc(
        capsys, "--home", str(golden_ws), "ledger", "import", "--trades", str(trades)
    )
    assert code == 0, err
    code, out, _ = vhc(capsys, "--json", "--home", str(golden_ws), "ledger", "verify")
    doc = json.loads(out)
    # The later migrations' events, then the trade and its ledger.import event.
    later = len(MIGRATIONS) - 1
    assert code == 0 and doc["head"]["seq"] == 10 + later
    con = duckdb.connect(str(ledger_file(golden_ws)), read_only=True)
    try:
        first = "control_events" if later else "trades"
        linked = con.execute(f"SELECT prev_hash FROM {first} WHERE seq = 9").fetchall()
    finally:
        con.close()
    assert linked == [(GOLDEN_HEAD[1],)]  # the old history is untouched and extended
    assert standalone(ledger_file(golden_ws))[0] == 0


def make_newer(path: Path, since: str = "9.1.0") -> None:
    """What a future vhc would leave: one more migration, one more chained table, rows in it."""
    con = duckdb.connect(str(path))
    try:
        head_seq, head_hash = GOLDEN_HEAD
        con.execute(
            "CREATE TABLE fills_v9 (seq BIGINT NOT NULL, prev_hash VARCHAR NOT NULL, "
            "row_hash VARCHAR NOT NULL, recorded_at TIMESTAMP NOT NULL, "
            "fill_id VARCHAR, qty DECIMAL(38,18))"
        )
        con.execute("INSERT INTO schema_migrations VALUES ('0009_fills', now())")
        stamp = datetime(2026, 1, 1, 0, 0, 0, 1)
        event = {
            "seq": head_seq + 1,
            "prev_hash": head_hash,
            "recorded_at": stamp,
            "timestamp": stamp,
            "kind": "ledger.migration",
            "actor": "future",
            "subject": "0009_fills",
            "details": json.dumps({"migration": "0009_fills", "since": since}),
        }
        kinds = [("timestamp", "timestamp"), ("kind", "text"), ("actor", "text")]
        kinds += [("subject", "text"), ("details", "text")]
        event["row_hash"] = row_hash(canonical_of("control_events", kinds, event))
        con.execute(
            "INSERT INTO control_events (seq, prev_hash, row_hash, recorded_at, timestamp, kind, "
            "actor, subject, details) VALUES ($seq, $prev_hash, $row_hash, $recorded_at, "
            "$timestamp, $kind, $actor, $subject, $details)",
            event,
        )
        fill = {
            "seq": head_seq + 2,
            "prev_hash": event["row_hash"],
            "recorded_at": stamp,
            "fill_id": "F-1",
            "qty": "1.5",
        }
        fill["row_hash"] = row_hash(
            canonical_of("fills_v9", [("fill_id", "text"), ("qty", "decimal")], fill)
        )
        con.execute(
            "INSERT INTO fills_v9 VALUES ($seq, $prev_hash, $row_hash, $recorded_at, $fill_id, "
            "$qty)",
            fill,
        )
    finally:
        con.close()


def test_new_file_old_code_is_verified_whole_and_never_written(
    capsys: pytest.CaptureFixture[str], golden_ws: Path, tmp_path: Path
) -> None:
    make_newer(ledger_file(golden_ws))
    code, text = standalone(ledger_file(golden_ws))
    assert code == 0, text
    file_head = text.split("hash ")[1].strip()
    code, out, err = vhc(capsys, "--json", "--home", str(golden_ws), "ledger", "verify")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["rows"] == 10 and doc["head"] == {"seq": 10, "hash": file_head}
    before = sha(ledger_file(golden_ws))
    trades = tmp_path / "t.csv"
    trades.write_text(CSV)
    for args in (
        ("ledger", "import", "--trades", str(trades)),
        ("trade", "buy", "BTC/USD", "0.01", "--yes"),
    ):
        code, _, err = vhc(capsys, "--home", str(golden_ws), *args)
        assert code == 6, (args, err)
        assert "0009_fills" in err and "vhc 9.1.0 or later" in err, err
    assert sha(ledger_file(golden_ws)) == before
    # The newer table is part of the chain: editing it is caught.
    con = duckdb.connect(str(ledger_file(golden_ws)))
    con.execute("UPDATE fills_v9 SET qty = 2")
    con.close()
    code, _, err = vhc(capsys, "--home", str(golden_ws), "ledger", "verify")
    assert code == 6 and "row seq 10 (table fills_v9)" in err, err


def test_unknown_chained_table_without_migration_is_never_written(
    capsys: pytest.CaptureFixture[str], golden_ws: Path, tmp_path: Path
) -> None:
    make_newer(ledger_file(golden_ws))
    con = duckdb.connect(str(ledger_file(golden_ws)))
    con.execute("DELETE FROM schema_migrations WHERE name = '0009_fills'")
    con.close()
    trades = tmp_path / "t.csv"
    trades.write_text(CSV)
    code, _, err = vhc(
        capsys, "--home", str(golden_ws), "ledger", "import", "--trades", str(trades)
    )
    assert code == 6 and "fills_v9" in err and "upgrade vhc" in err, err


def test_every_migration_is_a_chained_event(tmp_path: Path) -> None:
    from ccxtkit.ledger.store import open_ledger

    with open_ledger(tmp_path / "m.duckdb", 5) as ledger:
        rows = ledger.rows(
            "SELECT seq, details FROM control_events WHERE kind = 'ledger.migration' ORDER BY seq"
        )
    names = [json.loads(r["details"])["migration"] for r in rows]
    assert names == [m.name for m in MIGRATIONS]
    assert all(json.loads(r["details"])["since"] for r in rows)
