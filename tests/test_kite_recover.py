"""Kite orders whose fate vhc does not know: a crash between intent and send, a crash after the
send, an answer that is an error (5xx) and a tag from another day, which Kite cannot disprove."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ccxtkit.workspace import Workspace
from tests.crash import run_vhc
from tests.exchange_fixtures import kite_login, kite_ready, latest_events, ledger, vhc
from tests.kite_server import KiteServer
from tests.test_kite_trade import BUY

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def ws(tmp_path: Path, kite_server: KiteServer, file_keyring: Path, capsys) -> Workspace:
    return kite_ready(tmp_path, kite_server, capsys)


def crash(ws: Workspace, point: str) -> None:
    run = run_vhc(ws.home, BUY, crash_at=point, env={"PYTHONPATH": str(REPO)})
    assert run.crashed, (run.code, run.err)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["order.intent_recorded", "order.sent"])
def test_crash_then_recover_sends_nothing_and_resolves_by_tag(ws, kite_server, capsys, point):
    crash(ws, point)
    posts = len(kite_server.requests_to("/orders/regular", "POST"))
    assert posts == (0 if point == "order.intent_recorded" else 1)
    assert latest_events(ws) == {}  # the intent only: its outcome is unknown
    code, out, err = vhc(capsys, ws, "trade", "recover", "--exchange", "zerodha")
    assert code == 0, out + err
    assert len(kite_server.requests_to("/orders/regular", "POST")) == posts  # nothing sent
    (cid,) = [r[0] for r in ledger(ws, "SELECT client_order_id FROM orders")]
    expected = "not_found" if point == "order.intent_recorded" else "filled"
    assert latest_events(ws) == {cid: expected}
    fills = ledger(ws, "SELECT count(*) FROM trades")
    assert fills == [(0,)] if expected == "not_found" else [(1,)]
    code, out, err = vhc(capsys, ws, "ledger", "verify")
    assert code == 0, out + err


def test_a_5xx_answer_is_looked_up_and_sent_again_only_after_absence_is_confirmed(
    ws, kite_server, capsys
):
    # Kite answered 503 before placing anything: the tag is absent from today's book, twice.
    kite_server.fail_next("/orders/regular", 503, "NetworkException",
                          "Upstream service unavailable", method="POST")  # fmt: skip
    code, out, err = vhc(capsys, ws, "--json", *BUY)
    assert code == 0, out + err
    cid = json.loads(out)["client_order_id"]
    assert len(kite_server.requests_to("/orders", "GET")) >= 2  # looked up twice first
    assert len(kite_server.requests_to("/orders/regular", "POST")) == 2
    (order,) = kite_server.orders  # one order on Kite, under the same tag
    assert order.tag == cid and latest_events(ws) == {cid: "filled"}


@pytest.mark.slow
def test_a_tag_from_another_day_is_never_declared_absent(ws, kite_server, capsys):
    crash(ws, "order.intent_recorded")
    kite_server.new_day("2026-12-02 10:00")  # the order book now holds the 2nd only
    kite_login(capsys, ws, kite_server)  # yesterday's session ended at 06:00 IST
    code, out, err = vhc(capsys, ws, "trade", "recover", "--exchange", "zerodha")
    assert "cannot be proven absent" in out + err
    assert latest_events(ws) == {}  # still unknown, not "not_found"
    assert kite_server.requests_to("/orders/regular", "POST") == []


PAPER = {"paper": {"id": "paper", "paper": {"starting_balances": {"USD": 100000}}}}


def test_recover_across_accounts_with_an_expired_kite_session_is_exit_8_with_how_to_renew(
    tmp_path, kite_server, file_keyring, capsys
):
    ws = kite_ready(tmp_path, kite_server, capsys, extra_accounts=PAPER)
    # The reply is lost and Kite's order book cannot be read: the order stays unknown.
    kite_server.drop_reply_next("/orders/regular", method="POST")
    kite_server.fail_next("/orders", 503, method="GET", times=20)
    code, out, err = vhc(capsys, ws, *BUY)
    assert code == 5 and list(latest_events(ws).values()) == ["unknown"], out + err
    kite_server.clear_faults()
    kite_server.expire_sessions()  # 06:00 IST: the day's session has ended
    code, out, err = vhc(capsys, ws, "trade", "recover")
    assert "vhc kite login --exchange zerodha" in out + err
    assert code == 8, out + err
