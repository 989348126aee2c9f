"""Reconcile reads Kite's funds, holdings and positions; the tax report refuses share trades."""

from __future__ import annotations

import csv
from decimal import Decimal as D
from pathlib import Path

import pytest

from ccxtkit.workspace import Workspace
from tests.exchange_fixtures import kite_ready, ledger, vhc
from tests.kite_server import KiteServer
from tests.test_kite_trade import BUY


@pytest.fixture
def ws(tmp_path: Path, kite_server: KiteServer, file_keyring: Path, capsys) -> Workspace:
    return kite_ready(tmp_path, kite_server, capsys)


def report_rows(ws: Workspace) -> dict[str, dict[str, str]]:
    path = ws.home / "reports" / "reconciliation_2026-12-01.csv"
    with path.open() as handle:
        return {r["asset"]: r for r in csv.DictReader(handle) if r["exchange"] == "zerodha"}


def test_reconcile_is_clean_after_trading_and_finds_a_fill_the_ledger_lacks(
    ws, kite_server, capsys
):
    code, out, err = vhc(capsys, ws, "reconcile", "--date", "2026-12-01", "--auto-sync")
    assert code == 0, out + err  # opening funds adopted
    code, out, err = vhc(capsys, ws, *BUY, "--product", "CNC")
    assert code == 0, out + err
    code, out, err = vhc(capsys, ws, "reconcile", "--date", "2026-12-01")
    assert code == 0, out + err
    rows = report_rows(ws)
    assert set(rows) == {"INR", "NSE:INFY"}
    assert (rows["NSE:INFY"]["local_balance"], rows["NSE:INFY"]["exchange_balance"]) == ("10", "10")
    assert rows["INR"]["exchange_balance"] == rows["INR"]["local_balance"] == "985000"
    # A fill made outside vhc (in the Kite app): reconcile says so.
    kite_server.set_holding("SBIN", 3, "790")
    code, out, err = vhc(capsys, ws, "reconcile", "--date", "2026-12-01")
    assert code == 1, out + err
    assert "NSE:SBIN" in report_rows(ws)


def test_the_usd_column_values_rupees_and_shares_at_the_recorded_usd_inr_rate(
    ws, kite_server, capsys
):
    code, out, err = vhc(capsys, ws, "reconcile", "--date", "2026-12-01", "--auto-sync")
    assert code == 0, out + err
    code, out, err = vhc(capsys, ws, *BUY, "--product", "CNC")
    assert code == 0, out + err
    code, out, err = vhc(capsys, ws, "reconcile", "--date", "2026-12-01")
    assert code == 0, out + err
    rows = report_rows(ws)
    assert rows["INR"]["discrepancy_usd"] == rows["NSE:INFY"]["discrepancy_usd"] == "0.00"
    # 3 SBIN bought in the Kite app at 800 INR: 2400 INR at 83.20 INR per USD.
    kite_server.set_holding("SBIN", 3, "790")
    code, out, err = vhc(capsys, ws, "reconcile", "--date", "2026-12-01")
    assert code == 1, out + err
    assert report_rows(ws)["NSE:SBIN"]["discrepancy_usd"] == "28.85"
    path = ws.home / "reports" / "reconciliation_2026-12-01_findings.csv"
    with path.open() as handle:
        (finding,) = [r for r in csv.DictReader(handle) if r["subject"] == "NSE:SBIN"]
    assert finding["value_usd"] == "28.85"
    # The rate values the report; it is not recorded again as a price of the day.
    assert ledger(ws, "SELECT count(*) FROM prices WHERE source = 'reconcile'") == [(0,)]


def test_tax_report_refuses_share_trades_with_a_clear_message(ws, kite_server, capsys):
    code, out, err = vhc(capsys, ws, *BUY)
    assert code == 0, out + err
    code, out, err = vhc(capsys, ws, "tax-report", "--year", "2026")
    assert code == 2
    assert "tax-report covers crypto only" in err and "zerodha" in err and "code W" in err
    assert not (ws.home / "reports" / "tax_2026.csv").exists()


def test_ledger_sync_backfills_the_days_trades_made_outside_vhc(ws, kite_server, capsys):
    from kiteconnect import KiteConnect

    app = KiteConnect(kite_server.api_key, kite_server.issue_access_token(), root=kite_server.url)
    app.place_order("regular", "NSE", "SBIN", "BUY", 7, "CNC", "MARKET", tag="fromtheapp")
    code, out, err = vhc(capsys, ws, "ledger", "sync", "--exchange", "zerodha",
                         "--since", "2026-12-01")  # fmt: skip
    assert code == 0, out + err
    rows = ledger(ws, "SELECT symbol, asset, quote, side, amount, price FROM trades")
    assert rows == [("NSE:SBIN", "NSE:SBIN", "INR", "buy", D(7), D(800))]
    code, out, err = vhc(capsys, ws, "ledger", "sync", "--exchange", "zerodha",
                         "--since", "2026-12-01")  # fmt: skip
    assert code == 0 and ledger(ws, "SELECT count(*) FROM trades") == [(1,)]  # once only
