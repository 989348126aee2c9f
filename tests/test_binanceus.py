"""Binance.US proven like Kraken: the real `vhc` CLI and unmodified ccxt.binanceus against the
Binance.US-protocol server in tests/binanceus_server.py (signing, -2013, 429/5xx, lost replies)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ccxtkit.workspace import init_workspace
from tests.binanceus_server import BinanceUSServer
from tests.exchange_fixtures import add_binanceus_account, exchange_home, order_events
from tests.test_trade_flow import ledger_rows, run

ORDER = "/api/v3/order"


@pytest.fixture
def binance() -> Iterator[BinanceUSServer]:
    with BinanceUSServer() as server:
        server.set_balance("USD", "100000")
        yield server


@pytest.fixture
def home(tmp_path: Path, binance: BinanceUSServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    return exchange_home(tmp_path, add_binanceus_account, binance, monkeypatch)


def trade(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    return run(capsys, "--home", str(home), "trade", *args, "--exchange", "binanceus", "--yes")


def test_market_buy_fills_with_the_fee_binance_really_charged(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    binance.set_price("BTC/USD", "60000")
    code, out, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0, err
    assert "CLOSED" in out and "1 fill(s) recorded" in out
    sent = binance.requests_to(ORDER, "POST")
    assert len(sent) == 1 and sent[0].params["newClientOrderId"] == binance.orders[0].client_id
    assert ledger_rows(home, "SELECT client_order_id FROM orders") == [
        (binance.orders[0].client_id,)
    ]
    assert order_events(home) == ["filled"]
    (fill,) = ledger_rows(home, "SELECT trade_id, amount, price, fee, fee_currency FROM trades")
    assert fill[0] == str(binance.trades[0].trade_id)
    assert (fill[1], fill[2]) == (Decimal("0.01"), Decimal("60000"))
    assert (fill[3], fill[4]) == (Decimal("0.00001"), "BTC")  # Binance takes it from the base
    assert run(capsys, "--home", str(home), "ledger", "verify")[0] == 0


def test_lost_reply_is_found_by_client_id_and_not_resent(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    binance.drop_reply_next(ORDER, method="POST")
    code, out, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0, err
    assert len(binance.requests_to(ORDER, "POST")) == 1  # sent once, never resent
    assert len(binance.orders) == 1
    lookups = binance.requests_to(ORDER, "GET")
    assert lookups and lookups[0].params["origClientOrderId"] == binance.orders[0].client_id
    assert order_events(home) == ["filled"]
    assert [t[0] for t in ledger_rows(home, "SELECT trade_id FROM trades")] == [
        str(t.trade_id) for t in binance.trades
    ]


def test_request_lost_before_the_exchange_saw_it_is_sent_once_more(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    binance.drop_request_next(ORDER, method="POST")
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0, err
    posts = binance.requests_to(ORDER, "POST")
    assert [r.outcome for r in posts] == ["lost", "ok"]
    assert posts[0].params["newClientOrderId"] == posts[1].params["newClientOrderId"]
    lookups = binance.requests_to(ORDER, "GET")
    assert [r.outcome for r in lookups[:2]] == ["error -2013"] * 2  # absent twice, then resent
    assert len(binance.orders) == 1 and order_events(home) == ["unknown", "filled"]


def test_order_that_reaches_the_engine_late_is_found_by_the_recheck(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    binance.perform_late_next(ORDER, 1.0, method="POST")  # placed after the first lookup
    code, out, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0 and "CLOSED" in out, err
    assert len(binance.requests_to(ORDER, "POST")) == 1 and len(binance.orders) == 1
    assert [r.outcome for r in binance.requests_to(ORDER, "GET")][:2] == ["error -2013", "ok"]
    assert order_events(home) == ["filled"]


def test_lookup_finds_the_order_behind_1000_later_closed_orders(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    binance.drop_reply_next(ORDER, method="POST")
    binance.fail_next(ORDER, method="GET", status=503, times=3)  # the lookup cannot ask now
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 5 and "NOT resent" in err, err
    assert len(binance.requests_to(ORDER, "POST")) == 1
    assert order_events(home) == ["unknown"]
    binance.add_closed_orders("BTC/USD", 1000)  # a busy account: one page would miss it
    code, out, err = run(capsys, "--home", str(home), "trade", "recover")
    assert code == 0, err
    assert "unknown -> filled (1 fill(s))" in out
    assert len(binance.requests_to(ORDER, "POST")) == 1
    assert binance.requests_to("/api/v3/allOrders") == []  # asked by client id, not by listing
    assert order_events(home) == ["unknown", "filled"]


def test_reads_retry_429_and_5xx(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    binance.fail_next("/api/v3/account", status=503)
    binance.fail_next("/api/v3/ticker/24hr", status=429, code=-1003, msg="Too much request weight used; current limit is 1200 request weight per 1 MINUTE.")  # fmt: skip
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0, err
    assert [r.outcome for r in binance.requests_to("/api/v3/account")][:2] == ["fail 503", "ok"]
    assert [r.outcome for r in binance.requests_to("/api/v3/ticker/24hr")][:2] == [
        "fail 429",
        "ok",
    ]
    assert len(binance.requests_to(ORDER, "POST")) == 1


def test_rejection_is_exit_5_on_the_record_and_not_retried(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # Balance moved between vhc's check and the send (another bot): Binance refuses.
    binance.fail_next(ORDER, method="POST", status=400, code=-2010,
                      msg="Account has insufficient balance for requested action.")  # fmt: skip
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 5 and "insufficient" in err.lower(), err
    assert len(binance.requests_to(ORDER, "POST")) == 1 and binance.orders == []
    assert binance.requests_to(ORDER, "GET") == []  # a refusal is not a lost reply
    assert order_events(home) == ["rejected"]


def test_bad_secret_is_refused_by_the_signature_check(
    home: Path,
    binance: BinanceUSServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BINANCEUS_API_SECRET", "not-the-secret")
    code, _, err = run(capsys, "--home", str(home), "balances", "--exchange", "binanceus")
    assert code == 5 and "not-the-secret" not in err
    assert binance.requests_to("/api/v3/account")[-1].outcome == "error -1022"


def test_limit_order_rests_then_recover_and_orders_agree(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = trade(capsys, home, "buy", "BTC/USD", "0.01", "--type", "limit", "--price", "45000")  # fmt: skip
    assert code == 0 and "OPEN" in out, err
    binance.set_price("BTC/USD", "44000")
    code, out, err = run(capsys, "--home", str(home), "trade", "recover")
    assert code == 0 and "open -> filled (1 fill(s))" in out, err
    (fill,) = ledger_rows(home, "SELECT price, source FROM trades")
    assert fill == (Decimal("45000"), "recover")


def test_kill_switch_cancels_resting_orders_on_binanceus(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for price in ("40000", "41000"):
        code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01", "--type", "limit", "--price", price)  # fmt: skip
        assert code == 0, err
    binance.set_balance("ETH", "1")
    code, _, err = trade(capsys, home, "sell", "ETH/USD", "0.5", "--type", "limit", "--price", "9000")  # fmt: skip
    assert code == 0, err
    assert len(binance.open_orders()) == 3
    code, _, err = run(
        capsys, "--home", str(home), "kill-switch", "--activate", "--reason", "drill"
    )
    assert code == 0, err
    assert binance.open_orders() == []
    cancels = binance.requests_to("/api/v3/openOrders", "DELETE")
    assert sorted(r.params["symbol"] for r in cancels) == ["BTCUSD", "ETHUSD"]
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 4 and len(binance.requests_to(ORDER, "POST")) == 3


# -- an exchange whose lookup cannot prove absence --------------------------------------------
@pytest.fixture
def unproven(monkeypatch: pytest.MonkeyPatch) -> None:
    """Take binanceus out of the proven table: vhc then treats it as it treats gemini or
    bitfinex (scan open orders and the latest closed page), against the same real server."""
    from ccxtkit.exchanges import lookup

    monkeypatch.delitem(lookup.STRATEGIES, "binanceus")


def test_unproven_lookup_refuses_live_trading_without_opt_in(
    home: Path, binance: BinanceUSServer, capsys: pytest.CaptureFixture[str], unproven: None
) -> None:
    for extra in ((), ("--dry-run",)):
        code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01", *extra)
        assert code == 2 and "allow_unproven_lookup: true" in err, err
        assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
    assert binance.requests == []  # refused before anything reached the exchange
    assert ledger_rows(home, "SELECT count(*) FROM orders") == [(0,)]


def test_unproven_lookup_still_finds_an_order_and_warns_on_every_trade(
    tmp_path: Path,
    binance: BinanceUSServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    unproven: None,
) -> None:
    home = tmp_path / "ws"
    init_workspace(home)
    add_binanceus_account(home, binance, monkeypatch, allow_unproven_lookup=True)
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0 and "order lookup by client id is unproven" in err, err
    binance.drop_reply_next(ORDER, method="POST")
    code, out, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0 and "order lookup by client id is unproven" in err, err  # warned again
    assert "CLOSED" in out  # found among the recent closed orders
    assert len(binance.requests_to(ORDER, "POST")) == 2 and len(binance.orders) == 2
    assert order_events(home) == ["filled", "filled"]
    code, out, err = run(capsys, "--home", str(home), "--json", "trade", "buy", "BTC/USD", "0.01",
                         "--exchange", "binanceus", "--yes")  # fmt: skip
    assert code == 0 and "unproven" in err
    assert "order lookup by client id is unproven" in json.loads(out)["warnings"][0]


def test_unproven_lost_reply_not_found_stays_unknown(
    tmp_path: Path,
    binance: BinanceUSServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    unproven: None,
) -> None:
    home = tmp_path / "ws"
    init_workspace(home)
    add_binanceus_account(home, binance, monkeypatch, allow_unproven_lookup=True)
    binance.drop_request_next(ORDER, method="POST")  # truly absent, but vhc cannot know
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 5 and "NOT resent" in err and "by hand" in err, err
    assert len(binance.requests_to(ORDER, "POST")) == 1 and binance.orders == []
    assert order_events(home) == ["unknown"]
    code, _, err = run(capsys, "--home", str(home), "trade", "recover")
    assert code == 5 and order_events(home) == ["unknown"]  # still unknown, never "not_found"
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 5 and "by hand" in err  # no new order while one is unknown there
    assert len(binance.requests_to(ORDER, "POST")) == 1
