"""Unmodified ccxt.kraken against the local Kraken look-alike in tests/kraken_server.py."""

from __future__ import annotations

import base64
import itertools
import time
import uuid
from decimal import Decimal
from typing import Any

import ccxt
import pytest

from tests.kraken_server import KrakenServer


def client(server: KrakenServer, **extra: Any) -> ccxt.kraken:
    """A real ccxt kraken client pointed at the server."""
    config = {**server.credentials(), **server.ccxt_config(), "enableRateLimit": False}
    return ccxt.kraken({**config, **extra})


@pytest.fixture
def funded(kraken_server: KrakenServer) -> KrakenServer:
    kraken_server.set_balance("USD", "100000")
    kraken_server.set_balance("BTC", "1")
    return kraken_server


def test_load_markets_uses_kraken_naming(kraken_server: KrakenServer) -> None:
    ex = client(kraken_server)
    markets = ex.load_markets()
    assert {"BTC/USD", "ETH/USD", "ETH/BTC", "USDC/USD"} <= set(markets)
    btc = markets["BTC/USD"]
    assert (btc["id"], btc["base"], btc["quote"], btc["altname"]) == (
        "XXBTZUSD", "BTC", "USD", "XBTUSD"
    )  # fmt: skip
    assert btc["precision"] == {"amount": 1e-08, "price": 0.1}
    assert btc["limits"]["amount"]["min"] == 0.0001
    assert btc["taker"] == 0.0026 and btc["maker"] == 0.0016
    assert markets["ETH/BTC"]["id"] == "XETHXXBT"
    assert ex.fetch_ticker("ETH/USD")["last"] == 3000.0


def test_fetch_balance_reports_totals_and_holds(funded: KrakenServer) -> None:
    ex = client(funded)
    assert ex.fetch_balance()["total"] == {"USD": 100000.0, "BTC": 1.0}
    ex.create_order("BTC/USD", "limit", "buy", 0.01, 40000)  # rests: 400 USD + 0.26% held
    balance = ex.fetch_balance()
    assert balance["used"]["USD"] == 401.04
    assert balance["free"]["USD"] == 100000 - 401.04
    assert [r.path for r in funded.requests_to("BalanceEx")]  # ccxt uses BalanceEx


def test_market_order_fills_and_is_in_closed_orders_and_trades(funded: KrakenServer) -> None:
    ex = client(funded)
    order = ex.create_order("BTC/USD", "market", "buy", 0.01)
    assert funded.balance("USD") == Decimal("100000") - Decimal("500") - Decimal("1.3")
    assert funded.balance("BTC") == Decimal("1.01")
    closed = ex.fetch_closed_orders()
    assert [o["id"] for o in closed] == [order["id"]]
    assert closed[0]["status"] == "closed" and closed[0]["filled"] == 0.01
    assert closed[0]["average"] == 50000.0
    trades = ex.fetch_my_trades()
    assert len(trades) == 1 and trades[0]["order"] == order["id"]
    assert trades[0]["fee"] == {"currency": "USD", "cost": 1.3}
    assert trades[0]["takerOrMaker"] == "taker"
    sell = ex.create_order("BTC/USD", "market", "sell", 0.5)
    assert funded.balance("BTC") == Decimal("0.51")
    assert funded.balance("USD") == Decimal("99498.7") + Decimal("25000") - Decimal("65")
    assert ex.fetch_order(sell["id"])["side"] == "sell"


def test_limit_order_rests_until_the_price_crosses(funded: KrakenServer) -> None:
    ex = client(funded)
    order = ex.create_order("BTC/USD", "limit", "buy", 0.02, 45000)
    assert [o["id"] for o in ex.fetch_open_orders()] == [order["id"]]
    funded.set_price("BTC/USD", 46000)
    assert ex.fetch_open_orders()[0]["status"] == "open"
    funded.set_price("XBTUSD", "44999.9")
    assert ex.fetch_open_orders() == []
    filled = ex.fetch_order(order["id"])
    assert filled["status"] == "closed" and filled["average"] == 45000.0
    trade = ex.fetch_my_trades()[0]
    assert trade["price"] == 45000.0 and trade["takerOrMaker"] == "maker"
    assert trade["fee"]["cost"] == 1.44  # maker 0.16% of 900
    assert funded.balance("USD") == Decimal("100000") - Decimal("900") - Decimal("1.44")
    # a limit buy above the market fills at once, at the market price
    now = ex.create_order("BTC/USD", "limit", "buy", 0.01, 50000)
    assert ex.fetch_order(now["id"])["average"] == 44999.9


def test_cancel_order_and_cancel_all(funded: KrakenServer) -> None:
    ex = client(funded)
    ids = [ex.create_order("BTC/USD", "limit", "buy", 0.01, p)["id"] for p in (30000, 31000, 32000)]
    ex.cancel_order(ids[0])
    assert {o["id"] for o in ex.fetch_open_orders()} == set(ids[1:])
    assert ex.fetch_order(ids[0])["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order(ids[0])  # Kraken: EOrder:Unknown order for a closed order
    ex.cancel_all_orders()
    assert ex.fetch_open_orders() == []
    assert {o["status"] for o in ex.fetch_closed_orders()} == {"canceled"}
    assert ex.fetch_balance()["used"]["USD"] == 0.0


def test_client_order_id_round_trips_through_open_and_closed_orders(funded: KrakenServer) -> None:
    ex = client(funded)
    cid = str(uuid.uuid4())
    order = ex.create_order("BTC/USD", "limit", "sell", 0.1, 60000, {"clientOrderId": cid})
    assert funded.requests_to("AddOrder")[0].params["cl_ord_id"] == cid  # not userref
    ex.create_order("BTC/USD", "limit", "sell", 0.1, 61000, {"clientOrderId": "other-1"})
    found = ex.fetch_open_orders(params={"clientOrderId": cid})
    assert [(o["id"], o["clientOrderId"]) for o in found] == [(order["id"], cid)]
    funded.set_price("BTC/USD", 60000)
    assert ex.fetch_open_orders(params={"clientOrderId": cid}) == []
    closed = ex.fetch_closed_orders(params={"clientOrderId": cid})
    assert [(o["id"], o["status"], o["clientOrderId"]) for o in closed] == [
        (order["id"], "closed", cid)
    ]
    ex.cancel_order("", params={"clientOrderId": "other-1"})
    assert ex.fetch_open_orders() == []


def test_duplicate_client_order_id_is_rejected_only_while_open(funded: KrakenServer) -> None:
    ex = client(funded)
    ex.create_order("BTC/USD", "limit", "buy", 0.01, 30000, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.ExchangeError, match="Duplicate cl_ord_id"):
        ex.create_order("BTC/USD", "limit", "buy", 0.01, 30000, {"clientOrderId": "dup-1"})
    ex.cancel_all_orders()
    ex.create_order("BTC/USD", "limit", "buy", 0.01, 30000, {"clientOrderId": "dup-1"})
    # the hazard vhc must guard against: a filled order's id is free again
    ex.create_order("BTC/USD", "market", "buy", 0.01, None, {"clientOrderId": "mkt-1"})
    ex.create_order("BTC/USD", "market", "buy", 0.01, None, {"clientOrderId": "mkt-1"})
    assert funded.balance("BTC") == Decimal("1.02")
    with pytest.raises(ccxt.ExchangeError, match="cl_ord_id"):  # free text is at most 18 chars
        ex.create_order("BTC/USD", "market", "buy", 0.01, None, {"clientOrderId": "x" * 19})


def test_fetch_my_trades_pages_with_ofs_and_filters_by_time(funded: KrakenServer) -> None:
    ticks = itertools.count(1_700_000_000)
    funded.clock = lambda: float(next(ticks))
    ex = client(funded)
    ids = {ex.create_order("BTC/USD", "market", "buy", 0.001)["id"] for _ in range(55)}
    assert len(ex.fetch_my_trades()) == 50  # one call = one page; ccxt does not paginate
    seen: list[dict[str, Any]] = []
    while page := ex.fetch_my_trades(params={"ofs": len(seen)}):
        seen += page
    assert len(seen) == 55 and {t["order"] for t in seen} == ids
    assert len({t["id"] for t in seen}) == 55
    raw = ex.privatePostTradesHistory({"ofs": 50})["result"]
    assert raw["count"] == 55 and len(raw["trades"]) == 5
    times = sorted(t["timestamp"] for t in seen)
    middle = times[20]
    later = ex.fetch_my_trades(since=middle)  # Kraken's start is exclusive, in seconds
    assert sorted(t["timestamp"] for t in later) == times[21:]
    earlier = ex.fetch_my_trades(params={"end": middle // 1000})
    assert sorted(t["timestamp"] for t in earlier) == times[:21]
    assert len(ex.fetch_closed_orders()) == 50  # ClosedOrders pages the same way
    assert len(ex.fetch_closed_orders(params={"ofs": 50})) == 5


def test_deposits_and_withdrawals_are_listed(kraken_server: KrakenServer) -> None:
    ex = client(kraken_server)
    ref = kraken_server.add_deposit("BTC", "0.5")
    pending = kraken_server.add_deposit("ETH", "2", status="Pending")
    assert kraken_server.balance("BTC") == Decimal("0.5")
    assert kraken_server.balance("ETH") == 0
    deposits = {d["id"]: d for d in ex.fetch_deposits()}
    assert deposits[ref]["currency"] == "BTC" and deposits[ref]["amount"] == 0.5
    assert deposits[ref]["status"] == "ok" and deposits[pending]["status"] == "pending"
    kraken_server.set_transfer_status(pending, "Success")
    assert kraken_server.balance("ETH") == Decimal("2")
    out = kraken_server.add_withdrawal("BTC", "0.2", fee="0.0001", address="bc1qthief")
    assert kraken_server.balance("BTC") == Decimal("0.2999")
    [w] = ex.fetch_withdrawals("BTC")
    assert (w["id"], w["amount"], w["address"], w["fee"]["cost"]) == (out, 0.2, "bc1qthief", 0.0001)
    assert ex.fetch_withdrawals("ETH") == []


def test_withdraw_goes_only_to_a_registered_key(funded: KrakenServer) -> None:
    ex = client(funded)
    funded.register_withdrawal_key("BTC", "cold-wallet", "bc1qcold")
    funded.withdrawal_fees["XXBT"] = Decimal("0.0002")
    result = ex.withdraw("BTC", 0.1, "bc1qcold", params={"key": "cold-wallet"})
    assert funded.balance("BTC") == Decimal("0.9")
    [w] = ex.fetch_withdrawals()
    assert w["id"] == result["id"] and w["status"] == "pending"
    assert w["amount"] == 0.0998 and w["info"]["key"] == "cold-wallet"
    with pytest.raises(ccxt.InvalidAddress):
        ex.withdraw("BTC", 0.1, "", params={"key": "hot-wallet"})
    with pytest.raises(ccxt.ExchangeError, match="Insufficient funds"):
        ex.withdraw("BTC", 5, "", params={"key": "cold-wallet"})
    assert funded.balance("BTC") == Decimal("0.9")


def test_bad_key_signature_or_nonce_is_refused(funded: KrakenServer) -> None:
    wrong_secret = base64.b64encode(b"not the secret" * 4).decode()
    with pytest.raises(ccxt.AuthenticationError):
        client(funded, secret=wrong_secret).fetch_balance()
    with pytest.raises(ccxt.AuthenticationError):
        client(funded, apiKey="someone-else").fetch_balance()
    client(funded).fetch_balance()
    with pytest.raises(ccxt.InvalidNonce):  # a clock an hour behind: nonce did not increase
        client(funded, options={"timeDifference": 3_600_000}).fetch_balance()
    assert [r.outcome for r in funded.requests_to("BalanceEx")] == [
        "EAPI:Invalid key", "EAPI:Invalid key", "ok", "EAPI:Invalid nonce"
    ]  # fmt: skip
    log = repr(funded.requests)
    assert funded.api_secret not in log and funded.api_key not in log


def test_transient_errors_then_success(funded: KrakenServer) -> None:
    ex = client(funded)
    ex.load_markets()
    funded.fail_next("Balance" + "Ex", status=429)
    with pytest.raises(ccxt.RateLimitExceeded):
        ex.fetch_balance()
    assert ex.fetch_balance()["total"]["BTC"] == 1.0
    funded.fail_next("BalanceEx", status=None, error="EAPI:Rate limit exceeded")
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_balance()
    funded.fail_next("/0/private/OpenOrders", status=503, times=2)
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            ex.fetch_open_orders()
    assert ex.fetch_open_orders() == []
    funded.fail_next("AddOrder", status=500)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.create_order("BTC/USD", "market", "buy", 0.01)
    assert funded.orders == []  # a failed call does nothing


def test_dropped_reply_after_the_order_was_placed(funded: KrakenServer) -> None:
    ex = client(funded)
    ex.load_markets()
    funded.drop_reply_next("AddOrder")
    with pytest.raises(ccxt.NetworkError):
        ex.create_order("BTC/USD", "market", "buy", 0.01, None, {"clientOrderId": "lost-1"})
    assert len(funded.requests_to("AddOrder")) == 1  # not resent by ccxt or requests
    assert [o.cl_ord_id for o in funded.orders] == ["lost-1"]
    assert funded.balance("BTC") == Decimal("1.01")
    [found] = ex.fetch_closed_orders(params={"clientOrderId": "lost-1"})
    assert found["status"] == "closed" and found["filled"] == 0.01


def test_dropped_reply_to_cancel_and_withdraw_still_acts(funded: KrakenServer) -> None:
    ex = client(funded)
    order = ex.create_order("BTC/USD", "limit", "buy", 0.01, 30000)
    funded.drop_reply_next("CancelOrder")
    with pytest.raises(ccxt.NetworkError):
        ex.cancel_order(order["id"])
    assert ex.fetch_order(order["id"])["status"] == "canceled"
    funded.register_withdrawal_key("BTC", "cold", "bc1qcold")
    funded.drop_reply_next("Withdraw")
    with pytest.raises(ccxt.NetworkError):
        ex.withdraw("BTC", 0.25, "", params={"key": "cold"})
    assert [w["amount"] for w in ex.fetch_withdrawals()] == [0.25]


def test_latency_and_failing_account(funded: KrakenServer) -> None:
    funded.latency = 0.3
    started = time.monotonic()
    client(funded).fetch_time()
    assert time.monotonic() - started >= 0.3
    with pytest.raises(ccxt.RequestTimeout):
        client(funded, timeout=100).fetch_time()
    funded.latency = 0
    funded.fail_all = "EService:Unavailable"
    ex = client(funded)
    assert ex.fetch_ticker("BTC/USD")["last"] == 50000.0  # public calls still work
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_balance()
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.create_order("BTC/USD", "market", "buy", 0.01)
    funded.fail_all = None
    assert ex.fetch_balance()["total"]["BTC"] == 1.0


def test_insufficient_funds_counts_resting_orders(funded: KrakenServer) -> None:
    ex = client(funded)
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order("BTC/USD", "market", "sell", 1.5)
    ex.create_order("BTC/USD", "limit", "sell", 0.8, 70000)
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order("BTC/USD", "market", "sell", 0.3)  # only 0.2 BTC is free
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order("BTC/USD", "market", "buy", 2)  # 100,260 USD > 100,000
    assert len(funded.orders) == 1


def test_fee_in_base_or_in_a_third_currency_shows_in_the_ledger(funded: KrakenServer) -> None:
    ex = client(funded)
    funded.set_balance("ETH", "1")
    ex.create_order("BTC/USD", "market", "buy", 0.1, None, {"oflags": "fcib"})
    assert funded.balance("BTC") == Decimal("1.1") - Decimal("0.00026")
    assert funded.balance("USD") == Decimal("95000")
    funded.set_next_fee("ETH", "0.004")
    second = ex.create_order("BTC/USD", "market", "buy", 0.1)
    assert funded.balance("USD") == Decimal("90000")
    assert funded.balance("ETH") == Decimal("0.996")
    eth = ex.fetch_ledger("ETH")
    assert [(e["type"], e["amount"], e["fee"]["cost"]) for e in eth] == [("trade", 0.0, 0.004)]
    # ccxt labels every trade fee with the quote currency: only the ledger tells the truth
    fees = {t["order"]: t["fee"] for t in ex.fetch_my_trades()}
    assert fees[second["id"]] == {"currency": "USD", "cost": 0.004}  # really ETH
    assert len(fees) == 2 and fees.pop(second["id"]) and fees.popitem()[1]["cost"] == 0.00026
