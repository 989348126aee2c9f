"""The gateway end to end: real ccxt.kraken, through vhc's gateway, against tests/kraken_server.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ccxtkit.config import ExchangeConfig
from ccxtkit.errors import ExchangeAuthError, ExchangeError, OrderOutcomeUnknown
from ccxtkit.exchanges.errors_map import RetryPolicy
from ccxtkit.exchanges.gateway import CcxtGateway, build_ccxt
from tests.kraken_server import KrakenServer

SINCE = datetime.now(UTC) - timedelta(hours=1)


class Key:
    def __init__(self, key: str, secret: str) -> None:
        self.api_key, self.api_secret, self.passphrase = key, secret, None


def gateway(server: KrakenServer, secret: str | None = None) -> CcxtGateway:
    cfg = ExchangeConfig(
        id="kraken", rate_limit=Decimal(1000), ccxt={**server.ccxt_config(), "timeout": 3000}
    )
    key = Key(server.api_key, secret or server.api_secret)
    return CcxtGateway("kraken", build_ccxt("kraken", cfg, key), RetryPolicy(base_delay=0.01))


@pytest.fixture
def gw(kraken_server: KrakenServer) -> CcxtGateway:
    kraken_server.set_balance("USD", "100000")
    kraken_server.set_balance("BTC", "1")
    return gateway(kraken_server)


def test_markets_and_balance_are_decimal(gw: CcxtGateway) -> None:
    btc = gw.load_markets()["BTC/USD"]
    assert (btc.base, btc.quote) == ("BTC", "USD")
    assert btc.amount_step == Decimal("0.00000001") and btc.price_step == Decimal("0.1")
    assert btc.min_amount == Decimal("0.0001")
    balances = gw.fetch_balance()
    assert balances["USD"].total == Decimal("100000") and balances["BTC"].free == Decimal("1")
    assert gw.fetch_ticker("ETH/USD").last == Decimal("3000")


def test_market_order_with_client_id_is_found_among_closed(
    gw: CcxtGateway, kraken_server: KrakenServer
) -> None:
    order = gw.create_order("BTC/USD", "buy", "market", Decimal("0.01"), None, "vhc-t1")
    assert order.status == "closed" and order.filled == Decimal("0.01")
    assert order.client_order_id == "vhc-t1"
    [sent] = kraken_server.requests_to("AddOrder")
    assert sent.params["cl_ord_id"] == "vhc-t1"
    found = gw.find_order_by_client_id("vhc-t1", "BTC/USD")
    assert found is not None and found.id == order.id and found.status == "closed"
    assert gw.find_order_by_client_id("vhc-none", "BTC/USD") is None
    [trade] = gw.fetch_my_trades(SINCE)
    assert trade.order_id == order.id and trade.amount == Decimal("0.01")
    assert trade.cost == Decimal("500") and trade.fee == Decimal("1.3")


def test_lost_reply_is_outcome_unknown_sent_once_then_found(
    gw: CcxtGateway, kraken_server: KrakenServer
) -> None:
    kraken_server.drop_reply_next("AddOrder")
    with pytest.raises(OrderOutcomeUnknown):
        gw.create_order("BTC/USD", "buy", "market", Decimal("0.01"), None, "vhc-lost")
    assert len(kraken_server.requests_to("AddOrder")) == 1
    found = gw.find_order_by_client_id("vhc-lost", "BTC/USD")
    assert found is not None and found.filled == Decimal("0.01")


def test_limit_order_rests_then_cancel_and_cancel_all(gw: CcxtGateway) -> None:
    a = gw.create_order("BTC/USD", "buy", "limit", Decimal("0.01"), Decimal("40000"), "vhc-a")
    assert a.status == "open" and a.price == Decimal("40000")
    open_found = gw.find_order_by_client_id("vhc-a", "BTC/USD")
    assert open_found is not None and open_found.status == "open"
    gw.cancel_order(a.id, "BTC/USD")
    assert gw.fetch_order(a.id, "BTC/USD").status == "canceled"
    gw.cancel_order(a.id, "BTC/USD")  # already cancelled: done, not an error
    b = gw.create_order("BTC/USD", "buy", "limit", Decimal("0.01"), Decimal("41000"), "vhc-b")
    c = gw.create_order("BTC/USD", "sell", "limit", Decimal("0.01"), Decimal("90000"), "vhc-c")
    assert sorted(gw.cancel_all_orders()) == sorted([b.id, c.id])
    assert gw.fetch_open_orders() == []


def test_trades_paginate_past_one_page(gw: CcxtGateway, kraken_server: KrakenServer) -> None:
    for i in range(55):  # kraken pages by 50
        gw.create_order("BTC/USD", "buy", "market", Decimal("0.001"), None, f"vhc-p{i}")
    trades = gw.fetch_my_trades(SINCE)
    assert len({t.id for t in trades}) == 55 == len(trades)
    assert [r.params.get("ofs") for r in kraken_server.requests_to("TradesHistory")] == [
        "0",
        "50",
    ]


def test_transfers(gw: CcxtGateway, kraken_server: KrakenServer) -> None:
    kraken_server.add_deposit("BTC", "0.5")
    kraken_server.add_withdrawal("USD", "250")
    [deposit] = gw.fetch_deposits(SINCE)
    assert (deposit.asset, deposit.amount, deposit.status) == ("BTC", Decimal("0.5"), "ok")
    [withdrawal] = gw.fetch_withdrawals(SINCE)
    assert (withdrawal.asset, withdrawal.amount) == ("USD", Decimal("250"))


def test_server_errors_on_reads_are_retried(gw: CcxtGateway, kraken_server: KrakenServer) -> None:
    gw.load_markets()
    kraken_server.fail_next("BalanceEx", 503, times=2)
    assert gw.fetch_balance()["USD"].total == Decimal("100000")
    assert len(kraken_server.requests_to("BalanceEx")) == 3
    kraken_server.fail_next("BalanceEx", 429, times=3)
    with pytest.raises(ExchangeError, match="did not answer after 3 tries"):
        gw.fetch_balance()


def test_bad_key_is_an_auth_error(kraken_server: KrakenServer) -> None:
    import base64

    gw = gateway(kraken_server, secret=base64.b64encode(b"wrong" * 13).decode())
    with pytest.raises(ExchangeAuthError, match="vhc secrets check kraken") as info:
        gw.fetch_balance()
    assert info.value.exit_code == 5
