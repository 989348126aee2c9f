"""A real fill whose id the ledger already holds with other values is a conflict, not a
duplicate: it is reported on the record, never silently skipped (issue 14, finding 6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ccxtkit.workspace import init_workspace
from tests.test_trade_flow import ledger_rows, run


def test_a_pre_imported_row_with_a_real_fills_id_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "ws"
    init_workspace(home)
    # The paper exchange's first fill will be PT-1: someone imported a row with that id first.
    csv = tmp_path / "trades.csv"
    csv.write_text(
        "timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id\n"
        "2025-01-23T14:05:00Z,paper,BTC/USD,buy,5,1,0,USD,PT-1\n"
    )
    code, _, err = run(capsys, "--home", str(home), "ledger", "import", "--trades", str(csv))
    assert code == 0, err
    code, _, err = run(capsys, "--home", str(home), "trade", "buy", "BTC/USD", "0.01")
    assert code == 0, err
    [(details,)] = ledger_rows(
        home, "SELECT details FROM control_events WHERE kind = 'trade.conflict'"
    )
    doc = json.loads(details)
    assert doc["trade_id"] == "PT-1" and doc["exchange"] == "paper"
    assert doc["exchange_fill"]["amount"] == "0.01"
    assert ledger_rows(home, "SELECT count(*) FROM trades WHERE trade_id = 'PT-1'") == [(1,)]


def test_the_same_fill_seen_twice_is_a_plain_duplicate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "ws"
    init_workspace(home)
    code, _, err = run(capsys, "--home", str(home), "trade", "buy", "BTC/USD", "0.01")
    assert code == 0, err
    code, _, err = run(capsys, "--home", str(home), "trade", "recover")
    assert code == 0, err
    assert ledger_rows(home, "SELECT count(*) FROM control_events "
                             "WHERE kind = 'trade.conflict'") == [(0,)]  # fmt: skip
