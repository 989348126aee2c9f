"""Kite accounts through the CLI: login, orders (market, limit, MIS, CNC, AMO), lost replies,
expired sessions, market hours, tick sizes and the USD/INR rate the limits need."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from ccxtkit.metrics.latency import read_latency
from ccxtkit.workspace import Workspace
from tests.exchange_fixtures import (
    kite_login,
    kite_workspace,
    latest_events,
    ledger,
    record_usd_inr,
    vhc,
)
from tests.kite_server import KiteServer


@pytest.fixture
def ws(tmp_path: Path, kite_server: KiteServer, file_keyring: Path) -> Workspace:
    """A workspace with Kite account `zerodha`, logged in, and a USD/INR rate recorded."""
    workspace = kite_workspace(tmp_path, kite_server)
    record_usd_inr(workspace, "83.20")
    return workspace


BUY = ["trade", "buy", "NSE:INFY", "10", "--exchange", "zerodha", "--yes"]


# -- login --------------------------------------------------------------------------------------
def test_login_stores_the_session_and_a_request_token_works_once(ws, kite_server, capsys):
    token = kite_server.issue_request_token()
    code, out, err = vhc(capsys, ws, "--json", "kite", "login", token)
    assert code == 0, out + err
    doc = json.loads(out)
    assert doc["account"] == "zerodha" and doc["user_id"] == kite_server.user_id
    # 06:00 IST the day after the 10:30 IST login, i.e. 00:30 UTC.
    assert doc["expires_at"].startswith("2026-12-02T00:30:00")
    (access,) = kite_server.sessions
    assert access not in out + err
    # The stored session works: a read through the account succeeds with the Kite header.
    code, out, err = vhc(capsys, ws, "balances", "--exchange", "zerodha")
    assert code == 0, out + err
    assert "INR" in out
    # The same request token again: refused by Kite -> exit 8 with how to log in again.
    code, out, err = vhc(capsys, ws, "kite", "login", token)
    assert code == 8
    assert "log in again at https://kite.zerodha.com/connect/login?api_key=" in err


def test_login_reads_the_token_from_stdin(ws, kite_server, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(kite_server.issue_request_token() + "\n"))
    code, out, err = vhc(capsys, ws, "kite", "login", "-")
    assert code == 0, out + err
    assert "Kite session stored for zerodha" in out and len(kite_server.sessions) == 1


def test_no_session_or_an_expired_one_is_exit_8_with_how_to_renew(ws, kite_server, capsys):
    code, out, err = vhc(capsys, ws, *BUY)
    assert code == 8
    assert "no Kite session is stored" in err and "vhc kite login --exchange zerodha" in err
    kite_login(capsys, ws, kite_server)
    kite_server.expire_sessions()  # 06:00 IST came
    code, out, err = vhc(capsys, ws, *BUY)
    assert code == 8, err
    assert "Kite refused the session" in err and "vhc kite login --exchange zerodha" in err
    assert "Traceback" not in err and "403" not in err
    assert kite_server.orders == [] and ledger(ws, "SELECT count(*) FROM orders") == [(0,)]


# -- orders -------------------------------------------------------------------------------------
def test_market_mis_buy_fills_with_a_tag_recorded_as_the_client_id(ws, kite_server, capsys):
    kite_login(capsys, ws, kite_server)
    code, out, err = vhc(capsys, ws, "--json", *BUY, "--product", "MIS")
    assert code == 0, out + err
    doc = json.loads(out)
    (order,) = kite_server.orders
    assert order.product == "MIS" and order.variety == "regular" and order.status == "COMPLETE"
    cid = doc["client_order_id"]
    assert order.tag == cid and len(cid) == 20 and cid.startswith("v261201")
    assert latest_events(ws) == {cid: "filled"}
    (trade,) = ledger(ws, "SELECT symbol, asset, quote, side, amount, price, client_order_id "
                          "FROM trades")  # fmt: skip
    assert trade == ("NSE:INFY", "NSE:INFY", "INR", "buy", D(10), D(1500), cid)
    (details,) = ledger(ws, "SELECT details FROM order_events WHERE client_order_id = ?", [cid])
    assert json.loads(details[0]) == {"product": "MIS"}
    # Valued through the recorded rate: 10 x 1500 INR at 83.20 INR/USD (worst price: the ask).
    rate = (1 / D("83.20")).quantize(D("1e-12"))
    assert D(doc["value_usd"]) == D(10) * D("1500.05") * rate


def test_limit_cnc_rests_and_a_price_off_the_tick_is_refused_before_the_record(
    ws, kite_server, capsys
):
    kite_login(capsys, ws, kite_server)
    code, out, err = vhc(capsys, ws, *BUY, "--type", "limit", "--price", "1400.03",
                         "--product", "CNC")  # fmt: skip
    assert code == 2 and "tick size 0.05" in err
    assert kite_server.orders == [] and ledger(ws, "SELECT count(*) FROM orders") == [(0,)]
    code, out, err = vhc(capsys, ws, *BUY, "--type", "limit", "--price", "1400.05",
                         "--product", "CNC")  # fmt: skip
    assert code == 0, out + err
    (order,) = kite_server.orders
    assert order.status == "OPEN" and order.product == "CNC" and order.price == D("1400.05")
    assert list(latest_events(ws).values()) == ["open"]
    kite_server.set_price("INFY", "1400")  # crosses: fills
    code, out, err = vhc(capsys, ws, "trade", "recover", "--exchange", "zerodha")
    assert code == 0, out + err
    assert list(latest_events(ws).values()) == ["filled"]
    assert ledger(ws, "SELECT amount, price FROM trades") == [(D(10), D(1400))]


def test_whole_shares_only_and_product_refused_on_other_accounts(ws, kite_server, capsys):
    kite_login(capsys, ws, kite_server)
    code, out, err = vhc(capsys, ws, "trade", "buy", "NSE:INFY", "1.5", "--exchange", "zerodha",
                         "--yes")  # fmt: skip
    assert code == 2 and "whole number of shares" in err
    assert kite_server.orders == []


def test_a_lost_reply_is_resolved_by_tag_without_a_second_send(ws, kite_server, capsys):
    kite_login(capsys, ws, kite_server)
    kite_server.drop_reply_next("/orders/regular", method="POST")
    code, out, err = vhc(capsys, ws, "--json", *BUY)
    assert code == 0, out + err
    assert len(kite_server.requests_to("/orders/regular", "POST")) == 1
    (order,) = kite_server.orders
    cid = json.loads(out)["client_order_id"]
    assert order.tag == cid and latest_events(ws) == {cid: "filled"}
    assert ledger(ws, "SELECT count(*) FROM trades") == [(1,)]


def test_rate_limited_order_is_refused_not_resent(ws, kite_server, capsys):
    kite_login(capsys, ws, kite_server)
    kite_server.fail_next("/orders/regular", 429, "NetworkException", "Too many requests",
                          method="POST")  # fmt: skip
    code, out, err = vhc(capsys, ws, *BUY)
    assert code == 5 and "rate limited by Kite" in err
    assert len(kite_server.requests_to("/orders/regular", "POST")) == 1
    assert kite_server.orders == [] and list(latest_events(ws).values()) == ["rejected"]


def test_a_rejection_after_acceptance_is_exit_5_and_recorded(ws, kite_server, capsys):
    kite_login(capsys, ws, kite_server)
    kite_server.reject_next("RMS:Blocked for this instrument")
    code, out, err = vhc(capsys, ws, *BUY)
    assert code == 5 and "RMS:Blocked for this instrument" in err
    assert list(latest_events(ws).values()) == ["rejected"]


def test_outside_market_hours_regular_is_refused_with_the_next_open_amo_is_sent(
    tmp_path, kite_server, file_keyring, capsys
):
    ws = kite_workspace(tmp_path, kite_server, kite={"holidays": ["2026-12-02"]})
    record_usd_inr(ws, "83.20")
    kite_login(capsys, ws, kite_server)
    kite_server.set_now_ist("2026-12-01 16:00")
    code, out, err = vhc(capsys, ws, *BUY)
    assert code == 2, err
    # 2 December is a configured holiday: the next session is the 3rd.
    assert "NSE is closed now (2026-12-01 16:00 IST); it opens 2026-12-03 09:15 IST" in err
    assert kite_server.orders == [] and ledger(ws, "SELECT count(*) FROM orders") == [(0,)]
    code, out, err = vhc(capsys, ws, *BUY, "--variety", "amo", "--type", "limit",
                         "--price", "1490")  # fmt: skip
    assert code == 0, out + err
    (order,) = kite_server.orders
    assert order.variety == "amo" and order.status == "AMO REQ RECEIVED"
    assert list(latest_events(ws).values()) == ["open"]


def test_no_usd_inr_rate_refuses_the_order_exit_3(tmp_path, kite_server, file_keyring, capsys):
    ws = kite_workspace(tmp_path, kite_server)
    kite_login(capsys, ws, kite_server)
    code, out, err = vhc(capsys, ws, *BUY)
    assert code == 3, out + err
    assert kite_server.orders == []


def test_an_order_over_the_usd_limit_is_refused(ws, kite_server, capsys):
    kite_login(capsys, ws, kite_server)
    # 300 x 1500 INR = 450000 INR = about 5409 USD > max_order_value 5000
    code, out, err = vhc(capsys, ws, "trade", "buy", "NSE:INFY", "300", "--exchange", "zerodha",
                         "--yes")  # fmt: skip
    assert code == 3
    assert kite_server.orders == []


def test_cancel_and_orders_on_kite(ws, kite_server, capsys):
    kite_login(capsys, ws, kite_server)
    code, out, err = vhc(capsys, ws, *BUY, "--type", "limit", "--price", "1000")
    assert code == 0, out + err
    (order,) = kite_server.orders
    code, out, err = vhc(capsys, ws, "trade", "cancel", order.order_id, "--exchange", "zerodha")
    assert code == 0, out + err
    assert order.status == "CANCELLED" and list(latest_events(ws).values()) == ["canceled"]


def test_a_configured_rate_values_the_order_when_the_ledger_has_none(
    tmp_path, kite_server, file_keyring, capsys
):
    ws = kite_workspace(tmp_path, kite_server, kite={"inr_per_usd": "80"})
    kite_login(capsys, ws, kite_server)
    code, out, err = vhc(capsys, ws, "--json", *BUY)
    assert code == 0, out + err
    assert D(json.loads(out)["value_usd"]) == D(10) * D("1500.05") / D(80)
    # A rate recorded in the ledger wins over the configured one.
    record_usd_inr(ws, "50")
    code, out, err = vhc(capsys, ws, "--json", *BUY, "--dry-run")
    assert code == 0, out + err
    assert D(json.loads(out)["value_usd"]) == D(10) * D("1500.05") / D(50)


def test_the_configured_rate_is_no_exchange_call_in_the_latency_samples(
    tmp_path, kite_server, file_keyring, capsys
):
    ws = kite_workspace(tmp_path, kite_server, kite={"inr_per_usd": "80"})
    kite_login(capsys, ws, kite_server)
    code, out, err = vhc(capsys, ws, *BUY)
    assert code == 0, out + err
    methods = [s.method for s in read_latency(ws) if s.exchange == "zerodha"]
    assert "create_order" in methods and "fetch_balance" in methods  # calls to Kite: timed
    local = {"configured_usd_rates", "now", "new_client_order_id"}  # a setting, a clock
    assert local.isdisjoint(methods), methods


def test_an_open_order_in_another_share_is_valued_for_the_next_order(ws, kite_server, capsys):
    kite_login(capsys, ws, kite_server)
    code, out, err = vhc(capsys, ws, "trade", "buy", "NSE:TCS", "2", "--type", "limit",
                         "--price", "3000", "--exchange", "zerodha", "--yes")  # fmt: skip
    assert code == 0, out + err
    # The TCS remainder counts in today's volume: it needs TCS's price in USD, not a refusal.
    code, out, err = vhc(capsys, ws, *BUY)
    assert code == 0, out + err
    assert len(kite_server.orders) == 2


def test_doctor_names_the_kite_session_and_its_end(ws, kite_server, capsys):
    code, out, err = vhc(capsys, ws, "doctor")
    assert code == 8 and "no Kite session is stored" in out + err
    kite_login(capsys, ws, kite_server)
    code, out, err = vhc(capsys, ws, "doctor")
    # The test server's day (2026-12-01) is behind this machine's clock: the session stored
    # at that login has ended by the local clock, and doctor says so.
    assert "zerodha: the session ended 2026-12-02T00:30:00+00:00" in out + err
