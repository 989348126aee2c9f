"""The kill switch's automatic triggers at their boundaries (pure rules, no I/O)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

from ccxtkit.risk import triggers

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_max_drawdown_fires_at_the_limit_not_below():
    assert triggers.max_drawdown(D("14.999999"), D("15")) is None
    hit = triggers.max_drawdown(D("15"), D("15"))
    assert hit is not None and hit.name == "max_drawdown" and "15%" in hit.reason
    assert triggers.max_drawdown(D("15.000001"), D("15")) is not None


def test_max_drawdown_unknown_or_disabled_never_fires():
    assert triggers.max_drawdown(None, D("15")) is None
    assert triggers.max_drawdown(D("99"), D("0")) is None
    assert triggers.max_drawdown(D("99"), None) is None


def test_daily_loss_usd_fires_only_over_the_limit():
    assert triggers.daily_loss(D("-1000"), D("1000"), None) is None  # equal: allowed
    assert triggers.daily_loss(D("-999.99"), D("1000"), None) is None
    hit = triggers.daily_loss(D("-1000.01"), D("1000"), None)
    assert hit is not None and hit.name == "daily_loss" and "1000.01" in hit.reason
    assert triggers.daily_loss(D("5000"), D("1000"), None) is None  # a gain


def test_daily_loss_percentage_of_capital():
    # 5% of 200,000 is 10,000.
    assert triggers.loss_limit_usd("5%", D("200000")) == D("10000")
    assert triggers.daily_loss(D("-10000"), "5%", D("200000")) is None
    hit = triggers.daily_loss(D("-10000.01"), "5%", D("200000"))
    assert hit is not None and "(5%)" in hit.reason
    # A string USD amount works as well; unknown capital leaves a % limit unevaluated.
    assert triggers.daily_loss(D("-10.01"), "10", None) is not None
    assert triggers.daily_loss(D("-1000000"), "5%", None) is None
    assert triggers.daily_loss(None, D("1"), None) is None


def _failures(ages_seconds):
    return [NOW - timedelta(seconds=s) for s in ages_seconds]


def test_circuit_breaker_counts_n_within_m_minutes():
    nine = _failures(range(0, 270, 30))
    assert len(nine) == 9
    assert triggers.circuit_breaker(nine, NOW, 10, 5) is None
    ten = _failures([*range(0, 270, 30), 299])
    hit = triggers.circuit_breaker(ten, NOW, 10, 5)
    assert hit is not None and hit.name == "circuit_breaker" and "10 failed" in hit.reason


def test_circuit_breaker_window_edge_and_future_excluded():
    # Exactly M minutes old has left the window; a failure stamped after `now` is not counted.
    edge = _failures([0] * 9 + [300])
    assert triggers.circuit_breaker(edge, NOW, 10, 5) is None
    future = _failures([0] * 9) + [NOW + timedelta(seconds=1)]
    assert triggers.circuit_breaker(future, NOW, 10, 5) is None
    assert triggers.circuit_breaker(_failures([0] * 10), NOW, 10, 5, enabled=False) is None


def test_max_open_positions_fires_only_over_the_maximum():
    assert triggers.max_open_positions(3, 3) is None
    hit = triggers.max_open_positions(4, 3)
    assert hit is not None and hit.name == "max_open_positions"
    assert triggers.max_open_positions(100, None) is None
    assert triggers.max_open_positions(None, 1) is None
    assert triggers.max_open_positions(1, 0) is not None


def test_evaluate_returns_every_fired_rule_in_fixed_order():
    inputs = triggers.TriggerInputs(
        drawdown_pct=D("20"),
        realised_pnl_today=D("-2000"),
        capital_usd=D("10000"),
        open_positions=5,
        failure_times=tuple(_failures([1] * 10)),
    )
    fired = triggers.evaluate(
        inputs,
        NOW,
        max_drawdown_pct=D("15"),
        daily_loss_limit="5%",
        max_failures=10,
        window_minutes=5,
        breaker_enabled=True,
        max_positions=4,
    )
    assert [t.name for t in fired] == list(triggers.TRIGGER_NAMES)
    quiet = triggers.evaluate(
        triggers.TriggerInputs(),
        NOW,
        max_drawdown_pct=D("15"),
        daily_loss_limit="5%",
        max_failures=10,
        window_minutes=5,
        breaker_enabled=True,
        max_positions=4,
    )
    assert quiet == []


def test_consecutive_breaker_fires_at_n_in_a_row():
    from ccxtkit.risk.triggers import consecutive_breaker

    assert consecutive_breaker(2, 3) is None
    fired = consecutive_breaker(3, 3)
    assert fired is not None and fired.name == "circuit_breaker" and "in a row" in fired.reason
    assert consecutive_breaker(5, 3, enabled=False) is None
    assert consecutive_breaker(None, 3) is None
