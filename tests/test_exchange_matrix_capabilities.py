"""The capability report's rows for the five exchanges the seed names: Kraken, Binance.US and
Coinbase proven by their protocol servers; Gemini and Bitfinex say what is and is not proven."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ccxtkit.exchanges.capabilities import PROVEN_BY_TEST_SERVER, for_exchange
from ccxtkit.workspace import init_workspace, write_private
from tests.coinbase_server import CoinbaseServer
from tests.exchange_fixtures import add_coinbase_account
from tests.test_trade_flow import run


def test_every_proven_exchange_has_its_server_and_a_proven_lookup() -> None:
    assert set(PROVEN_BY_TEST_SERVER) == {"kraken", "binanceus", "coinbase"}
    for ccxt_id, server in PROVEN_BY_TEST_SERVER.items():
        caps = for_exchange(ccxt_id)
        assert caps and caps.order_lookup == "proven" and caps.protocol == f"proven ({server})"
        assert (Path(__file__).parent.parent / server).is_file()


def test_coinbase_row() -> None:
    caps = for_exchange("coinbase")
    assert caps is not None
    assert "has_next" in caps.order_lookup_how and "two full walks" in caps.order_lookup_how
    assert caps.fills_history == "yes, following the cursor to its end"
    assert caps.transfers_history.startswith("yes, wallet by wallet")
    assert caps.exchange_ledger.startswith("no")  # ccxt's fetch_ledger needs one wallet
    assert caps.withdrawals == "by address" and caps.sandbox == "no"
    assert caps.cancel_all == "one order at a time"  # batch_cancel by id, no cancel-all
    assert caps.notes and "client_order_id" in caps.notes


@pytest.mark.parametrize("ccxt_id", ["gemini", "bitfinex"])
def test_gemini_and_bitfinex_say_nothing_is_proven(ccxt_id: str) -> None:
    caps = for_exchange(ccxt_id)
    assert caps is not None
    assert caps.order_lookup == "unproven" and caps.protocol == "unproven"
    assert "cannot prove absence" in caps.order_lookup_how
    assert caps.notes and caps.notes.startswith("not proven: no test server")
    assert f"ccxt's {ccxt_id} class only" in caps.notes
    assert caps.transfers_history == "no" and "fetchDepositsWithdrawals only" in caps.notes


def test_gemini_and_bitfinex_specifics() -> None:
    gemini, bitfinex = for_exchange("gemini"), for_exchange("bitfinex")
    assert gemini and bitfinex
    assert gemini.notes and "no closed orders" in gemini.notes and "stays unknown" in gemini.notes
    assert gemini.fills_history.startswith("no") and gemini.cancel_all == "one order at a time"
    assert gemini.sandbox == "yes" and "sandbox" in gemini.notes and "untested" in gemini.notes
    assert bitfinex.notes and "one page of closed ones" in bitfinex.notes
    assert bitfinex.cancel_all == "native" and bitfinex.sandbox == "no"


@pytest.fixture
def coinbase() -> Iterator[CoinbaseServer]:
    with CoinbaseServer() as server:
        yield server


def test_vhc_exchanges_and_doctor_show_coinbase_proven_and_the_others_refused(
    tmp_path: Path,
    coinbase: CoinbaseServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "ws"
    init_workspace(home)
    add_coinbase_account(home, coinbase, monkeypatch)
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["exchanges"]["gemini"] = {"secrets": "env"}
    data["exchanges"]["bitfinex"] = {"secrets": "env"}
    write_private(path, yaml.safe_dump(data))
    code, out, err = run(capsys, "--home", str(home), "--json", "exchanges")
    assert code == 5, err  # gemini and bitfinex have no keys here: reported, not hidden
    shown = {a["account"]: a for a in json.loads(out)["accounts"]}
    assert shown["coinbase"]["live_trading"] == "allowed" and shown["coinbase"]["markets"] == 3
    assert shown["coinbase"]["guarantees"]["protocol"] == "proven (tests/coinbase_server.py)"
    for other in ("gemini", "bitfinex"):
        assert shown[other]["live_trading"].startswith("refused")
        assert shown[other]["guarantees"]["notes"].startswith("not proven")
    code, out, err = run(capsys, "--home", str(home), "exchanges", "--exchange", "coinbase")
    assert code == 0, err
    assert "has_next" in " ".join(out.split()) and "wallet by wallet" in " ".join(out.split())
    code, out, _ = run(capsys, "--home", str(home), "--json", "doctor")
    checks = [c for c in json.loads(out)["checks"] if c["area"] == "guarantees"]
    by_account = {c["detail"].split(":")[0]: c for c in checks}
    assert by_account["coinbase"]["status"] == "ok"
    assert by_account["gemini"]["status"] == "warn" and by_account["bitfinex"]["status"] == "warn"
