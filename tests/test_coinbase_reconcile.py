"""`vhc reconcile` and withdrawals against the Coinbase-protocol server with unmodified ccxt:
fills by cursor, deposits and withdrawals wallet by wallet (v2 transactions, trades skipped), a
withdrawal by address whose reply is lost, found by lookup and never resent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from ccxtkit.ledger.store import open_ledger
from ccxtkit.workspace import Workspace
from tests.coinbase_server import FILLS, CoinbaseServer
from tests.exchange_fixtures import (
    ADDR,
    add_coinbase_account,
    exchange_home,
    now_code,
    withdraw_workspace,
)
from tests.test_killswitch import run_cli
from tests.test_trade_flow import ledger_rows, run


@pytest.fixture
def coinbase() -> Iterator[CoinbaseServer]:
    with CoinbaseServer() as server:
        server.set_balance("USD", "100000")
        server.set_balance("BTC", "0.2")
        yield server


@pytest.fixture
def home(tmp_path: Path, coinbase: CoinbaseServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    return exchange_home(tmp_path, add_coinbase_account, coinbase, monkeypatch)


def outside_trade(server: CoinbaseServer, product: str, side: str, size: str) -> None:
    """A fill made on the exchange without vhc (its website, another bot)."""
    with server._lock:
        server._create({"client_order_id": f"web-{server._next()}", "product_id": product,
                        "side": side,
                        "order_configuration": {"market_market_ioc": {"base_size": size}}}, "")  # fmt: skip


def reconcile(capsys: pytest.CaptureFixture[str], home: Path, *extra: str) -> tuple[int, Any]:
    code, out, err = run(capsys, "--home", str(home), "--json", "reconcile", "--exchange",
                         "coinbase", *extra)  # fmt: skip
    assert out, err
    return code, json.loads(out)


def test_adoption_reads_fills_and_wallet_deposits_then_clean(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    outside_trade(coinbase, "BTC-USD", "BUY", "0.01")
    outside_trade(coinbase, "ETH-USD", "BUY", "0.5")
    coinbase.add_deposit("BTC", "0.05")
    coinbase.add_deposit("USD", "250", fiat=True)
    code, doc = reconcile(capsys, home, "--auto-sync")
    assert code == 0, doc
    acct = doc["accounts"]["coinbase"]
    assert sum(f["action"] == "adopted" for f in acct["findings"]) == 4  # 2 fills + 2 deposits
    trades = ledger_rows(home, "SELECT trade_id, fee_currency FROM trades ORDER BY trade_id")
    assert trades == sorted((f.trade_id, "USD") for f in coinbase.fills)
    transfers = ledger_rows(
        home, "SELECT kind, asset, amount FROM transfers WHERE kind = 'deposit' ORDER BY asset"
    )
    assert transfers == [("deposit", "BTC", D("0.05")), ("deposit", "USD", D("250"))]
    wallets = {r.path.split("/")[3] for r in coinbase.requests_to("/v2/accounts/")}
    assert wallets == {coinbase.wallet_id(a) for a in ("BTC", "ETH", "USD")}  # every wallet
    code, doc = reconcile(capsys, home, "--date", "today")
    assert code == 0 and doc["accounts"]["coinbase"]["findings"] == [], doc


def test_a_withdrawal_vhc_did_not_make_is_a_finding(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert reconcile(capsys, home, "--auto-sync")[0] == 0
    coinbase.add_withdrawal("BTC", "0.1")
    code, doc = reconcile(capsys, home, "--date", "today")
    assert code == 1
    kinds = [f["kind"] for f in doc["accounts"]["coinbase"]["findings"]]
    assert "unknown_withdrawal" in kinds, kinds


def test_more_fills_than_a_page_follow_the_cursor(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert reconcile(capsys, home, "--auto-sync")[0] == 0
    for _ in range(1005):  # fills pages hold 1000
        outside_trade(coinbase, "BTC-USD", "BUY", "0.0001")
    code, doc = reconcile(capsys, home, "--date", "today", "--auto-sync")
    assert code == 0, doc
    assert ledger_rows(home, "SELECT count(DISTINCT trade_id) FROM trades") == [(1005,)]
    assert any("cursor" in r.params for r in coinbase.requests_to(FILLS))


# -- withdrawals -----------------------------------------------------------------------------
@pytest.fixture
def ws(tmp_path: Path, coinbase: CoinbaseServer, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    return withdraw_workspace(tmp_path, add_coinbase_account, coinbase, monkeypatch)


def test_withdraw_by_address_lost_reply_found_not_resent(
    ws: Workspace, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    wallet = f"/v2/accounts/{coinbase.wallet_id('BTC')}/transactions"
    rc, out, err = run_cli(
        ws, ["--json", "withdraw", "request", "coinbase", "BTC", "0.1", ADDR], capsys
    )
    assert rc == 0, err
    rid = json.loads(out)["id"]
    coinbase.drop_reply_next(wallet, method="POST")
    rc, out, err = run_cli(ws, ["withdraw-approve", rid, "--auth-code", now_code()], capsys)
    assert rc == 0, err
    assert "found by lookup" in " ".join(out.split())
    (sent,) = coinbase.requests_to(wallet, "POST")
    assert sent.params["to"] == ADDR and sent.params["type"] == "send"
    assert D(sent.params["amount"]) == D("0.1") and sent.params["currency"] == "BTC"
    assert "network" not in sent.params  # Coinbase names networks its own way ("bitcoin")
    (on_exchange,) = coinbase.transfers
    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        (row,) = ledger.rows("SELECT * FROM transfers")
    assert row["transfer_id"] == on_exchange.id and row["request_id"] == rid
    assert row["kind"] == "withdrawal" and row["fee"] == D("0.0001")
    rc, out, _ = run_cli(ws, ["withdraw", "recover"], capsys)
    assert rc == 0 and "nothing to recover" in out
    assert len(coinbase.requests_to(wallet, "POST")) == 1
    assert coinbase.balance("BTC") == D("0.2") - D("0.1") - D("0.0001")


# -- ledger sync (history from before vhc) ---------------------------------------------------
def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.slow
def test_ledger_sync_backfills_fills_and_transfers_and_a_rerun_adds_nothing(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    now = {"t": at("2024-01-02T00:00:00")}
    coinbase.clock = lambda: now["t"]
    dep = coinbase.add_deposit("USD", "5000", fiat=True)
    for i in range(1100):  # more than a page of fills (1000)
        now["t"] = at("2024-03-01T00:00:00") + i * 600
        outside_trade(coinbase, "BTC-USD", "BUY", "0.0001")
    now["t"] = at("2024-05-01T00:00:00")
    wd = coinbase.add_withdrawal("BTC", "0.05", fee="0.0001")
    now["t"] = at("2024-07-01T00:00:00")

    def sync(since: str) -> Any:
        code, out, err = run(capsys, "--home", str(home), "--json", "ledger", "sync",
                             "--exchange", "coinbase", "--since", since)  # fmt: skip
        assert code == 0, out + err
        return json.loads(out)

    doc = sync("2024-01-01")
    assert doc["added"] == {"trades": 1100, "deposits": 1, "withdrawals": 1}, doc
    assert ledger_rows(home, "SELECT count(DISTINCT trade_id), count(*) FROM trades") == [
        (1100, 1100)
    ]
    assert ledger_rows(home, "SELECT kind, transfer_id, amount, coalesce(fee, 0) FROM transfers "
                       "WHERE source = 'sync' ORDER BY timestamp") == [
        ("deposit", dep, D("5000"), D(0)), ("withdrawal", wd, D("0.05"), D("0.0001")),
    ]  # fmt: skip
    assert any("cursor" in r.params for r in coinbase.requests_to(FILLS))
    again = sync("2024-01-01")
    assert again["added"] == {"trades": 0, "deposits": 0, "withdrawals": 0}
    assert ledger_rows(home, "SELECT count(*) FROM trades") == [(1100,)]
    assert run(capsys, "--home", str(home), "ledger", "verify")[0] == 0
