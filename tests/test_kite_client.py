"""KiteClient on the unmodified kiteconnect client against the local Kite server: Decimal at
the boundary, Kite's clock, error types mapped to vhc's errors and retry rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from ccxtkit.config import KiteSettings
from ccxtkit.errors import (
    ExchangeAuthError,
    ExchangeError,
    OrderLookupUnproven,
    OrderOutcomeUnknown,
)
from ccxtkit.exchanges.errors_map import RetryPolicy
from ccxtkit.exchanges.kite import KiteClient, KiteSessionError
from tests.kite_server import KiteServer


@pytest.fixture
def server(kite_server: KiteServer) -> KiteServer:
    return kite_server


@pytest.fixture
def client(server: KiteServer) -> Iterator[KiteClient]:
    waits: list[float] = []
    c = KiteClient(
        "zerodha",
        KiteSettings(root=server.url, timeout_seconds=D(3)),
        server.api_key,
        server.issue_access_token(),
        policy=RetryPolicy(sleep=waits.append),
        sleep=waits.append,
    )
    c.waits = waits  # type: ignore[attr-defined]
    yield c
    c.close()


def test_markets_quotes_and_funds_are_decimal(client, server):
    infy = client.market("NSE:INFY")
    assert infy is not None and infy.price_step == D("0.05") and infy.amount_step == D(1)
    assert client.market("INFY/INR") is None and client.market("NSE:NOPE") is None
    ticker = client.fetch_ticker("NSE:INFY")
    assert (ticker.last, ticker.bid, ticker.ask) == (D(1500), D("1499.95"), D("1500.05"))
    balances = client.fetch_balance()
    assert balances["INR"].total == D(1000000) and isinstance(balances["INR"].free, D)
    # Kite's clock, from the Date of its replies (the server stands at 10:30 IST).
    assert client.now().replace(microsecond=0) >= datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
    assert client.now() < datetime(2026, 12, 1, 5, 1, tzinfo=UTC)


def test_tags_are_twenty_characters_of_kites_day(client, server):
    client.fetch_ticker("NSE:INFY")
    tag = client.new_client_order_id()
    assert len(tag) == 20 and tag.startswith("v261201") and tag.isalnum()
    assert tag != client.new_client_order_id()


def test_reads_retry_transient_failures_then_give_up(client, server):
    server.fail_next("/user/margins", 503, "NetworkException", "Upstream down")
    assert client.fetch_balance()["INR"].total == D(1000000)
    assert len(server.requests_to("/user/margins")) == 2 and client.waits == [0.2]
    server.fail_next("/orders", 429, "NetworkException", "Too many requests", times=5)
    with pytest.raises(ExchangeError) as err:
        client.fetch_open_orders()
    assert "rate limited by Kite" in err.value.message
    assert len(server.requests_to("/orders", "GET")) == 3  # the retry policy's 3 tries


def test_kite_error_types_map_to_vhc_errors(client, server):
    server.fail_next("/portfolio/holdings", 403, "PermissionException", "No access")
    with pytest.raises(ExchangeAuthError):
        client.fetch_holdings()
    server.expire_sessions()
    with pytest.raises(KiteSessionError) as err:
        client.fetch_positions()
    assert err.value.exit_code == 8 and "vhc kite login --exchange zerodha" in err.value.message


def test_an_order_with_no_reply_is_unknown_and_never_retried(client, server):
    client.fetch_ticker("NSE:INFY")
    tag = client.new_client_order_id()
    server.fail_next("/orders/regular", 502, "GeneralException", "Bad gateway", method="POST")
    with pytest.raises(OrderOutcomeUnknown):
        client.create_order("NSE:INFY", "buy", "market", D(1), None, tag)
    assert len(server.requests_to("/orders/regular", "POST")) == 1
    # Today's tag, absent twice (2 s apart): confirmed absence.
    assert client.find_order_by_client_id(tag, "NSE:INFY") is None
    assert client.waits[-1] == 2.0
    # A tag of another day (or not vhc's form) is never declared absent.
    with pytest.raises(OrderLookupUnproven):
        client.find_order_by_client_id("v261130" + "0" * 13, "NSE:INFY")
    with pytest.raises(OrderLookupUnproven):
        client.find_order_by_client_id("mytag1", "NSE:INFY")


def test_positions_holdings_and_fills(client, server):
    server.set_holding("SBIN", 4, "700")
    order = client.create_order("NSE:INFY", "buy", "market", D(3), None, "t1", product="MIS")
    assert order.status == "closed" and order.filled == D(3) and order.average == D(1500)
    (fill,) = order.trades
    assert (fill.amount, fill.price, fill.fee, fill.fee_currency) == (D(3), D(1500), 0, "INR")
    assert fill.client_order_id == "t1"
    assert fill.timestamp == datetime(2026, 12, 1, 5, 0, tzinfo=UTC)  # 10:30 IST
    assert client.holdings_and_positions() == {"NSE:SBIN": D(4), "NSE:INFY": D(3)}
    assert [t.id for t in client.fetch_my_trades(datetime(2026, 12, 1, tzinfo=UTC))] == [fill.id]
