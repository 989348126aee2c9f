"""`vhc ledger sync` against the Kraken-protocol server with unmodified ccxt: history from
before vhc, over many pages and windows, recorded once; resumed after a crash; taxed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from ccxtkit.workspace import init_workspace
from tests.crash import run_vhc
from tests.exchange_fixtures import add_kraken_account
from tests.kraken_server import KrakenServer
from tests.test_reconcile_paper import rows, run


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Clock:
    """The server's clock, moved by the test (history from before vhc)."""

    def __init__(self, start: str) -> None:
        self.now = at(start)

    def __call__(self) -> float:
        return self.now

    def set(self, text: str) -> None:
        self.now = at(text)


def fill(server: KrakenServer, clock: Clock, when: str, side: str, volume: str, price: str) -> str:
    """A market fill made on the exchange at `when`, outside vhc; its trade id."""
    clock.set(when)
    with server._lock:
        server.set_price("BTC/USD", price)
        server._private_AddOrder({"pair": "XBTUSD", "type": side, "ordertype": "market",
                                  "volume": volume})  # fmt: skip
        return server.trades[-1].txid


@pytest.fixture
def clock(kraken_server: KrakenServer) -> Clock:
    c = Clock("2024-01-01T00:00:00")
    kraken_server.clock = c
    return c


@pytest.fixture
def home(tmp_path: Path, kraken_server: KrakenServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "ws"
    init_workspace(ws)
    add_kraken_account(ws, kraken_server, monkeypatch)
    return ws


def sync(capsys: pytest.CaptureFixture[str], home: Path, since: str = "2024-01-01") -> Any:
    code, out, err = run(capsys, "--home", str(home), "--json", "ledger", "sync", "--exchange",
                         "kraken", "--since", since)  # fmt: skip
    assert code == 0, out + err
    return json.loads(out)


def verify(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, err = run(capsys, "--home", str(home), "ledger", "verify")
    assert code == 0, out + err


def test_sync_backfills_across_pages_and_a_rerun_adds_nothing(
    home: Path, kraken_server: KrakenServer, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    kraken_server.set_balance("USD", "1000000")
    dep = kraken_server.add_deposit("USD", "5000", when=at("2024-01-02T00:00:00"))
    ids = [fill(kraken_server, clock, f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:00:00",
                "buy", "0.001", "40000") for i in range(120)]  # fmt: skip
    wd = kraken_server.add_withdrawal("USD", "100", fee="1", when=at("2024-05-01T00:00:00"))
    clock.set("2024-07-01T00:00:00")
    doc = sync(capsys, home)
    assert doc["added"] == {"trades": 120, "deposits": 1, "withdrawals": 1}
    assert doc["conflicts"] == [] and doc["batches"] >= 3
    assert rows(home, "SELECT count(DISTINCT trade_id), count(*), min(source) FROM trades") == [
        (120, 120, "sync")
    ]
    assert sorted(r[0] for r in rows(home, "SELECT trade_id FROM trades")) == sorted(ids)
    assert rows(home, "SELECT kind, transfer_id, amount, coalesce(fee, 0) FROM transfers "
                "WHERE exchange = 'kraken' ORDER BY timestamp") == [
        ("deposit", dep, D(5000), D(0)), ("withdrawal", wd, D(100), D(1))
    ]  # fmt: skip
    pages = {r.params.get("ofs") for r in kraken_server.requests_to("TradesHistory")}
    assert {"0", "50", "100"} <= pages  # 120 fills: kraken's 50-row pages were all walked

    # A re-run adds nothing (it re-reads only a short overlap before the recorded cursor).
    before = len(kraken_server.requests_to("TradesHistory"))
    again = sync(capsys, home)
    assert again["added"] == {"trades": 0, "deposits": 0, "withdrawals": 0}
    assert set(again["resumed_from"]) == {"trades", "deposits", "withdrawals"}
    assert len(kraken_server.requests_to("TradesHistory")) - before <= 2
    assert rows(home, "SELECT count(*) FROM trades") == [(120,)]
    assert rows(home, "SELECT count(*) FROM transfers WHERE exchange = 'kraken'") == [(2,)]
    # An explicit earlier start re-reads everything: still nothing twice.
    assert sync(capsys, home, "2023-06-01")["added"]["trades"] == 0
    assert rows(home, "SELECT count(*) FROM trades") == [(120,)]
    verify(capsys, home)


def test_a_conflicting_id_is_reported_not_duplicated(
    home: Path, kraken_server: KrakenServer, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    kraken_server.set_balance("USD", "100000")
    tid = fill(kraken_server, clock, "2024-02-01T00:00:00", "buy", "0.01", "40000")
    clock.set("2024-03-01T00:00:00")
    csv = home / "mine.csv"
    csv.write_text(
        "timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id\n"
        f"2024-02-01T00:00:00Z,kraken,BTC/USD,buy,0.02,40000,1.04,USD,{tid}\n"
    )
    code, _, err = run(capsys, "--home", str(home), "ledger", "import", "--trades", str(csv))
    assert code == 0, err
    code, out, err = run(capsys, "--home", str(home), "--json", "ledger", "sync", "--exchange",
                         "kraken", "--since", "2024-01-01")  # fmt: skip
    assert code == 1, out + err
    doc = json.loads(out)
    assert doc["conflicts"] == [f"trade {tid}"] and doc["added"]["trades"] == 0
    assert rows(home, "SELECT amount FROM trades") == [(D("0.02"),)]
    subjects = rows(home, "SELECT subject FROM control_events WHERE kind = 'trade.conflict'")
    assert subjects == [(f"kraken:{tid}",)]


def test_pending_transfer_is_not_recorded_and_picked_up_once_complete(
    home: Path, kraken_server: KrakenServer, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = kraken_server.add_deposit("USD", "700", status="Pending", when=at("2024-02-01T00:00:00"))
    clock.set("2024-06-01T00:00:00")
    doc = sync(capsys, home)
    assert doc["added"]["deposits"] == 0 and doc["pending"] == [f"deposit {ref}"]
    kraken_server.set_transfer_status(ref, "Success")
    doc = sync(capsys, home)  # the cursor stayed before it: the completed deposit is found
    assert doc["added"]["deposits"] == 1
    assert rows(home, "SELECT transfer_id, status FROM transfers WHERE exchange = 'kraken'") == [
        (ref, "ok")
    ]


def test_crash_mid_batch_then_sync_resumes_and_records_each_once(
    home: Path, kraken_server: KrakenServer, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    kraken_server.set_balance("USD", "1000000")
    # Fills in three months far apart: several windows, so the crash leaves earlier ones done.
    for month in ("01", "06", "11"):
        for i in range(5):
            fill(kraken_server, clock, f"2024-{month}-1{i}T00:00:00", "buy", "0.001", "40000")
    clock.set("2024-12-31T00:00:00")
    args = ["--json", "ledger", "sync", "--exchange", "kraken", "--since", "2024-01-01"]
    crashed = run_vhc(home, args, crash_at="ledger.sync.mid_batch#2")
    assert crashed.crashed, (crashed.code, crashed.err)
    # The first batch committed with its cursor; the second was in flight and left nothing.
    assert rows(home, "SELECT count(*) FROM trades") == [(5,)]
    cursors = rows(home, "SELECT count(*) FROM control_events WHERE kind = 'ledger.sync.cursor'")
    assert cursors == [(1,)]
    verify(capsys, home)
    doc = sync(capsys, home)
    assert doc["resumed_from"]["trades"] > "2024-01-15"  # not from the start again
    assert doc["added"]["trades"] == 10
    assert rows(home, "SELECT count(*), count(DISTINCT trade_id) FROM trades") == [(15, 15)]
    verify(capsys, home)


def test_tax_report_over_backfilled_history_matches_the_hand_computed_gain(
    home: Path, kraken_server: KrakenServer, clock: Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    kraken_server.add_deposit("USD", "50000", when=at("2024-01-02T00:00:00"))
    fill(kraken_server, clock, "2024-02-01T00:00:00", "buy", "0.5", "40000")
    fill(kraken_server, clock, "2024-06-01T00:00:00", "sell", "0.2", "60000")
    clock.set("2024-12-31T00:00:00")
    assert sync(capsys, home)["added"] == {"trades": 2, "deposits": 1, "withdrawals": 0}
    code, out, err = run(capsys, "--home", str(home), "--json", "tax-report", "--year", "2024")
    assert code == 0, out + err
    doc = json.loads(out)
    # By hand: bought 0.5 BTC for 20,000 + 52 fee (0.26%) -> 40,104 per BTC; sold 0.2 at
    # 60,000 = 12,000 - 31.20 fee = 11,968.80 proceeds; basis 0.2 x 40,104 = 8,020.80;
    # gain 3,948.00, short term; every lot's basis known (no opening balance needed).
    assert doc["short_term"] == {"proceeds": "11968.8", "cost_basis": "8020.8", "gain": "3948"}
    assert doc["long_term"]["gain"] == "0" and doc["unknown_basis_rows"] == 0
    # Reconcile then adopts nothing: the backfill explains the whole balance.
    code, out, err = run(capsys, "--home", str(home), "--json", "reconcile", "--exchange",
                         "kraken", "--auto-sync")  # fmt: skip
    assert code == 0, out + err
    assert json.loads(out)["accounts"]["kraken"]["adopted"] == {}
    assert rows(
        home,
        "SELECT count(*) FROM transfers WHERE kind = 'opening_balance' AND exchange = 'kraken'",
    ) == [(0,)]


def test_sync_refuses_bad_input_in_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--home", str(home), "ledger", "sync", "--exchange", "kraken",
                         "--since", "last tuesday")  # fmt: skip
    assert code == 2 and "--since" in err and "Traceback" not in err
    code, out, err = run(capsys, "--home", str(home), "ledger", "sync", "--exchange", "nope",
                         "--since", "2024-01-01")  # fmt: skip
    assert code == 2 and "nope" in err
