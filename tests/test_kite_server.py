"""The Kite test server speaks what the unmodified kiteconnect client expects."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import kiteconnect.exceptions as kex
import pytest
from kiteconnect import KiteConnect

from tests.kite_server import KiteServer


@pytest.fixture
def server(kite_server: KiteServer) -> KiteServer:
    return kite_server


def test_session_exchange_checks_the_checksum_and_the_token_once(server):
    kite = KiteConnect(server.api_key, root=server.url)
    with pytest.raises(kex.TokenException, match="checksum"):
        kite.generate_session(server.issue_request_token(), "wrong-secret")
    token = server.issue_request_token()
    session = kite.generate_session(token, server.api_secret)
    assert session["access_token"] in server.sessions
    assert kite.profile()["user_id"] == server.user_id  # the Authorization header works
    with pytest.raises(kex.TokenException, match="invalid or has expired"):
        kite.generate_session(token, server.api_secret)


def test_every_call_needs_the_version_header_and_errors_are_json(server):
    req = urllib.request.Request(f"{server.url}/orders")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)  # noqa: S310 - the local test server
    assert err.value.code == 400
    body = json.loads(err.value.read())
    assert body["status"] == "error" and body["error_type"] == "InputException"


def test_place_modify_cancel_and_the_order_history(server):
    kite = KiteConnect(server.api_key, server.issue_access_token(), root=server.url)
    oid = kite.place_order("regular", "NSE", "INFY", "BUY", 5, "CNC", "LIMIT", price=1400,
                           tag="t1")  # fmt: skip
    kite.modify_order("regular", oid, price=1450.05)
    assert kite.orders()[0]["price"] == 1450.05
    with pytest.raises(kex.InputException, match="Tick size"):
        kite.modify_order("regular", oid, price=1450.01)
    server.set_price("INFY", "1450")  # crosses the limit: fills
    history = [h["status"] for h in kite.order_history(oid)]
    assert history[:3] == ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN"]
    assert history[-1] == "COMPLETE"
    with pytest.raises(kex.InputException, match="cannot be cancelled"):
        kite.cancel_order("regular", oid)
    assert kite.positions()["net"][0]["quantity"] == 5
    assert kite.margins("equity")["net"] == 1000000 - 5 * 1450
