"""Issue 14, findings 2-4: verify trusts nothing stored in the file, checking writes nothing,
and no command appends onto a broken head row."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ccxtkit.cli.app import main
from ccxtkit.ledger.outbox import outbox_path, queue_event
from ccxtkit.workspace import init_workspace

REPO = Path(__file__).resolve().parents[1]
CSV = (
    "timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id\n"
    "2025-01-23T14:05:00Z,kraken,BTC/USD,buy,0.5,60000,3,USD,T-1\n"
    "2025-01-23T15:05:00Z,kraken,BTC/USD,sell,0.25,61000,3,USD,T-2\n"
)


def vhc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture
def ws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    home = tmp_path / "ws"
    init_workspace(home)
    trades = tmp_path / "t.csv"
    trades.write_text(CSV)
    assert vhc(capsys, "--home", str(home), "ledger", "import", "--trades", str(trades))[0] == 0
    return home


def ledger_file(home: Path) -> Path:
    return home / "ledger" / "vhc.duckdb"


def tamper(home: Path, *statements: str) -> None:
    con = duckdb.connect(str(ledger_file(home)))
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.close()


def standalone(home: Path) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "verify_ledger.py"), str(ledger_file(home))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- finding 2: the file's catalog cannot stand in for vhc's SQL ----------------------------
def test_sha256_macro_in_the_file_does_not_vouch_for_an_edited_trade(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    code, out, _ = vhc(capsys, "--json", "--home", str(ws), "ledger", "digest")
    assert code == 0
    digest = tmp_path / "d.json"
    digest.write_text(out)
    tamper(
        ws,
        "UPDATE trades SET amount = 5 WHERE trade_id = 'T-1'",
        "CREATE MACRO sha256(x) AS NULL",
    )
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "verify", "--digest", str(digest))
    assert code == 6, err
    assert "macro sha256" in err and len(err.strip().splitlines()) == 1
    code, out, _ = vhc(capsys, "--json", "--home", str(ws), "doctor")
    assert "chain intact" not in out
    assert standalone(ws)[0] == 6


@pytest.mark.parametrize(
    "statement, named",
    [
        ("CREATE MACRO strlen(x) AS 0", "macro strlen"),
        ("CREATE MACRO coalesce(a, b) AS a", "macro coalesce"),
        ("CREATE VIEW trades_v AS SELECT * FROM trades", "view trades_v"),
        ("CREATE SEQUENCE s1", "sequence s1"),
        ("CREATE TYPE mood AS ENUM ('a')", "type mood"),
    ],
)
def test_any_object_vhc_never_creates_is_refused(
    capsys: pytest.CaptureFixture[str], ws: Path, statement: str, named: str
) -> None:
    tamper(ws, statement)
    for args in (("ledger", "verify"), ("ledger", "digest"), ("ledger", "log")):
        code, _, err = vhc(capsys, "--home", str(ws), *args)
        assert code == 6 and named in err, (args, err)
    # Writers are refused too, before anything is appended.
    code, _, err = vhc(capsys, "--home", str(ws), "trade", "buy", "BTC/USD", "0.01", "--yes")
    assert code == 6 and named in err, err


def test_verify_hashes_in_python_not_in_sql(ws: Path) -> None:
    """Even with DuckDB's own sha256 unavailable, verify recomputes every hash."""
    from ccxtkit.ledger.store import open_ledger
    from ccxtkit.ledger.verify import verify_chain

    with open_ledger(ledger_file(ws), 5, read_only=True) as ledger:
        ledger.con.execute("CREATE TEMP MACRO sha256(x) AS 'not a hash'")
        assert verify_chain(ledger).ok
    tamper(ws, "UPDATE trades SET fee = 0 WHERE trade_id = 'T-2'")
    with open_ledger(ledger_file(ws), 5, read_only=True) as ledger:
        result = verify_chain(ledger)
    assert result.problem is not None and "modified" in result.problem.reason


# -- finding 3: checking changes nothing -----------------------------------------------------
def test_checking_commands_write_nothing_and_print_the_files_head(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    queue_event(ledger_file(ws), "kill_switch.sweep", {"reason": "test"}, actor="tester")
    outbox = outbox_path(ledger_file(ws)).read_text()
    before = sha(ledger_file(ws))
    _, standalone_out = standalone(ws)
    file_head = standalone_out.split("hash ")[1].strip()
    code, out, err = vhc(capsys, "--json", "--home", str(ws), "ledger", "verify")
    assert code == 0, err
    verified = json.loads(out)
    code, out, _ = vhc(capsys, "--json", "--home", str(ws), "ledger", "digest")
    assert code == 0 and json.loads(out)["hash"] == verified["head"]["hash"] == file_head
    assert vhc(capsys, "--home", str(ws), "ledger", "log")[0] == 0
    export = tmp_path / "t.csv"
    assert vhc(capsys, "--home", str(ws), "ledger", "export", "--output", str(export))[0] == 0
    vhc(capsys, "--home", str(ws), "doctor")
    assert sha(ledger_file(ws)) == before
    assert outbox_path(ledger_file(ws)).read_text() == outbox  # not drained by a checker
    # The next writer drains it.
    code, _, err = vhc(capsys, "--home", str(ws), "trade", "buy", "BTC/USD", "0.01", "--yes")
    assert code == 0, err
    assert outbox_path(ledger_file(ws)).read_text() == ""


# -- finding 4: no append onto a broken head -------------------------------------------------
def test_trade_refused_after_the_head_row_was_edited(
    capsys: pytest.CaptureFixture[str], ws: Path
) -> None:
    tamper(
        ws,
        "UPDATE control_events SET details = '{}' "
        "WHERE seq = (SELECT max(seq) FROM control_events)",
    )
    before = sha(ledger_file(ws))
    code, _, err = vhc(capsys, "--home", str(ws), "trade", "buy", "BTC/USD", "0.01", "--yes")
    assert code == 6, err
    assert "last row" in err and "do not match its hash" in err
    assert sha(ledger_file(ws)) == before


def test_import_refused_after_the_head_row_was_relinked(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    # Delete the last row: the new head is intact in itself, so this is only caught by verify
    # (and by a digest); but a forged head that links nowhere is refused at once.
    tamper(
        ws,
        "UPDATE control_events SET prev_hash = repeat('a', 64) "
        "WHERE seq = (SELECT max(seq) FROM control_events)",
    )
    more = tmp_path / "more.csv"
    more.write_text(CSV.replace("T-1", "T-9").replace("T-2", "T-8"))
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(more))
    assert code == 6 and "last row" in err, err


def test_nightly_cron_runs_a_full_verify_that_alerts_on_failure(
    capsys: pytest.CaptureFixture[str], ws: Path
) -> None:
    text = (REPO / "deploy" / "cron" / "vhc.crontab").read_text()
    lines = [ln for ln in text.splitlines() if "vhc ledger verify --digest" in ln]
    assert lines and not lines[0].startswith("#") and lines[0].split()[2:5] == ["*", "*", "*"]
    tamper(ws, "UPDATE trades SET price = 1 WHERE trade_id = 'T-1'")
    assert vhc(capsys, "--home", str(ws), "ledger", "verify")[0] == 6
    logged = "".join(p.read_text() for p in (ws / "logs").glob("*.log*"))
    assert "alert CRITICAL [ledger.verify]: Ledger verify failed" in logged
