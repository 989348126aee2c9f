"""`vhc reconcile` against the Binance.US-protocol server with unmodified ccxt: fills read
market by market (myTrades needs a symbol), deposits in 90-day windows, an outside withdrawal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.binanceus_server import BinanceUSServer
from tests.exchange_fixtures import add_binanceus_account, exchange_home
from tests.test_trade_flow import ledger_rows, run


@pytest.fixture
def binance() -> Iterator[BinanceUSServer]:
    with BinanceUSServer() as server:
        server.set_balance("USD", "100000")
        server.set_balance("BTC", "0.2")
        yield server


@pytest.fixture
def home(tmp_path: Path, binance: BinanceUSServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    return exchange_home(tmp_path, add_binanceus_account, binance, monkeypatch)


def outside_trade(server: BinanceUSServer, symbol: str, side: str, qty: str) -> None:
    """A fill made on the exchange without vhc (its website, another bot)."""
    with server._lock:
        server._new_order({"symbol": symbol, "side": side, "type": "MARKET", "quantity": qty})


def reconcile(capsys: pytest.CaptureFixture[str], home: Path, *extra: str) -> tuple[int, Any]:
    code, out, err = run(capsys, "--home", str(home), "--json", "reconcile", "--exchange",
                         "binanceus", *extra)  # fmt: skip
    assert out, err
    return code, json.loads(out)


def test_adoption_reads_every_market_and_old_deposits_then_clean(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    outside_trade(binance, "BTCUSD", "BUY", "0.01")
    outside_trade(binance, "ETHUSD", "BUY", "0.5")
    outside_trade(binance, "ETHBTC", "SELL", "0.1")
    binance.add_deposit("BTC", "0.05")
    code, doc = reconcile(capsys, home, "--auto-sync")
    assert code == 0, doc
    acct = doc["accounts"]["binanceus"]
    assert sum(f["action"] == "adopted" for f in acct["findings"]) == 4  # 3 fills + 1 deposit
    trades = ledger_rows(home, "SELECT trade_id, fee_currency FROM trades ORDER BY trade_id")
    assert trades == sorted((str(t.trade_id), t.commission_asset) for t in binance.trades)
    symbols = {r.params.get("symbol") for r in binance.requests_to("/api/v3/myTrades")}
    assert symbols == {"BTCUSD", "ETHUSD", "ETHBTC", "USDCUSD"}
    for r in binance.requests_to("/sapi/v1/capital/deposit/hisrec"):
        assert int(r.params["endTime"]) - int(r.params["startTime"]) < 90 * 86_400_000
    code, doc = reconcile(capsys, home, "--date", "today")
    assert code == 0 and doc["accounts"]["binanceus"]["findings"] == [], doc


def test_a_withdrawal_vhc_did_not_make_is_a_finding(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert reconcile(capsys, home, "--auto-sync")[0] == 0
    binance.add_withdrawal("BTC", "0.1")
    code, doc = reconcile(capsys, home, "--date", "today")
    assert code == 1
    kinds = [f["kind"] for f in doc["accounts"]["binanceus"]["findings"]]
    assert "unknown_withdrawal" in kinds, kinds


def test_a_day_with_more_than_a_page_of_fills(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert reconcile(capsys, home, "--auto-sync")[0] == 0
    for _ in range(1005):  # myTrades pages hold 1000
        outside_trade(binance, "BTCUSD", "BUY", "0.0002")
    code, doc = reconcile(capsys, home, "--date", "today", "--auto-sync")
    assert code == 0, doc
    assert ledger_rows(home, "SELECT count(DISTINCT trade_id) FROM trades") == [(1005,)]
    assert any("fromId" in r.params for r in binance.requests_to("/api/v3/myTrades"))
