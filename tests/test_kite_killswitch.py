"""The kill switch on a Kite account beside a paper one: open orders cancelled, intraday
positions squared off in their product, delivery shares sold only with --flatten, every order
through the recorded emergency path."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest

from ccxtkit.workspace import Workspace
from tests.exchange_fixtures import kite_ready, latest_events, ledger, vhc
from tests.kite_server import KiteServer

PAPER = {"paper": {"id": "paper", "paper": {"starting_balances": {"USD": 100000}}}}


@pytest.fixture
def ws(tmp_path: Path, kite_server: KiteServer, file_keyring: Path, capsys) -> Workspace:
    """Kite: 10 INFY MIS bought, 5 TCS CNC bought today, 20 SBIN held, a resting order; paper:
    some BTC."""
    workspace = kite_ready(tmp_path, kite_server, capsys, extra_accounts=PAPER)
    kite_server.set_holding("SBIN", 20, "700")
    z = ["--exchange", "zerodha", "--yes"]
    for args in (
        ["trade", "buy", "NSE:INFY", "10", "--product", "MIS", *z],
        ["trade", "buy", "NSE:TCS", "1", "--product", "CNC", *z],
        ["trade", "buy", "NSE:INFY", "1", "--type", "limit", "--price", "1000", *z],
        ["trade", "buy", "BTC/USD", "0.01", "--exchange", "paper"],
    ):
        code, out, err = vhc(capsys, workspace, *args)
        assert code == 0, out + err
    return workspace


def activate(capsys, ws: Workspace, *extra: str) -> dict:
    code, out, err = vhc(capsys, ws, "--json", "kill-switch", "--activate", "--reason", "drill",
                         *extra)  # fmt: skip
    assert code == 0, out + err
    return {a["account"]: a for a in json.loads(out)["accounts"]}


def sends(server: KiteServer) -> list[tuple[str, str, str, int]]:
    return [(o.tradingsymbol, o.transaction_type, o.product, o.quantity) for o in server.orders]


def test_activate_squares_off_intraday_only(ws, kite_server, capsys):
    before = len(kite_server.orders)
    accounts = activate(capsys, ws)
    assert set(accounts) == {"zerodha", "paper"}
    z = accounts["zerodha"]
    assert z["ok"], z
    assert len(z["canceled"]) == 1 and kite_server.open_orders() == []
    # Only the MIS position was closed: sold in MIS, at market.
    assert sends(kite_server)[before:] == [("INFY", "SELL", "MIS", 10)]
    assert [c["product"] for c in z["closed"]] == ["MIS"]
    positions = {(s, p): v["quantity"] for (s, p), v in kite_server.positions.items()}
    assert positions == {("INFY", "MIS"): 0, ("TCS", "CNC"): 1}
    # The square-off order is on the record like any other: intent, outcome, fill.
    (cid,) = [c["client_order_id"] for c in z["closed"]]
    assert latest_events(ws)[cid] == "filled"
    assert ledger(ws, "SELECT source, side, amount FROM trades WHERE client_order_id = ?",
                  [cid]) == [("kill_switch", "sell", D(10))]  # fmt: skip
    code, out, err = vhc(capsys, ws, "ledger", "verify")
    assert code == 0, out + err


def test_activate_with_flatten_sells_delivery_shares_too(ws, kite_server, capsys):
    before = len(kite_server.orders)
    accounts = activate(capsys, ws, "--flatten")
    z = accounts["zerodha"]
    assert z["ok"], z
    assert sorted(sends(kite_server)[before:]) == [
        ("INFY", "SELL", "MIS", 10),
        ("SBIN", "SELL", "CNC", 20),
        ("TCS", "SELL", "CNC", 1),
    ]
    assert all(latest_events(ws)[c["client_order_id"]] == "filled" for c in z["closed"])
    assert accounts["paper"]["ok"] and accounts["paper"]["closed"]  # the BTC was sold too


def test_a_lost_reply_during_square_off_is_found_by_tag_not_resent(ws, kite_server, capsys):
    before = len(kite_server.orders)
    kite_server.drop_reply_next("/orders/regular", method="POST")
    z = activate(capsys, ws)["zerodha"]
    assert z["ok"], z
    assert sends(kite_server)[before:] == [("INFY", "SELL", "MIS", 10)]  # sent once
    (closed,) = z["closed"]
    assert closed["status"] == "closed" and latest_events(ws)[closed["client_order_id"]] == "filled"
