"""Trades CSV import (all or nothing, each trade once), export round trips, the audit log."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ccxtkit.cli.app import main
from ccxtkit.ledger.store import open_ledger
from ccxtkit.ledger.verify import verify_chain
from ccxtkit.workspace import init_workspace

HEADER = "timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id"
GOOD = [
    "2025-01-23T14:05:00Z,kraken,BTC/USD,buy,0.12345,101234.50,3.12,USD,T-1001",
    "2025-01-23T15:00:00.123456+01:00,kraken,ETH/USDT,sell,1.5,3000.01,0,,T-1002",
    "2025-01-24T09:30:00,coinbase,BTC/USD,sell,0.123456789012345678,12345678901.5,0.5,USD,T-1",
]


def vhc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    init_workspace(home)
    return home


def write_csv(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def head_of(home: Path) -> tuple[int, str, int]:
    """(head seq, head hash, trades count) read straight from the ledger."""
    with open_ledger(home / "ledger" / "vhc.duckdb", 5) as ledger:
        head = ledger.head()
        count = ledger.query("SELECT count(*) FROM trades")[0][0]
        return head.seq, head.hash, int(count)


def test_import_then_reimport_is_idempotent(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    f = write_csv(tmp_path / "trades.csv", GOOD)
    code, out, err = vhc(
        capsys, "--json", "--home", str(ws), "ledger", "import", "--trades", str(f)
    )
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["rows"], doc["imported"], doc["duplicates"]) == (3, 3, 0)
    code, out, err = vhc(
        capsys, "--json", "--home", str(ws), "ledger", "import", "--trades", str(f)
    )
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["rows"], doc["imported"], doc["duplicates"]) == (3, 0, 3)
    # A file that overlaps: only the new trade is recorded.
    more = write_csv(tmp_path / "more.csv", [*GOOD[:2], GOOD[2].replace("T-1", "T-2")])
    code, out, _ = vhc(
        capsys, "--json", "--home", str(ws), "ledger", "import", "--trades", str(more)
    )
    assert code == 0 and json.loads(out)["imported"] == 1
    with open_ledger(ws / "ledger" / "vhc.duckdb", 5) as ledger:
        rows = ledger.rows("SELECT * FROM trades ORDER BY seq")
        assert verify_chain(ledger).ok
    assert [r["trade_id"] for r in rows] == ["T-1001", "T-1002", "T-1", "T-2"]
    first, second, third = rows[:3]
    assert first["asset"] == "BTC" and first["quote"] == "USD" and first["side"] == "buy"
    assert first["amount"] == Decimal("0.12345") and first["price"] == Decimal("101234.5")
    assert first["cost"] == Decimal("12497.399025")
    assert first["total_usd"] == first["cost"] and first["source"] == "import"
    # +01:00 stored as UTC wall time; no fee means no fee currency.
    assert second["timestamp"] == datetime(2025, 1, 23, 14, 0, 0, 123456)
    assert second["fee"] == 0 and second["fee_currency"] is None
    # 18 decimals and an 11-digit price: exact, beyond Decimal's default 28 digits.
    assert third["amount"] == Decimal("0.123456789012345678")
    assert third["cost"] == Decimal("1524157875.356653059909312717")
    assert third["exchange"] == "coinbase"


BAD_ROWS = [
    ("bad number", "2025-01-25T00:00:00Z,kraken,BTC/USD,buy,1;5,100,0,USD,T-9", "amount"),
    ("bad side", "2025-01-25T00:00:00Z,kraken,BTC/USD,hold,1,100,0,USD,T-9", "side"),
    ("bad timestamp", "yesterday,kraken,BTC/USD,buy,1,100,0,USD,T-9", "ISO 8601"),
    ("wrong column count", "2025-01-25T00:00:00Z,kraken,BTC/USD,buy,1,100,0,USD", "columns"),
    ("bad symbol", "2025-01-25T00:00:00Z,kraken,BTCUSD,buy,1,100,0,USD,T-9", "BTC/USD"),
    (
        "19 decimal places",
        "2025-01-25T00:00:00Z,kraken,BTC/USD,buy,0.1234567890123456789,100,0,USD,T-9",
        "18 decimal places",
    ),
    ("negative amount", "2025-01-25T00:00:00Z,kraken,BTC/USD,buy,-1,100,0,USD,T-9", "amount"),
    ("empty trade id", "2025-01-25T00:00:00Z,kraken,BTC/USD,buy,1,100,0,USD,", "trade_id"),
    ("NaN price", "2025-01-25T00:00:00Z,kraken,BTC/USD,buy,1,NaN,0,USD,T-9", "price"),
]


@pytest.mark.parametrize(("row", "word"), [b[1:] for b in BAD_ROWS], ids=[b[0] for b in BAD_ROWS])
def test_bad_row_names_line_and_records_nothing(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path, row: str, word: str
) -> None:
    before = head_of(ws)
    # Two good rows, a blank line, the bad row on line 5, one more good row after it.
    f = write_csv(tmp_path / "bad.csv", [GOOD[0], GOOD[1], "", row, GOOD[2]])
    code, out, err = vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(f))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"error: {f}:5: "), lines[0]
    assert word in lines[0]
    assert head_of(ws) == before  # nothing of the file was recorded, not even an event


def test_bad_header(capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path) -> None:
    before = head_of(ws)
    f = write_csv(tmp_path / "h.csv", GOOD, header=HEADER.replace("price", "rate"))
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(f))
    assert code == 2 and f"{f}:1:" in err
    f = write_csv(tmp_path / "x.csv", [GOOD[0] + ",x"], header=HEADER + ",colour")
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(f))
    assert code == 2 and "colour" in err
    code, _, err = vhc(
        capsys, "--home", str(ws), "ledger", "import", "--trades", str(tmp_path / "nope.csv")
    )
    assert code == 2 and "nope.csv" in err
    assert head_of(ws) == before


def test_duplicate_trade_id_with_different_values(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    before = head_of(ws)
    changed = GOOD[0].replace("0.12345", "0.2")
    f = write_csv(tmp_path / "dup.csv", [GOOD[0], GOOD[1], changed])
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(f))
    assert code == 2
    assert f"{f}:4:" in err and "T-1001" in err and "line 2" in err
    assert head_of(ws) == before
    # The same trade twice with the same values is one trade.
    f = write_csv(tmp_path / "same.csv", [GOOD[0], GOOD[0]])
    code, out, _ = vhc(capsys, "--json", "--home", str(ws), "ledger", "import", "--trades", str(f))
    assert code == 0 and json.loads(out)["imported"] == 1
    assert head_of(ws)[2] == 1


def test_optional_columns(capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path) -> None:
    f = write_csv(
        tmp_path / "opt.csv",
        [GOOD[0] + ',O-1,grid,"bought, on a dip"', GOOD[1] + ",,,"],
        header=HEADER + ",order_id,strategy,notes",
    )
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(f))
    assert code == 0, err
    with open_ledger(ws / "ledger" / "vhc.duckdb", 5) as ledger:
        rows = ledger.rows("SELECT order_id, strategy, notes FROM trades ORDER BY seq")
    assert rows == [
        {"order_id": "O-1", "strategy": "grid", "notes": "bought, on a dip"},
        {"order_id": None, "strategy": None, "notes": None},
    ]


def test_export_round_trips_exactly(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    f = write_csv(tmp_path / "trades.csv", GOOD)
    assert vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(f))[0] == 0
    with open_ledger(ws / "ledger" / "vhc.duckdb", 5) as ledger:
        stored = ledger.rows("SELECT * FROM trades ORDER BY seq")
    money = ("amount", "price", "cost", "fee", "total_usd")
    for fmt in ("csv", "parquet", "json"):
        out = tmp_path / f"out.{fmt}"
        code, _, err = vhc(
            capsys, "--home", str(ws), "ledger", "export", "--format", fmt, "--output", str(out)
        )
        assert code == 0, err
        assert out.stat().st_mode & 0o077 == 0
        if fmt == "csv":
            with out.open(newline="") as handle:
                got = list(csv.DictReader(handle))
        elif fmt == "parquet":
            got = pq.read_table(out).to_pylist()
        else:
            got = json.loads(out.read_text())
        assert len(got) == len(stored)
        for back, row in zip(got, stored, strict=True):
            assert int(back["seq"]) == row["seq"] and back["row_hash"] == row["row_hash"]
            assert back["trade_id"] == row["trade_id"]
            for name in money:
                if row[name] is None:
                    assert back[name] in (None, "")
                    continue
                if fmt == "json":
                    assert isinstance(back[name], str), (name, back[name])  # never a float
                assert Decimal(str(back[name])) == row[name], (fmt, name)
            stamp = back["timestamp"]
            if isinstance(stamp, str):
                stamp = datetime.fromisoformat(stamp)
            assert stamp.replace(tzinfo=None) == row["timestamp"]
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "export", "--table", "nope")
    assert code == 2 and "unknown table" in err


def test_log_shows_import_and_verify_records_nothing(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    f = write_csv(tmp_path / "trades.csv", GOOD)
    assert vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(f))[0] == 0
    assert vhc(capsys, "--home", str(ws), "ledger", "verify")[0] == 0
    code, out, err = vhc(capsys, "--json", "--home", str(ws), "ledger", "log", "--limit", "10")
    assert code == 0, err
    events = json.loads(out)
    # verify checks and writes nothing (issue 14, finding 3); init records the first policy.
    from ccxtkit.ledger.schema import MIGRATIONS

    kinds = ["ledger.import", "policy.recorded", "workspace.init"]
    assert [e["kind"] for e in events] == kinds + ["ledger.migration"] * len(MIGRATIONS)
    details = events[0]["details"]  # an object, not a JSON string inside JSON
    assert details == {"file": "trades.csv", "rows": 3, "imported": 3}
    code, out, _ = vhc(capsys, "--home", str(ws), "ledger", "log")
    assert code == 0 and "ledger.import" in out and "ledger.verify" not in out
    assert datetime.fromisoformat(events[0]["timestamp"]).year == datetime.now(UTC).year


def test_bulk_import_over_arrow_path(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    """>= 500 rows go through Arrow; it must work on a fresh connection and hash the same."""
    lines = [
        f"2025-02-01T00:{i // 60:02d}:{i % 60:02d}Z,kraken,BTC/USD,buy,0.{i:04d}1,"
        f"99999999999.{i:03d},0,USD,B-{i}"
        for i in range(1200)
    ]
    f = write_csv(tmp_path / "bulk.csv", lines)
    code, out, err = vhc(
        capsys, "--json", "--home", str(ws), "ledger", "import", "--trades", str(f)
    )
    assert code == 0, err
    assert json.loads(out)["imported"] == 1200
    code, out, err = vhc(capsys, "--home", str(ws), "ledger", "verify")
    assert code == 0, err
    with open_ledger(ws / "ledger" / "vhc.duckdb", 5) as ledger:
        (cost,) = ledger.query("SELECT cost FROM trades WHERE trade_id = 'B-1199'")[0]
    assert cost == Decimal("0.11991") * Decimal("99999999999.1199")
