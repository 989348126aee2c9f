"""One source of truth for risk figures: the limits, the kill switch's triggers, the metrics and
`kill-switch --status` read the same drawdown and PnL (`risk.figures`), and agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ccxtkit.ledger.store import open_ledger
from ccxtkit.metrics import collect
from ccxtkit.risk import autocheck, figures, killswitch
from ccxtkit.risk.limits import OrderProposal, check_order
from ccxtkit.workspace import Workspace
from tests.test_risk_orders import run, workspace


def _metric(ws: Workspace, name: str, now: datetime) -> float | None:
    text = generate_latest(collect(ws, now=now)).decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return None


def _snapshot(ws: Workspace, when: datetime, usd: str) -> None:
    with open_ledger(ws.ledger_path, 5) as ledger:
        ledger.append(
            "balance_snapshots",
            [{"timestamp": when, "exchange": "paper", "asset": "USD", "total": D(usd),
              "free": D(usd), "source": "test"}],
        )  # fmt: skip


def _readings(ws: Workspace, now: datetime) -> dict[str, D | float | None]:
    """The drawdown as each reader sees it."""
    inputs, _ = autocheck.gather_inputs(ws, now)
    with open_ledger(ws.ledger_path, 5, read_only=True) as ledger:
        exposure = figures.compute(ledger, now, ws.config.timezone).exposure
    p = OrderProposal("paper", "BTC/USD", "BTC", "USD", "buy", "market", D("0.01"), D("60000"))
    (limit,) = [c for c in check_order(p, exposure, ws.config.risk) if "drawdown" in c.name]
    status = figures.status_figures(ws, now)
    assert status is not None
    return {
        "trigger": inputs.drawdown_pct,
        "limit": limit.value,
        "metric": _metric(ws, "trading_drawdown_pct", now),
        "status": D(str(status["drawdown_pct"])),
    }


def test_withdrawal_is_no_drawdown_anywhere_and_a_loss_is_the_same_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = workspace(tmp_path, {"USD": "50000"}, risk={"max_drawdown_pct": "15"})
    ws = Workspace.locate(str(home))
    now = datetime.now(UTC)
    _snapshot(ws, now - timedelta(hours=3), "100000")
    with open_ledger(ws.ledger_path, 5) as ledger:
        ledger.append(
            "transfers",
            [{"timestamp": now - timedelta(hours=2), "exchange": "paper", "kind": "withdrawal",
              "asset": "USD", "amount": D("50000"), "status": "ok", "source": "test"}],
        )  # fmt: skip
    _snapshot(ws, now - timedelta(hours=1), "50000")
    readings = _readings(ws, now)
    assert readings == {"trigger": 0, "limit": 0, "metric": 0.0, "status": 0}, readings
    code, out, err = run(capsys, home, "--json", "kill-switch", "--status")
    assert code == 0 and D(json.loads(out)["risk"]["drawdown_pct"]) == 0, out + err
    code, out, err = run(capsys, home, "--json", "kill-switch", "--check")
    assert code == 0 and json.loads(out)["fired"] == [], out + err
    code, _, err = run(capsys, home, "trade", "buy", "BTC/USD", "0.01", "--dry-run")
    assert code == 0, err  # the pre-trade drawdown check sees 0 % too

    # A real loss: $50k -> $40k is 20 % below the flow-adjusted high, for every reader.
    _snapshot(ws, datetime.now(UTC) + timedelta(seconds=1), "40000")
    later = datetime.now(UTC) + timedelta(seconds=2)
    readings = _readings(ws, later)
    assert readings == {"trigger": 20, "limit": 20, "metric": 20.0, "status": 20}, readings
    code, out, err = run(capsys, home, "--json", "kill-switch", "--check")
    assert code == 1, out + err
    assert [f["trigger"] for f in json.loads(out)["fired"]] == ["max_drawdown"]
    assert killswitch.read_state(ws).active
    code, out, err = run(capsys, home, "kill-switch", "--status")
    assert code == 0 and "drawdown 20" in out, out + err


def test_pnl_and_prices_are_one_figure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = workspace(tmp_path)
    assert run(capsys, home, "trade", "buy", "BTC/USD", "0.1")[0] == 0
    from tests.test_risk_orders import set_prices

    set_prices(home, {"BTC/USD": "50000"})
    assert run(capsys, home, "trade", "sell", "BTC/USD", "0.1")[0] == 0
    ws = Workspace.locate(str(home))
    now = datetime.now(UTC)
    # Two prices stamped in one order and appended in the other: the latest by time wins.
    with open_ledger(ws.ledger_path, 5) as ledger:
        ledger.append("prices", [
            {"timestamp": now, "asset": "ETH", "quote": "USD", "price": D("3100"), "source": "t"},
            {"timestamp": now - timedelta(hours=1), "asset": "ETH", "quote": "USD",
             "price": D("2900"), "source": "t"},
        ])  # fmt: skip
        computed = figures.compute(ledger, now, ws.config.timezone)
        assert figures.latest_prices(ledger)["ETH"] == D("3100")
        assert autocheck.ledger_prices(ledger)["ETH"] == D("3100")
    inputs, _ = autocheck.gather_inputs(ws, now)
    assert computed.pnl_today_usd is not None and computed.pnl_today_usd < -900  # a realised loss
    assert inputs.realised_pnl_today == computed.pnl_today_usd
    metric = _metric(ws, "trading_pnl_daily_usd", now)
    assert metric == pytest.approx(float(computed.pnl_by_exchange["paper"]))
    status = figures.status_figures(ws, now)
    assert status is not None and D(str(status["pnl_today_usd"])) == computed.pnl_today_usd


def test_max_drawdown_trips_the_switch_and_cancels_resting_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ccxtkit.exchanges.factory import open_exchange

    home = workspace(tmp_path, risk={"max_drawdown_pct": "15"})
    ws = Workspace.locate(str(home))
    code, _, err = run(
        capsys, home, "trade", "buy", "BTC/USD", "0.1", "--type", "limit", "--price", "50000"
    )
    assert code == 0, err
    code, out, _ = run(capsys, home, "--json", "kill-switch", "--check")
    assert code == 0 and json.loads(out)["fired"] == []
    _snapshot(ws, datetime.now(UTC) + timedelta(seconds=1), "84000")  # 16 % below the high
    code, out, err = run(capsys, home, "--json", "kill-switch", "--check")
    assert code == 1, out + err
    doc = json.loads(out)
    assert [f["trigger"] for f in doc["fired"]] == ["max_drawdown"]
    assert len(doc["activation"]["accounts"][0]["canceled"]) == 1
    assert killswitch.read_state(ws).active
    assert open_exchange(ws, "paper").fetch_open_orders() == []
    code, out, _ = run(capsys, home, "--json", "trade", "orders")
    assert json.loads(out) == []  # the cancel is on the record
