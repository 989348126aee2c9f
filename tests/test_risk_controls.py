"""The seed's remaining risk controls through the CLI: max_open_positions before a trade,
max_position_pct of capital, the circuit breaker's consecutive-failures mode, and risk
refusals counted in `trading_orders_rejected`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ccxtkit.metrics import collect
from ccxtkit.risk import killswitch
from ccxtkit.workspace import Workspace
from tests.test_risk_orders import rows, run, workspace


def _sample(home: Path, name: str, **labels: str) -> float | None:
    ws = Workspace.locate(str(home))
    text = generate_latest(collect(ws, now=datetime.now(UTC))).decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def test_max_open_positions_refuses_a_new_position_before_the_trade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = workspace(tmp_path, risk={"max_open_positions": 1})
    assert run(capsys, home, "trade", "buy", "BTC/USD", "0.01")[0] == 0
    code, _, err = run(capsys, home, "trade", "buy", "ETH/USD", "0.1")
    assert code == 3 and "max_open_positions" in err, err
    assert rows(home, "SELECT count(*) FROM orders WHERE symbol = 'ETH/USD'") == [(0,)]
    assert run(capsys, home, "trade", "buy", "BTC/USD", "0.01")[0] == 0  # the same position
    # A resting buy of a new asset is a position too (finding 2).
    home2 = workspace(tmp_path / "two", risk={"max_open_positions": 1})
    limit = ("--type", "limit", "--price", "1000")
    assert run(capsys, home2, "trade", "buy", "ETH/USD", "0.1", *limit)[0] == 0
    code, _, err = run(capsys, home2, "trade", "buy", "BTC/USD", "0.01")
    assert code == 3 and "max_open_positions" in err, err


def test_max_position_pct_of_capital(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = workspace(tmp_path, risk={"max_position_pct": "10"})
    assert run(capsys, home, "trade", "buy", "BTC/USD", "0.16")[0] == 0  # $9,600 of ~$100,000
    code, _, err = run(capsys, home, "trade", "buy", "BTC/USD", "0.01")
    assert code == 3 and "max_position_pct" in err and "% of the portfolio" in err, err
    # The USD cap and the percentage are separate limits: each refuses on its own.
    assert run(capsys, home, "trade", "buy", "ETH/USD", "1")[0] == 0


def _breaker(tmp_path: Path, mode: str) -> Path:
    return workspace(
        tmp_path / mode,
        risk={"circuit_breaker": {"max_failures": 3, "window_minutes": 5, "mode": mode}},
    )


def test_circuit_breaker_consecutive_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dust = ("trade", "buy", "BTC/USD", "0.00001")  # under the paper minimum: rejected
    good = ("trade", "buy", "BTC/USD", "0.001")
    consecutive = _breaker(tmp_path, "consecutive")
    window = _breaker(tmp_path, "window")
    for home in (consecutive, window):
        for args in (dust, dust, good, dust, dust):
            code, _, err = run(capsys, home, *args)
            assert code in (0, 4, 5), err
    # Three failures within five minutes trip the windowed breaker; two in a row do not
    # trip the consecutive one, whose run was reset by the accepted order.
    assert killswitch.read_state(Workspace.locate(str(window))).trigger == "circuit_breaker"
    assert not killswitch.is_active(Workspace.locate(str(consecutive)))
    assert run(capsys, consecutive, *dust)[0] == 5  # the third in a row
    state = killswitch.read_state(Workspace.locate(str(consecutive)))
    assert state.active and state.trigger == "circuit_breaker" and "in a row" in str(state.reason)


def test_risk_refusals_count_as_rejected_orders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = workspace(tmp_path)
    assert run(capsys, home, "trade", "buy", "BTC/USD", "0.01")[0] == 0
    assert _sample(home, "trading_orders_rejected_total", exchange="paper") == 0
    assert run(capsys, home, "trade", "buy", "BTC/USD", "1")[0] == 3  # over max_order_value
    assert run(capsys, home, "trade", "buy", "BTC/USD", "1", "--dry-run")[0] == 3  # not an order
    assert _sample(home, "trading_orders_rejected_total", exchange="paper") == 1
    assert _sample(home, "trading_orders_filled_total", exchange="paper") == 1
