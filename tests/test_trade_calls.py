"""Exchange calls per order on Kraken: one ticker, one balance, the create, the outcome, the fills."""

import json
from decimal import Decimal
from pathlib import Path

from ccxtkit.ledger.store import open_ledger
from tests.test_killswitch import make_workspace, run_cli
from tests.test_serve_ledger_kept import lock_is_held


def _workspace(tmp_path, monkeypatch, kraken_server):
    creds = kraken_server.credentials()
    monkeypatch.setenv("KRAKEN_API_KEY", creds["apiKey"])
    monkeypatch.setenv("KRAKEN_API_SECRET", creds["secret"])
    kraken_server.set_balance("USD", "100000")
    kraken_server.set_balance("BTC", "0.1")
    account = {"secrets": "env", "rate_limit": 1000, "ccxt": kraken_server.ccxt_config()}
    return make_workspace(tmp_path, {"kraken": account})


def _calls(kraken_server, since: int) -> list[str]:
    return [r.path.rsplit("/", 1)[-1] for r in kraken_server.requests[since:]]


def _trade(ws, capsys, side: str) -> None:
    args = ["trade", side, "BTC/USD", "0.01", "--exchange", "kraken", "--yes"]
    code, _, err = run_cli(ws, args, capsys)
    assert code == 0, err


def test_a_market_order_takes_five_calls_and_its_fee_is_in_the_quote(
    tmp_path, monkeypatch, kraken_server, capsys
):
    ws = _workspace(tmp_path, monkeypatch, kraken_server)
    _trade(ws, capsys, "buy")  # the first order also loads (and caches) the market lists
    for side in ("buy", "sell"):
        start = len(kraken_server.requests)
        _trade(ws, capsys, side)
        calls = _calls(kraken_server, start)
        assert calls == ["Ticker", "BalanceEx", "AddOrder", "QueryOrders", "TradesHistory"]
        assert kraken_server.requests[start + 2].params["oflags"] == "fciq"
    with open_ledger(ws.ledger_path, read_only=True) as ledger:
        rows = ledger.query("SELECT side, fee, fee_currency FROM trades ORDER BY seq")
    assert [(side, cur) for side, _, cur in rows] == [
        ("buy", "USD"),
        ("buy", "USD"),
        ("sell", "USD"),
    ]
    assert all(fee > Decimal(0) for _, fee, _ in rows)
    assert kraken_server.balance("BTC") == Decimal("0.11")  # the sell's fee was not in BTC


def test_with_fee_credits_the_exchange_ledger_says_what_was_charged(
    tmp_path, monkeypatch, kraken_server, capsys
):
    ws = _workspace(tmp_path, monkeypatch, kraken_server)
    kraken_server.set_balance("KFEE", "10")
    _trade(ws, capsys, "buy")
    kraken_server.set_next_fee("KFEE", "0.25")  # Kraken spends fee credits first
    start = len(kraken_server.requests)
    _trade(ws, capsys, "buy")
    assert "Ledgers" in _calls(kraken_server, start)
    with open_ledger(ws.ledger_path, read_only=True) as ledger:
        last = ledger.query("SELECT fee, fee_currency FROM trades ORDER BY seq DESC LIMIT 1")
    assert last == [(Decimal("0.25"), "KFEE")]


def _resting_orders(ws, capsys, count: int) -> None:
    for _ in range(count):
        args = ["trade", "buy", "BTC/USD", "0.01", "--type", "limit", "--price", "1000"]
        code, _, err = run_cli(ws, [*args, "--exchange", "kraken", "--yes"], capsys)
        assert code == 0, err


def test_the_kill_switch_sweeps_kraken_in_three_calls(tmp_path, monkeypatch, kraken_server, capsys):
    """List, cancel all (its count names as many as were listed: confirmed, no second read),
    then the fills of vhc's own cancelled orders, to record them."""
    ws = _workspace(tmp_path, monkeypatch, kraken_server)
    _resting_orders(ws, capsys, 3)
    start = len(kraken_server.requests)
    code, out, err = run_cli(
        ws, ["--json", "kill-switch", "--activate", "--reason", "calls"], capsys
    )
    assert code == 0, out + err
    calls = _calls(kraken_server, start)
    assert calls == ["OpenOrders", "CancelAll", "TradesHistory"]
    assert kraken_server.open_orders() == []
    swept = json.loads(out)["accounts"][0]
    assert len(swept["canceled"]) == 3 and swept["still_open"] == [] and swept["ok"]
    code, out, _ = run_cli(ws, ["--json", "trade", "orders"], capsys)
    assert code == 0 and json.loads(out) == []  # the sweep recorded each cancel


def test_a_cancel_all_count_short_of_the_list_is_checked_by_reading_again(
    tmp_path, monkeypatch, kraken_server, capsys
):
    """An order closed on the exchange between the list and the cancel (here: by someone
    else) makes the count differ: vhc reads the open orders again rather than trust it."""
    ws = _workspace(tmp_path, monkeypatch, kraken_server)
    _resting_orders(ws, capsys, 3)
    cancel_all = kraken_server._private_CancelAll

    def one_closed_first(params):
        kraken_server._cancel(kraken_server.open_orders()[0])
        return cancel_all(params)

    monkeypatch.setattr(kraken_server, "_private_CancelAll", one_closed_first)
    start = len(kraken_server.requests)
    code, out, err = run_cli(
        ws, ["--json", "kill-switch", "--activate", "--reason", "calls"], capsys
    )
    assert code == 0, out + err
    assert _calls(kraken_server, start)[:3] == ["OpenOrders", "CancelAll", "OpenOrders"]
    swept = json.loads(out)["accounts"][0]
    assert swept["still_open"] == [] and swept["ok"]


def _calls_seen_with_the_lock(kraken_server, monkeypatch, ledger: Path) -> list[tuple[str, bool]]:
    """Each request the exchange gets, and whether the ledger's lock was held just then."""
    seen: list[tuple[str, bool]] = []
    respond = kraken_server._respond

    def spying(h):
        seen.append((h.path.split("?")[0].rsplit("/", 1)[-1], lock_is_held(ledger)))
        return respond(h)

    monkeypatch.setattr(kraken_server, "_respond", spying)
    return seen


def test_no_exchange_call_waits_with_the_ledger_held_pending_orders_or_not(
    tmp_path, monkeypatch, kraken_server, capsys
):
    """With nothing pending the checks and the intent take one visit; a resting order of
    vhc's is looked up on the exchange first, with the ledger closed, then the checks run."""
    ws = _workspace(tmp_path, monkeypatch, kraken_server)
    _trade(ws, capsys, "buy")
    seen = _calls_seen_with_the_lock(kraken_server, monkeypatch, ws.ledger_path)
    _trade(ws, capsys, "buy")  # nothing pending
    assert [name for name, _ in seen] == [
        "Ticker", "BalanceEx", "AddOrder", "QueryOrders", "TradesHistory",
    ]  # fmt: skip
    assert [name for name, held in seen if held] == []
    _resting_orders(ws, capsys, 1)
    seen.clear()
    _trade(ws, capsys, "sell")  # the resting buy is pending: looked up before the checks
    names = [name for name, _ in seen]
    assert names[:2] == ["Ticker", "BalanceEx"] and "AddOrder" in names
    assert names[2:5] == ["OpenOrders", "ClosedOrders", "AddOrder"]  # looked up, then sent
    assert [name for name, held in seen if held] == []
