"""Coinbase Advanced Trade proven like Kraken: the real `vhc` CLI and unmodified ccxt.coinbase
against the Coinbase-protocol server in tests/coinbase_server.py (ES256 JWT checked, cursor
pages, errors as Coinbase answers them, 429/5xx, lost replies)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ccxtkit.workspace import init_workspace
from tests.coinbase_server import BATCH, CANCEL, ORDERS, CoinbaseServer
from tests.exchange_fixtures import add_coinbase_account, exchange_home, order_events
from tests.test_trade_flow import ledger_rows, run


@pytest.fixture
def coinbase() -> Iterator[CoinbaseServer]:
    with CoinbaseServer() as server:
        server.set_balance("USD", "100000")
        yield server


@pytest.fixture
def home(tmp_path: Path, coinbase: CoinbaseServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    return exchange_home(tmp_path, add_coinbase_account, coinbase, monkeypatch)


def trade(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    return run(capsys, "--home", str(home), "trade", *args, "--exchange", "coinbase", "--yes")


def test_market_sell_fills_with_the_fee_coinbase_charged(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    coinbase.set_balance("BTC", "1")
    coinbase.set_price("BTC/USD", "60000")
    code, out, err = trade(capsys, home, "sell", "BTC/USD", "0.01")
    assert code == 0, err
    assert "CLOSED" in out and "1 fill(s) recorded" in out
    (sent,) = coinbase.creates()
    (order,) = coinbase.orders
    assert sent.params["client_order_id"] == order.client_id  # ours, not ccxt's ccxt-<uuid>
    assert sent.params["order_configuration"] == {"market_market_ioc": {"base_size": "0.01"}}
    assert ledger_rows(home, "SELECT client_order_id FROM orders") == [(order.client_id,)]
    assert order_events(home) == ["filled"]
    (fill,) = ledger_rows(home, "SELECT trade_id, amount, price, fee, fee_currency FROM trades")
    assert fill == (
        coinbase.fills[0].trade_id,
        Decimal("0.01"),
        Decimal("60000"),
        Decimal("3.6"),
        "USD",
    )  # fmt: skip  (600 x 0.6 % taker, in the quote)
    assert coinbase.balance("USD") == Decimal("100000") + 600 - Decimal("3.6")
    assert run(capsys, "--home", str(home), "ledger", "verify")[0] == 0


def test_market_buy_goes_as_a_quote_size_at_the_ask(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    coinbase.set_price("BTC/USD", "50000")
    code, out, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0 and "CLOSED" in out, err
    (sent,) = coinbase.creates()
    assert sent.params["order_configuration"] == {"market_market_ioc": {"quote_size": "500"}}
    (fill,) = ledger_rows(home, "SELECT amount, price, fee FROM trades")
    assert fill == (Decimal("0.01"), Decimal("50000"), Decimal("3"))
    assert coinbase.balance("BTC") == Decimal("0.01")


def test_lost_reply_is_found_by_client_id_and_not_resent(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    coinbase.drop_reply_next(ORDERS, method="POST")
    code, out, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0 and "CLOSED" in out, err
    assert len(coinbase.creates()) == 1 and len(coinbase.orders) == 1  # never resent
    walks = coinbase.requests_to(BATCH, "GET")
    assert walks and walks[0].params["order_status"] == "OPEN"
    assert walks[0].params["product_ids"] == "BTC-USD"
    assert order_events(home) == ["filled"]
    assert [t[0] for t in ledger_rows(home, "SELECT trade_id FROM trades")] == [
        f.trade_id for f in coinbase.fills
    ]


@pytest.mark.slow
def test_request_lost_before_coinbase_saw_it_is_sent_once_more_after_two_full_walks(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    coinbase.add_closed_orders("BTC/USD", 1500)  # two pages of someone else's orders
    coinbase.drop_request_next(ORDERS, method="POST")
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0, err
    posts = coinbase.creates()
    assert [r.outcome for r in posts] == ["lost", "ok"]
    assert posts[0].params["client_order_id"] == posts[1].params["client_order_id"]
    walked = [
        (r.params.get("order_status"), r.params.get("cursor")) for r in coinbase.requests_to(BATCH)
    ]
    # each walk: OPEN (one page), then every status to has_next=false (1500 orders: 2 pages)
    assert [s for s, _ in walked] == ["OPEN", None, None] * 2, walked
    assert walked[2][1] is not None  # the second page asked by cursor
    assert order_events(home) == ["unknown", "filled"]
    assert (
        len([o for o in coinbase.orders if o.client_id == posts[0].params["client_order_id"]]) == 1
    )


def test_lookup_finds_the_order_behind_1000_later_closed_orders(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    coinbase.drop_reply_next(ORDERS, method="POST")
    coinbase.fail_next(BATCH, method="GET", status=503, times=3)  # the lookup cannot ask now
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 5 and "NOT resent" in err, err
    assert len(coinbase.creates()) == 1 and order_events(home) == ["unknown"]
    coinbase.add_closed_orders("BTC/USD", 1000)  # a busy account: the first page misses it
    code, out, err = run(capsys, "--home", str(home), "trade", "recover")
    assert code == 0, err
    assert "unknown -> filled (1 fill(s))" in out
    assert len(coinbase.creates()) == 1 and len(coinbase.orders) == 1001
    pages = [
        r
        for r in coinbase.requests_to(BATCH)
        if r.outcome == "ok" and "order_status" not in r.params
    ]
    assert len(pages) == 2 and pages[1].params.get("cursor")  # found on the second page
    assert order_events(home) == ["unknown", "filled"]


def test_a_walk_that_cannot_finish_leaves_the_order_unknown(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    coinbase.add_closed_orders("BTC/USD", 1200)
    coinbase.drop_request_next(ORDERS, method="POST")  # truly absent
    # the second page keeps failing: the walk never reaches has_next=false
    coinbase.fail_next(BATCH, method="GET", status=503, times=50)
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 5 and "NOT resent" in err, err
    assert len(coinbase.creates()) == 1 and coinbase.orders[-1].client_id.startswith("other-")
    assert order_events(home) == ["unknown"]


def test_reads_retry_429_and_5xx(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    coinbase.fail_next("/v2/accounts", status=503)
    coinbase.fail_next("/api/v3/brokerage/market/products/BTC-USD/ticker", status=429)
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0, err
    assert [r.outcome for r in coinbase.requests_to("/v2/accounts")][:2] == ["fail 503", "ok"]
    ticker = coinbase.requests_to("/api/v3/brokerage/market/products/BTC-USD/ticker")
    assert [r.outcome for r in ticker][:2] == ["fail 429", "ok"]
    assert len(coinbase.creates()) == 1


def test_insufficient_funds_is_exit_5_on_the_record_and_not_retried(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # Balance moved between vhc's check and the send (another bot): Coinbase refuses.
    coinbase.fail_next(ORDERS, method="POST", status=200, body={
        "success": False, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": "",
        "error_response": {"error": "INSUFFICIENT_FUND", "message": "Insufficient balance in source account",
                           "error_details": "", "preview_failure_reason": "PREVIEW_INSUFFICIENT_FUND"}})  # fmt: skip
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 5 and "insufficient" in err.lower(), err
    assert len(coinbase.creates()) == 1 and coinbase.orders == []
    assert coinbase.requests_to(BATCH) == []  # a refusal is not a lost reply
    assert order_events(home) == ["rejected"]


def test_bad_key_is_refused_by_the_jwt_check(
    home: Path,
    coinbase: CoinbaseServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = CoinbaseServer()  # a valid EC key, but not this account's
    monkeypatch.setenv("COINBASE_API_SECRET", other.api_secret)
    code, _, err = run(capsys, "--home", str(home), "balances", "--exchange", "coinbase")
    assert code == 5 and "PRIVATE KEY" not in err, err
    assert [r.outcome for r in coinbase.requests if r.outcome != "ok"][-1] == "error 401"
    assert coinbase.creates() == []


def test_limit_order_rests_then_cancel(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = trade(capsys, home, "buy", "BTC/USD", "0.01", "--type", "limit", "--price", "45000")  # fmt: skip
    assert code == 0 and "OPEN" in out, err
    (order,) = coinbase.open_orders()
    sent = coinbase.creates()[0].params["order_configuration"]
    assert sent == {
        "limit_limit_gtc": {"base_size": "0.01", "limit_price": "45000", "post_only": False}
    }
    code, out, err = run(capsys, "--home", str(home), "trade", "cancel", order.order_id, "--exchange", "coinbase")  # fmt: skip
    assert code == 0, err
    assert coinbase.open_orders() == [] and order.status == "CANCELLED"
    (cancel,) = coinbase.requests_to(CANCEL)
    assert cancel.params["order_ids"] == [order.order_id]


def test_limit_order_rests_then_fills_and_recover_records_it(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = trade(capsys, home, "buy", "BTC/USD", "0.01", "--type", "limit", "--price", "45000")  # fmt: skip
    assert code == 0 and "OPEN" in out, err
    coinbase.set_price("BTC/USD", "44000")
    code, out, err = run(capsys, "--home", str(home), "trade", "recover")
    assert code == 0 and "open -> filled (1 fill(s))" in out, err
    (fill,) = ledger_rows(home, "SELECT price, fee, source FROM trades")
    assert fill == (Decimal("45000"), Decimal("1.8"), "recover")  # 0.4 % maker


def test_kill_switch_cancels_resting_orders_on_coinbase(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for price in ("40000", "41000"):
        code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01", "--type", "limit", "--price", price)  # fmt: skip
        assert code == 0, err
    coinbase.set_balance("ETH", "1")
    code, _, err = trade(capsys, home, "sell", "ETH/USD", "0.5", "--type", "limit", "--price", "9000")  # fmt: skip
    assert code == 0, err
    assert len(coinbase.open_orders()) == 3
    code, _, err = run(
        capsys, "--home", str(home), "kill-switch", "--activate", "--reason", "drill"
    )
    assert code == 0, err
    assert coinbase.open_orders() == []
    cancelled = [i for r in coinbase.requests_to(CANCEL) for i in r.params["order_ids"]]
    assert sorted(cancelled) == sorted(o.order_id for o in coinbase.orders)
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 4 and len(coinbase.creates()) == 3


def test_cancel_whose_reply_is_lost_is_retried_and_done(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01", "--type", "limit", "--price", "45000")  # fmt: skip
    assert code == 0, err
    (order,) = coinbase.open_orders()
    coinbase.drop_reply_next(CANCEL)  # cancelled, reply lost: the retry hears success: false
    code, _, err = run(capsys, "--home", str(home), "trade", "cancel", order.order_id, "--exchange", "coinbase")  # fmt: skip
    assert code == 0, err
    assert [r.outcome for r in coinbase.requests_to(CANCEL)] == ["dropped", "ok"]
    assert order.status == "CANCELLED"


def test_cancel_of_an_order_that_fills_as_the_cancel_arrives_says_so(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = trade(capsys, home, "buy", "BTC/USD", "0.01", "--type", "limit", "--price", "45000")  # fmt: skip
    assert code == 0, err
    (order,) = coinbase.open_orders()
    coinbase.before_next(CANCEL, lambda: coinbase._fill(order, order.base_size, Decimal(45000), maker=True))  # fmt: skip
    code, _, err = run(capsys, "--home", str(home), "trade", "cancel", order.order_id, "--exchange", "coinbase")  # fmt: skip
    assert code == 1 and "already filled (filled 0.01 of 0.01)" in err, err
    assert "Traceback" not in err and order.status == "FILLED"
    assert len(coinbase.requests_to(CANCEL)) == 1  # success: false is an answer, not retried


def test_kill_switch_sees_every_page_of_open_orders(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    resting = coinbase.add_open_orders("BTC/USD", 150)  # ccxt alone would read 100 of them
    code, _, err = run(capsys, "--home", str(home), "kill-switch", "--activate", "--reason", "drill")  # fmt: skip
    assert code == 0, err
    assert coinbase.open_orders() == [] and {o.status for o in resting} == {"CANCELLED"}
    listed = [r for r in coinbase.requests_to(BATCH) if r.params.get("order_status") == "OPEN"]
    assert any(r.params.get("cursor") for r in listed)  # the second page was read


@pytest.mark.parametrize("layout", ["pem lines", "one line with \\n escapes"])
def test_a_cdp_key_stored_with_secrets_set_signs_requests(
    tmp_path: Path,
    coinbase: CoinbaseServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    file_keyring: Path,
    layout: str,
) -> None:
    """The EC private key is a multi-line PEM (Coinbase's key file spells it with \\n escapes):
    `vhc secrets set coinbase` keeps it whole, and ccxt signs with it."""
    home = tmp_path / "ws"
    init_workspace(home)
    add_coinbase_account(home, coinbase, monkeypatch, secrets="keyring")
    monkeypatch.delenv("COINBASE_API_KEY")
    monkeypatch.delenv("COINBASE_API_SECRET")
    pem = coinbase.api_secret
    secret = pem if layout == "pem lines" else pem.strip().replace("\n", "\\n")
    keys = tmp_path / "cdp.txt"
    keys.write_text(f"{coinbase.api_key}\n{secret}\n")
    code, _, err = run(capsys, "--home", str(home), "secrets", "set", "coinbase", "--from-file", str(keys))  # fmt: skip
    assert code == 0, err
    code, out, err = run(capsys, "--home", str(home), "--json", "balances", "--exchange", "coinbase")  # fmt: skip
    assert code == 0, err
    assert "100000" in out and "PRIVATE KEY" not in out + err
    assert all(r.outcome == "ok" for r in coinbase.requests)  # every JWT verified


def test_a_cdp_key_in_an_environment_variable_may_spell_newlines_as_escapes(
    home: Path,
    coinbase: CoinbaseServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # export COINBASE_API_SECRET="-----BEGIN EC PRIVATE KEY-----\nMHc...\n-----END ...": bash
    # keeps the backslashes
    monkeypatch.setenv("COINBASE_API_SECRET", coinbase.api_secret.replace("\n", "\\n"))
    code, out, err = run(capsys, "--home", str(home), "balances", "--exchange", "coinbase")
    assert code == 0 and "USD\t100000" in out, out + err


def test_a_5xx_after_the_order_was_placed_is_resolved_by_lookup_not_resent(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    coinbase.fail_after_next(ORDERS, method="POST", status=504)
    code, out, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0 and "CLOSED" in out, err
    assert [r.outcome for r in coinbase.creates()] == ["performed, fail 504"]
    assert len(coinbase.orders) == 1 and order_events(home) == ["filled"]


def test_a_429_on_create_is_proven_absent_then_sent_once_more_with_the_same_id(
    home: Path, coinbase: CoinbaseServer, capsys: pytest.CaptureFixture[str]
) -> None:
    coinbase.fail_next(ORDERS, method="POST", status=429)  # refused before anything happened
    code, out, err = trade(capsys, home, "buy", "BTC/USD", "0.01")
    assert code == 0 and "CLOSED" in out, err
    posts = coinbase.creates()
    assert [r.outcome for r in posts] == ["fail 429", "ok"]
    assert posts[0].params["client_order_id"] == posts[1].params["client_order_id"]
    assert len(coinbase.orders) == 1 and order_events(home) == ["unknown", "filled"]
