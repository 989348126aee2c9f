"""`vhc exchanges`: per account, which guarantees hold (order lookup proven or not, history,
ledger, cancel-all, sandbox, withdrawals), from ccxt's `has` and vhc's own tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccxtkit.exchanges.capabilities import for_exchange
from ccxtkit.workspace import init_workspace, write_private
from tests.binanceus_server import BinanceUSServer
from tests.exchange_fixtures import add_binanceus_account, add_kraken_account
from tests.test_trade_flow import run


@pytest.fixture
def binance() -> Iterator[BinanceUSServer]:
    with BinanceUSServer() as server:
        yield server


def test_guarantees_per_exchange() -> None:
    kraken, binanceus = for_exchange("kraken"), for_exchange("binanceus")
    gemini, bitfinex, coinbase = for_exchange("gemini"), for_exchange("bitfinex"), for_exchange("coinbase")  # fmt: skip
    assert kraken and binanceus and gemini and bitfinex and coinbase
    assert (kraken.order_lookup, binanceus.order_lookup) == ("proven", "proven")
    assert "cl_ord_id" in kraken.order_lookup_how and "-2013" in binanceus.order_lookup_how
    assert kraken.protocol == "proven (tests/kraken_server.py)"
    assert binanceus.protocol == "proven (tests/binanceus_server.py)"
    assert kraken.withdrawals.startswith("by named key") and binanceus.withdrawals == "by address"
    assert kraken.exchange_ledger.startswith("yes") and binanceus.exchange_ledger.startswith("no")
    assert binanceus.fills_history.startswith("yes, market by market")
    assert binanceus.sandbox == "no"  # ccxt's test URLs are Binance.com's testnet
    assert coinbase.order_lookup == "proven" and "has_next" in coinbase.order_lookup_how
    assert coinbase.protocol == "proven (tests/coinbase_server.py)"
    for other in (gemini, bitfinex):
        assert other.order_lookup == "unproven" and other.protocol == "unproven"
        assert other.notes and other.notes.startswith("not proven")
    assert gemini.fills_history.startswith("no") and gemini.transfers_history == "no"
    assert bitfinex.transfers_history == "no" and bitfinex.cancel_all == "native"
    assert for_exchange("not-an-exchange") is None


def accounts(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["account"]: a for a in doc["accounts"]}


def test_vhc_exchanges_shows_guarantees_and_live_trading(
    tmp_path: Path,
    binance: BinanceUSServer,
    kraken_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "ws"
    init_workspace(home)
    add_binanceus_account(home, binance, monkeypatch)
    add_kraken_account(home, kraken_server, monkeypatch)
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["exchanges"]["gemini"] = {"secrets": "env"}
    data["exchanges"]["bitfinex"] = {"secrets": "env", "allow_unproven_lookup": True}
    data["exchanges"]["gemini-test"] = {"id": "gemini", "secrets": "env", "sandbox": True}
    write_private(path, yaml.safe_dump(data))
    code, out, err = run(capsys, "--home", str(home), "--json", "exchanges")
    assert code == 5, err  # gemini and bitfinex have no keys here: reported, not hidden
    shown = accounts(json.loads(out))
    assert shown["binanceus"]["guarantees"]["order_lookup"] == "proven"
    assert shown["binanceus"]["live_trading"] == "allowed" and shown["binanceus"]["markets"] == 4
    assert shown["kraken"]["guarantees"]["withdrawals"].startswith("by named key")
    assert shown["gemini"]["live_trading"].startswith("refused")
    assert shown["gemini"]["guarantees"]["notes"].startswith("not proven")
    assert shown["bitfinex"]["live_trading"].startswith("allowed, warned")
    assert shown["gemini-test"]["live_trading"].startswith("not live")
    assert shown["paper"]["guarantees"]["order_lookup"] == "proven"
    code, out, err = run(capsys, "--home", str(home), "exchanges", "--exchange", "binanceus")
    assert code == 0, err
    assert "order lookup by client id" in out and "origClientOrderId" in out
    assert "deposits/withdrawals history" in out and "cancel-all" in out
    code, out, _ = run(capsys, "--home", str(home), "--json", "doctor")
    checks = [c for c in json.loads(out)["checks"] if c["area"] == "guarantees"]
    by_account = {c["detail"].split(":")[0]: c for c in checks}
    assert by_account["binanceus"]["status"] == "ok" and by_account["kraken"]["status"] == "ok"
    assert by_account["gemini"]["status"] == "warn" and "refused" in by_account["gemini"]["detail"]
    assert (
        by_account["bitfinex"]["status"] == "warn" and "warned" in by_account["bitfinex"]["detail"]
    )
