"""`vhc kill-switch --activate --flatten` leaves the books right: every order it cancelled and
every sale it made is on the record like any other order, lost replies included."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.exchange_fixtures import add_kraken_account
from tests.kraken_server import KrakenServer
from tests.test_risk_orders import rows, run, workspace


def _opened(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    """Adopt the accounts' opening balances, so that reconcile has a starting point."""
    code, out, err = run(capsys, home, "reconcile", "--date", "today", "--auto-sync")
    assert code in (0, 1), out + err
    code, out, err = run(capsys, home, "reconcile", "--date", "today")
    assert code == 0, out + err


def _activate_flatten(capsys: pytest.CaptureFixture[str], home: Path) -> dict[str, object]:
    code, out, err = run(
        capsys, home, "--json", "kill-switch", "--activate", "--reason", "drill", "--flatten"
    )
    assert code == 0, err
    doc: dict[str, object] = json.loads(out)
    return doc


def _books_agree(capsys: pytest.CaptureFixture[str], home: Path, sold: set[str]) -> None:
    code, out, err = run(capsys, home, "--json", "trade", "orders")
    assert code == 0, err
    assert json.loads(out) == []  # no open order left on the record
    code, out, err = run(capsys, home, "reconcile", "--date", "today")
    assert code == 0, out + err
    year = datetime.now(UTC).year
    report = home / "reports" / "tax.csv"
    code, out, err = run(capsys, home, "tax-report", "--year", str(year), "--output", str(report))
    assert code == 0, err
    with report.open() as handle:
        described = " ".join(" ".join(r.values()) for r in csv.DictReader(handle))
    for asset in sold:
        assert asset in described, (asset, described)


def test_flatten_on_paper_records_cancels_and_sales(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = workspace(tmp_path)
    _opened(capsys, home)
    assert run(capsys, home, "trade", "buy", "BTC/USD", "0.05")[0] == 0
    assert run(capsys, home, "trade", "buy", "ETH/USD", "1")[0] == 0
    code, _, err = run(
        capsys, home, "trade", "buy", "BTC/USD", "0.01", "--type", "limit", "--price", "50000"
    )
    assert code == 0, err
    doc = _activate_flatten(capsys, home)
    (account,) = doc["accounts"]  # type: ignore[misc]
    assert len(account["canceled"]) == 1
    closed = {c["asset"]: c for c in account["closed"]}
    assert closed["BTC"]["status"] == "closed" and closed["ETH"]["status"] == "closed"
    sells = rows(home, "SELECT asset, amount, source FROM trades WHERE side = 'sell' ORDER BY 1")
    assert [(a, s) for a, _, s in sells] == [("BTC", "kill_switch"), ("ETH", "kill_switch")]
    intents = rows(home, "SELECT source, side FROM orders WHERE source = 'kill_switch'")
    assert len(intents) == 2
    cancelled = rows(home, "SELECT count(*) FROM order_events WHERE event = 'canceled'")
    assert cancelled == [(1,)]
    _books_agree(capsys, home, {"BTC", "ETH"})
    code, _, err = run(capsys, home, "ledger", "verify")
    assert code == 0, err


def test_lost_reply_during_flatten_is_looked_up_not_resold(
    tmp_path: Path,
    kraken_server: KrakenServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = workspace(tmp_path)
    add_kraken_account(home, kraken_server, monkeypatch)
    kraken_server.set_balance("USD", "100000")
    kraken_server.set_price("BTC/USD", "60000")
    buy = ("trade", "buy", "BTC/USD", "0.1", "--exchange", "kraken", "--yes")
    assert run(capsys, home, *buy)[0] == 0
    kraken_server.drop_reply_next("AddOrder")
    doc = _activate_flatten(capsys, home)
    kraken = next(a for a in doc["accounts"] if a["account"] == "kraken")  # type: ignore[attr-defined]
    (sale,) = kraken["closed"]
    assert sale["status"] == "closed", kraken  # found by its client id, not "failed"
    assert len(kraken_server.requests_to("AddOrder")) == 2  # the buy, and the sale once
    recorded = rows(
        home, "SELECT trade_id, side FROM trades WHERE exchange = 'kraken' ORDER BY seq"
    )
    assert [t for t, _ in recorded] == [t.txid for t in kraken_server.trades]  # each fill once
    assert [s for _, s in recorded] == ["buy", "sell"]
    state = rows(
        home,
        "SELECT e.event FROM order_events e JOIN orders o USING (exchange, client_order_id) "
        "WHERE o.source = 'kill_switch' AND o.exchange = 'kraken' ORDER BY e.seq",
    )
    assert [e for (e,) in state][-1] == "filled"
    code, out, _ = run(capsys, home, "--json", "trade", "orders")
    assert json.loads(out) == []


def _hold_ledger(ledger_path: Path) -> subprocess.Popen[str]:
    code = (
        "import sys\n"
        "from ccxtkit.ledger.store import open_ledger\n"
        f"with open_ledger(__import__('pathlib').Path({str(ledger_path)!r}), 5):\n"
        "    print('held', flush=True)\n"
        "    sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_flatten_while_the_ledger_is_busy_is_resolved_by_the_next_writer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = workspace(tmp_path)
    _opened(capsys, home)
    assert run(capsys, home, "trade", "buy", "BTC/USD", "0.05")[0] == 0
    code, _, err = run(
        capsys, home, "trade", "buy", "BTC/USD", "0.01", "--type", "limit", "--price", "50000"
    )
    assert code == 0, err
    holder = _hold_ledger(home / "ledger" / "vhc.duckdb")
    try:
        doc = _activate_flatten(capsys, home)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
        if holder.stdout:
            holder.stdout.close()
    (account,) = doc["accounts"]  # type: ignore[misc]
    assert [c["status"] for c in account["closed"]] == ["closed"]  # sold despite the busy ledger
    journal = home / "state" / "emergency_orders.jsonl"
    assert journal.exists()
    code, out, err = run(capsys, home, "trade", "recover")
    assert code == 0, err
    assert not journal.read_text().strip()
    sells = rows(home, "SELECT amount, source FROM trades WHERE side = 'sell'")
    assert sells == [(D("0.05").quantize(D("1E-18")), "recover")]
    assert rows(home, "SELECT count(*) FROM orders WHERE source = 'kill_switch'") == [(1,)]
    # Recover again: nothing new, nothing doubled.
    code, out, _ = run(capsys, home, "trade", "recover")
    assert "nothing to recover" in out
    _books_agree(capsys, home, {"BTC"})


def test_after_a_busy_ledger_flatten_reconcile_settles_it_without_another_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = workspace(tmp_path)
    _opened(capsys, home)
    assert run(capsys, home, "trade", "buy", "BTC/USD", "0.05")[0] == 0
    holder = _hold_ledger(home / "ledger" / "vhc.duckdb")
    try:
        doc = _activate_flatten(capsys, home)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
        if holder.stdout:
            holder.stdout.close()
    (account,) = doc["accounts"]  # type: ignore[misc]
    assert [c["status"] for c in account["closed"]] == ["closed"]
    _books_agree(capsys, home, {"BTC"})  # reconcile first settles the journalled sale
    sells = rows(home, "SELECT amount FROM trades WHERE side = 'sell'")
    assert sells == [(D("0.05").quantize(D("1E-18")),)]  # once, not doubled
