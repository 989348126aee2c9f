"""Withdrawals through unmodified ccxt.binanceus against the Binance.US look-alike: by address
(no withdrawal key), a lost reply found by lookup and never resent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from ccxtkit.ledger.store import open_ledger
from ccxtkit.workspace import Workspace
from tests.binanceus_server import BinanceUSServer
from tests.exchange_fixtures import ADDR, add_binanceus_account, now_code, withdraw_workspace
from tests.test_killswitch import run_cli

APPLY = "/sapi/v1/capital/withdraw/apply"


@pytest.fixture
def binance() -> Iterator[BinanceUSServer]:
    with BinanceUSServer() as server:
        server.set_balance("BTC", "1")
        yield server


@pytest.fixture
def ws(tmp_path: Path, binance: BinanceUSServer, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    return withdraw_workspace(tmp_path, add_binanceus_account, binance, monkeypatch, network="BTC")


def test_withdraw_by_address_lost_reply_found_not_resent(
    ws: Workspace, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run_cli(
        ws, ["--json", "withdraw", "request", "binanceus", "BTC", "0.1", ADDR, "--network", "BTC"],
        capsys,
    )  # fmt: skip
    assert rc == 0, err
    rid = json.loads(out)["id"]
    binance.drop_reply_next(APPLY)
    rc, out, err = run_cli(ws, ["withdraw-approve", rid, "--auth-code", now_code()], capsys)
    assert rc == 0, err
    assert "found by lookup" in " ".join(out.split())
    (sent,) = binance.requests_to(APPLY)
    assert sent.params["address"] == ADDR and sent.params["network"] == "BTC"
    assert D(sent.params["amount"]) == D("0.1") and "name" not in sent.params
    (on_exchange,) = [t for t in binance.transfers if t.kind == "withdrawal"]
    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        (row,) = ledger.rows("SELECT * FROM transfers")
    assert row["transfer_id"] == on_exchange.id and row["request_id"] == rid
    rc, out, _ = run_cli(ws, ["withdraw", "recover"], capsys)
    assert rc == 0 and "nothing to recover" in out
    assert len(binance.requests_to(APPLY)) == 1
    assert binance.balance("BTC") == D("1") - D("0.1") - D("0.0001")
