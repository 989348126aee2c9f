"""Issue 14, findings 6 and 7: exchange numbers rounded once at the boundary, impossible
timestamps and conflicting trade ids refused, no glob in `--trades`, the user's own paths exit 2."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from ccxtkit.cli.app import main
from ccxtkit.exchanges.ccxt_convert import to_order, to_trade
from ccxtkit.ledger.store import open_ledger
from ccxtkit.ledger.verify import verify_chain
from ccxtkit.money import to_ledger_decimal
from ccxtkit.trading.recording import record_fills
from ccxtkit.workspace import init_workspace

HEADER = "timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id"


def vhc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    init_workspace(home)
    return home


def csv_file(path: Path, *lines: str) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    return path


def trades_count(home: Path) -> int:
    with open_ledger(home / "ledger" / "vhc.duckdb", 5, read_only=True) as ledger:
        return int(ledger.query("SELECT count(*) FROM trades")[0][0])


# -- exchange numbers ------------------------------------------------------------------------
NOISY = {
    "id": "K-1",
    "order": "O-1",
    "symbol": "BTC/USD",
    "side": "buy",
    "amount": 0.1,
    "price": 3.3333333333333335e-05,
    "cost": None,
    "fee": {"cost": 8.580000000000001e-08, "currency": "BTC"},
    "timestamp": 1735689600000,
}


def test_float_noise_from_ccxt_is_rounded_once_and_recorded(tmp_path: Path) -> None:
    trade = to_trade(NOISY)
    assert trade.fee == Decimal("0.000000085800000000")
    assert trade.cost == to_ledger_decimal(trade.cost)  # fits DECIMAL(38,18) exactly
    order = to_order(
        {"id": "O-1", "symbol": "BTC/USD", "side": "buy", "type": "market", "amount": 0.1,
         "filled": 0.1, "status": "closed", "fee": NOISY["fee"], "trades": [NOISY]}
    )  # fmt: skip
    assert order.fee == trade.fee
    with open_ledger(tmp_path / "l.duckdb", 5) as ledger:
        assert record_fills(ledger, "kraken", order.trades, "trade") == 1
        assert verify_chain(ledger).ok


def test_user_input_keeps_the_strict_check(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    f = csv_file(
        tmp_path / "t.csv",
        "2025-01-01T00:00:00Z,kraken,BTC/USD,buy,1,2,8.580000000000001e-08,USD,T-1",
    )
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(f))
    assert code == 2 and "t.csv:2" in err, err


# -- timestamps ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "stamp", ["0001-01-01T00:00:00Z", "2009-01-02T23:59:59Z", "2099-01-01T00:00:00Z"]
)
@pytest.mark.parametrize("rows", [1, 600])  # row-by-row parser, and the bulk path's checks
def test_impossible_timestamps_are_refused_in_both_import_paths(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path, stamp: str, rows: int
) -> None:
    good = [
        f"2025-01-01T00:00:{i % 60:02d}Z,kraken,BTC/USD,buy,1,2,0,USD,G-{i}"
        for i in range(rows - 1)
    ]
    f = csv_file(tmp_path / "t.csv", *good, f"{stamp},kraken,BTC/USD,buy,1,2,0,USD,BAD")
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(f))
    assert code == 2 and f"t.csv:{rows + 1}" in err and "outside 2009-01-03" in err, err
    assert trades_count(ws) == 0
    code, _, err = vhc(capsys, "--home", str(ws), "tax-report", "--year", "2025")
    assert code in (0, 1), err  # never the crash of exit 70


# -- a known id with other values is a conflict ----------------------------------------------
@pytest.mark.parametrize("rows", [1, 600])
def test_known_trade_id_with_different_values_is_a_conflict(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path, rows: int
) -> None:
    first = [f"2025-01-01T00:00:00Z,kraken,BTC/USD,buy,1,2,0,USD,T-{i}" for i in range(rows)]
    f = csv_file(tmp_path / "a.csv", *first)
    assert vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(f))[0] == 0
    # Same file again: duplicates, skipped.
    code, out, _ = vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(f))
    assert code == 0 and f"{rows} already in the ledger" in out
    changed = [*first[:-1], first[-1].replace(",buy,1,", ",buy,3,")]
    g = csv_file(tmp_path / "b.csv", *changed)
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(g))
    assert code == 2 and f"b.csv:{rows + 1}" in err and "conflict" in err, err
    assert trades_count(ws) == rows


# -- no glob -----------------------------------------------------------------------------------
def test_glob_characters_in_trades_path_read_only_that_file(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    lines = [f"2025-01-01T00:00:00Z,kraken,BTC/USD,buy,1,2,0,USD,T-{i}" for i in range(600)]
    csv_file(tmp_path / "t1.csv", *lines)
    csv_file(tmp_path / "t2.csv", *[ln.replace("T-", "U-") for ln in lines])
    star = csv_file(tmp_path / "t*.csv", lines[0])  # a real file named with a star
    code, out, err = vhc(capsys, "--home", str(ws), "ledger", "import", "--trades", str(star))
    assert code == 0, err
    assert trades_count(ws) == 1


# -- the user's own paths ----------------------------------------------------------------------
def test_output_paths_that_cannot_be_files_exit_2_naming_them(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    blocker = tmp_path / "plain"
    blocker.write_text("x")
    for target in (folder, blocker / "x.json", Path("/proc/vhc-test.json")):
        for args in (
            ("ledger", "digest", "--output", str(target)),
            ("ledger", "export", "--output", str(target)),
            ("tax-report", "--year", "2025", "--output", str(target)),
        ):
            code, _, err = vhc(capsys, "--home", str(ws), *args)
            assert code == 2, (args, err)
            assert str(target) in err and len(err.strip().splitlines()) == 1, err


def test_init_on_a_regular_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    code, _, err = vhc(capsys, "init", str(plain))
    assert code == 2 and str(plain) in err, err
    code, _, err = vhc(capsys, "init", str(plain / "ws"))
    assert code == 2 and str(plain) in err, err
    assert os.path.isfile(plain)
