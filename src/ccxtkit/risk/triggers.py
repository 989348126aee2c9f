"""Automatic kill-switch triggers: pure rules over numbers the caller gathered.

Each rule returns a `Trigger` (its name and a reason a person can read) or None. Nothing here
reads a file, the ledger or the clock: `now` and every figure come in as arguments, so the
boundaries are plain unit tests. Boundaries, stated once:

- max drawdown: fires when the drawdown REACHES the limit (15 % down with a 15 % limit stops
  trading, as the pre-trade check refuses at the limit);
- daily realised loss: fires when today's loss is OVER the limit (a loss equal to it is allowed);
- circuit breaker: in mode `window`, fires when N or more failed/rejected orders fall within
  the last M minutes (a failure exactly M minutes old has left the window); in mode
  `consecutive`, fires when the N latest order outcomes were all failures (an order the
  exchange accepted, open or filled, resets the run);
- max open positions: fires when the count is OVER the maximum.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ccxtkit.money import fmt

#: The trigger names recorded in the kill switch's state (besides "manual").
TRIGGER_NAMES = ("max_drawdown", "daily_loss", "circuit_breaker", "max_open_positions")


@dataclass(frozen=True)
class Trigger:
    """A rule that fired: its name (the activation's `trigger`) and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class TriggerInputs:
    """The figures the rules look at; None means "not known", which never fires a rule."""

    drawdown_pct: Decimal | None = None
    realised_pnl_today: Decimal | None = None  # USD; a loss is negative
    capital_usd: Decimal | None = None  # the base of a percentage daily loss limit
    open_positions: int | None = None
    failure_times: Sequence[datetime] = ()  # failed or rejected orders, UTC
    consecutive_failures: int | None = None  # failures since the last accepted order


@dataclass(frozen=True)
class TriggerLimits:
    """The `risk` settings the rules read (`risk.kill_switch_enabled` is `enabled`)."""

    enabled: bool
    max_drawdown_pct: Decimal | None
    daily_loss_limit: Decimal | str | None  # USD, or "N%" of capital
    max_failures: int
    window_minutes: int
    breaker_enabled: bool
    breaker_mode: str
    max_positions: int | None


def limits_from_policy(document: Mapping[str, Any]) -> TriggerLimits:
    """The limits in a policy document's `risk` section (plain data: Decimals as strings).

    Raises ValueError when the section is not one `policy.document` writes.
    """
    try:
        risk = document["risk"]
        breaker = risk["circuit_breaker"]
        loss = risk["daily_loss_limit"]
        if loss is not None and not str(loss).strip().endswith("%"):
            loss = Decimal(str(loss))
        drawdown = risk["max_drawdown_pct"]
        positions = risk["max_open_positions"]
        return TriggerLimits(
            enabled=bool(risk["kill_switch_enabled"]),
            max_drawdown_pct=None if drawdown is None else Decimal(str(drawdown)),
            daily_loss_limit=loss,
            max_failures=int(breaker["max_failures"]),
            window_minutes=int(breaker["window_minutes"]),
            breaker_enabled=bool(breaker["enabled"]),
            breaker_mode=str(breaker["mode"]),
            max_positions=None if positions is None else int(positions),
        )
    except (KeyError, TypeError, InvalidOperation) as exc:
        raise ValueError(f"not a policy document's risk section: {exc!r}") from None


def max_drawdown(drawdown_pct: Decimal | None, limit_pct: Decimal | None) -> Trigger | None:
    """Fires when the portfolio is `limit_pct` or more below its high-water mark."""
    if drawdown_pct is None or limit_pct is None or limit_pct <= 0:
        return None
    if drawdown_pct >= limit_pct:
        return Trigger(
            "max_drawdown",
            f"drawdown {fmt(drawdown_pct)}% reached the limit of {fmt(limit_pct)}% "
            "(risk.max_drawdown_pct)",
        )
    return None


def loss_limit_usd(limit: Decimal | str | None, capital_usd: Decimal | None) -> Decimal | None:
    """The daily loss limit in USD: a USD amount, or "N%" of capital (None when unknowable)."""
    if limit is None:
        return None
    if isinstance(limit, str):
        text = limit.strip()
        if text.endswith("%"):
            if capital_usd is None or capital_usd <= 0:
                return None
            return capital_usd * Decimal(text[:-1]) / Decimal(100)
        return Decimal(text)
    return limit


def daily_loss(
    realised_pnl_today: Decimal | None,
    limit: Decimal | str | None,
    capital_usd: Decimal | None,
) -> Trigger | None:
    """Fires when today's realised loss is over `risk.daily_loss_limit`."""
    limit_usd = loss_limit_usd(limit, capital_usd)
    if realised_pnl_today is None or limit_usd is None or limit_usd <= 0:
        return None
    loss = -realised_pnl_today
    if loss > limit_usd:
        shown = f"{fmt(limit_usd)} USD" + (f" ({limit})" if isinstance(limit, str) else "")
        return Trigger(
            "daily_loss",
            f"today's realised loss {fmt(loss)} USD is over the limit of {shown} "
            "(risk.daily_loss_limit)",
        )
    return None


def failures_in_window(
    failure_times: Iterable[datetime], now: datetime, window_minutes: int
) -> int:
    """How many failures fall in (now - window, now]."""
    start = now - timedelta(minutes=window_minutes)
    return sum(1 for t in failure_times if start < t <= now)


def circuit_breaker(
    failure_times: Iterable[datetime],
    now: datetime,
    max_failures: int,
    window_minutes: int,
    enabled: bool = True,
) -> Trigger | None:
    """Fires when `max_failures` or more orders failed or were rejected in the last M minutes."""
    if not enabled:
        return None
    count = failures_in_window(failure_times, now, window_minutes)
    if count >= max_failures:
        return Trigger(
            "circuit_breaker",
            f"{count} failed or rejected orders in the last {window_minutes} min "
            f"(limit {max_failures}, risk.circuit_breaker)",
        )
    return None


def consecutive_breaker(
    consecutive: int | None, max_failures: int, enabled: bool = True
) -> Trigger | None:
    """Fires when the last `max_failures` orders in a row failed or were rejected."""
    if not enabled or consecutive is None:
        return None
    if consecutive >= max_failures:
        return Trigger(
            "circuit_breaker",
            f"{consecutive} failed or rejected orders in a row "
            f"(limit {max_failures}, risk.circuit_breaker mode consecutive)",
        )
    return None


def max_open_positions(open_positions: int | None, maximum: int | None) -> Trigger | None:
    """Fires when more positions are open than `risk.max_open_positions` allows."""
    if open_positions is None or maximum is None:
        return None
    if open_positions > maximum:
        return Trigger(
            "max_open_positions",
            f"{open_positions} open positions, over the maximum of {maximum} "
            "(risk.max_open_positions)",
        )
    return None


def evaluate(
    inputs: TriggerInputs,
    now: datetime,
    *,
    max_drawdown_pct: Decimal | None,
    daily_loss_limit: Decimal | str | None,
    max_failures: int,
    window_minutes: int,
    breaker_enabled: bool,
    max_positions: int | None,
    breaker_mode: str = "window",
) -> list[Trigger]:
    """Every rule that fires, in a fixed order (the first one names the activation)."""
    if breaker_mode == "consecutive":
        breaker = consecutive_breaker(inputs.consecutive_failures, max_failures, breaker_enabled)
    else:
        breaker = circuit_breaker(
            inputs.failure_times, now, max_failures, window_minutes, breaker_enabled
        )
    fired = [
        max_drawdown(inputs.drawdown_pct, max_drawdown_pct),
        daily_loss(inputs.realised_pnl_today, daily_loss_limit, inputs.capital_usd),
        breaker,
        max_open_positions(inputs.open_positions, max_positions),
    ]
    return [t for t in fired if t is not None]


def fire(inputs: TriggerInputs, now: datetime, limits: TriggerLimits) -> list[Trigger]:
    """`evaluate` under `limits`; none when the kill switch's triggers are switched off."""
    if not limits.enabled:
        return []
    return evaluate(
        inputs,
        now,
        max_drawdown_pct=limits.max_drawdown_pct,
        daily_loss_limit=limits.daily_loss_limit,
        max_failures=limits.max_failures,
        window_minutes=limits.window_minutes,
        breaker_enabled=limits.breaker_enabled,
        max_positions=limits.max_positions,
        breaker_mode=limits.breaker_mode,
    )
