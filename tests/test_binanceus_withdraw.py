"""Withdrawals through unmodified ccxt.binanceus against the Binance.US look-alike: by address
(no withdrawal key), a lost reply found by lookup and never resent."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pyotp
import pytest
import yaml

from ccxtkit.auth import totp
from ccxtkit.ledger.store import open_ledger
from ccxtkit.withdrawals import allowlist
from ccxtkit.workspace import Workspace, write_private
from tests.binanceus_server import BinanceUSServer
from tests.test_killswitch import run_cli

ADDR = "bc1qcoldwalletaddressforvhctests0000000000"
SETUP = datetime.now(UTC) - timedelta(days=2)
APPLY = "/sapi/v1/capital/withdraw/apply"


@pytest.fixture
def binance() -> Iterator[BinanceUSServer]:
    with BinanceUSServer() as server:
        server.set_balance("BTC", "1")
        yield server


@pytest.fixture
def ws(tmp_path: Path, binance: BinanceUSServer, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv("VHC_TOTP_SECRET", raising=False)
    cfg = {
        "version": "1.0",
        "exchanges": {
            "binanceus": {
                "secrets": "env",
                "rate_limit": 1000,
                "ccxt": {**binance.ccxt_config(), "timeout": 3000},
            }
        },
        "secrets": {"backend": "env"},
        "withdrawals": {"daily_limit_usd": 20000, "require_two_approvals_over": 10000},
    }
    write_private(tmp_path / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    monkeypatch.setenv("BINANCEUS_API_KEY", binance.api_key)
    monkeypatch.setenv("BINANCEUS_API_SECRET", binance.api_secret)
    workspace = Workspace.locate(str(tmp_path))
    monkeypatch.delenv("VHC_CONTROL_KEY", raising=False)
    enrolled = totp.enrol(workspace, "admin", backend="env", now=SETUP)
    for name, value in enrolled.exports.items():  # VHC_TOTP_SECRET and VHC_CONTROL_KEY
        monkeypatch.setenv(name, value)
    secret = enrolled.secret
    assert secret is not None
    allowlist.add_entry(
        workspace, "BTC", ADDR, "BTC", None, pyotp.TOTP(secret).at(SETUP), now=SETUP
    )
    return workspace


def now_code(ws: Workspace) -> str:
    return pyotp.TOTP(os.environ["VHC_TOTP_SECRET"]).now()


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
    rc, out, err = run_cli(ws, ["withdraw-approve", rid, "--auth-code", now_code(ws)], capsys)
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
