"""`vhc reconcile` against the Kraken-protocol server with unmodified ccxt: pagination over
several pages, a fee charged in a third currency, an injected withdrawal, an unreadable account."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ccxtkit.workspace import init_workspace
from tests.exchange_fixtures import add_kraken_account
from tests.kraken_server import KrakenServer
from tests.test_reconcile_paper import rows, run


def outside_trade(server: KrakenServer, volume: str = "0.001", side: str = "buy") -> None:
    """A fill made on the exchange without vhc (its website, another bot)."""
    with server._lock:
        server._private_AddOrder({"pair": "XBTUSD", "type": side, "ordertype": "market",
                                  "volume": volume})  # fmt: skip


def reconcile(capsys: pytest.CaptureFixture[str], home: Path, *extra: str) -> tuple[int, Any]:
    code, out, err = run(capsys, "--home", str(home), "--json", "reconcile", "--exchange", "kraken",
                         *extra)  # fmt: skip
    assert out, err
    return code, json.loads(out)


@pytest.fixture
def home(tmp_path: Path, kraken_server: KrakenServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    ws = tmp_path / "ws"
    init_workspace(ws)
    add_kraken_account(ws, kraken_server, monkeypatch)
    kraken_server.set_balance("USD", "100000")
    kraken_server.set_balance("BTC", "0.2")
    kraken_server.set_balance("KFEE", "10")
    return ws


def test_adoption_imports_history_across_pages_then_clean(
    home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(60):
        outside_trade(kraken_server, side="buy" if i % 3 else "sell")
    code, doc = reconcile(capsys, home, "--auto-sync")
    assert code == 0, doc
    acct = doc["accounts"]["kraken"]
    assert acct["adopted"] == {"USD": "100000", "BTC": "0.2", "KFEE": "10"}
    assert sum(f["action"] == "adopted" for f in acct["findings"]) == 60
    assert rows(home, "SELECT count(DISTINCT trade_id), min(source) FROM trades") == [
        (60, "reconcile")
    ]
    pages = {r.params.get("ofs") for r in kraken_server.requests_to("TradesHistory")}
    assert {"0", "50"} <= pages  # ccxt's kraken does not page by itself: we walked the offsets
    code, doc = reconcile(capsys, home, "--date", "today")
    assert code == 0 and doc["accounts"]["kraken"]["findings"] == []


def test_fee_in_a_third_currency(
    home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert reconcile(capsys, home, "--auto-sync")[0] == 0
    # Outside vhc, fee charged in KFEE: the sync records it in KFEE (from Ledgers), not USD.
    kraken_server.set_next_fee("KFEE", "0.5")
    outside_trade(kraken_server)
    code, doc = reconcile(capsys, home, "--auto-sync")
    assert code == 0, doc
    assert rows(home, "SELECT fee, fee_currency FROM trades") == [(Decimal("0.5"), "KFEE")]
    assert reconcile(capsys, home)[0] == 0
    # Through vhc: the trade path also reads the exchange's ledger, so the fill is recorded
    # with its fee in KFEE (ccxt alone would label it USD) and reconcile stays clean.
    kraken_server.set_next_fee("KFEE", "0.25")
    code, _, err = run(capsys, "--home", str(home), "trade", "buy", "BTC/USD", "0.001",
                       "--exchange", "kraken", "--yes")  # fmt: skip
    assert code == 0, err
    fees = rows(home, "SELECT fee, fee_currency FROM trades WHERE source = 'trade'")
    assert fees == [(Decimal("0.25"), "KFEE")]
    code, doc = reconcile(capsys, home)
    assert code == 0, doc


def test_injected_withdrawal_is_critical(
    home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert reconcile(capsys, home, "--auto-sync")[0] == 0
    refid = kraken_server.add_withdrawal("BTC", "0.1", fee="0.0005")
    kraken_server.add_deposit("USD", "25")
    code, doc = reconcile(capsys, home, "--date", "today")
    assert code == 1
    found = {f["kind"]: f for f in doc["accounts"]["kraken"]["findings"]}
    assert set(found) == {"unknown_withdrawal", "unknown_deposit"}
    assert (
        found["unknown_withdrawal"]["id"] == refid
        and found["unknown_withdrawal"]["severity"] == "critical"
    )
    status = {
        b["asset"]: (b["status"], b["discrepancy"]) for b in doc["accounts"]["kraken"]["balances"]
    }
    assert status["BTC"] == ("unknown withdrawal", "-0.1005")
    assert status["USD"] == ("missing deposit", "25")
    assert any("UNKNOWN WITHDRAWAL" in a for a in doc["alerts"])


def test_unreadable_kraken_exits_5_and_paper_is_still_reconciled(
    home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    kraken_server.fail_all = "EAPI:Invalid key"
    code, out, err = run(capsys, "--home", str(home), "--json", "reconcile", "--date", "yesterday")
    assert code == 5, err
    doc = json.loads(out)
    assert doc["accounts"]["kraken"]["error"] and doc["accounts"]["paper"]["error"] is None
    assert doc["accounts"]["paper"]["balances"][0]["asset"] == "USD"
    assert "kraken,exchange_unreadable" in Path(doc["findings_report"]).read_text()
    assert kraken_server.api_secret not in out + err
