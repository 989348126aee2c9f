"""Evaluating the kill switch's automatic triggers against the ledger (`vhc kill-switch --check`).

The rules are pure (`risk.triggers`); this module gathers their inputs: the exposure snapshot
(`risk.exposure`) for drawdown, today's realised PnL and open positions, and the recent
failed/rejected orders from `order_events` for the circuit breaker. USD prices come from the
ledger's `prices` table, then from the accounts' tickers. A figure that cannot be known (an
asset held without a USD price) leaves its rule unevaluated rather than firing on a guess: a
missing price must not look like a crash of the portfolio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ccxtkit.logs import log
from ccxtkit.money import is_usd_like

from . import triggers
from .killswitch import Activation, activate, read_state
from .switch_state import state_in

if TYPE_CHECKING:
    from ccxtkit.config_memo import Memo
    from ccxtkit.ledger.store import Ledger
    from ccxtkit.workspace import Workspace

    from .limits import Exposure

#: order_events rows that count for the circuit breaker.
FAILURE_EVENTS = ("rejected", "failed")


@dataclass
class CheckOutcome:
    """What `--check` found: the rules that fired, notes on rules it could not evaluate,
    and the activation it started (None when nothing fired or the switch was already on)."""

    fired: list[triggers.Trigger]
    notes: list[str] = field(default_factory=list)
    already_active: bool = False
    activation: Activation | None = None
    inputs: triggers.TriggerInputs | None = None


def failure_times(ledger: Ledger, now: datetime, window_minutes: int) -> list[datetime]:
    """Timestamps (UTC, aware) of failed or rejected orders in the breaker's window."""
    since = now.astimezone(UTC).replace(tzinfo=None) - timedelta(minutes=window_minutes)
    marks = ", ".join("?" for _ in FAILURE_EVENTS)
    rows = ledger.query(
        f"SELECT timestamp FROM order_events WHERE timestamp > ? "
        f"AND (lower(event) IN ({marks}) OR lower(coalesce(status, '')) IN ({marks}))",
        [since, *FAILURE_EVENTS, *FAILURE_EVENTS],
    )
    return [r[0].replace(tzinfo=UTC) for r in rows]


#: order_events rows that show the exchange accepted an order (they end a run of failures).
ACCEPTED_EVENTS = ("open", "partially_filled", "filled")


def consecutive_failures(ledger: Ledger, limit: int) -> int:
    """How many of the latest order outcomes, newest first, are failures in a row (<= limit)."""
    kinds = (*FAILURE_EVENTS, *ACCEPTED_EVENTS)
    marks = ", ".join("?" for _ in kinds)
    rows = ledger.query(
        f"SELECT lower(event) FROM order_events WHERE lower(event) IN ({marks}) "
        "ORDER BY seq DESC LIMIT ?",
        [*kinds, limit],
    )
    run = 0
    for (event,) in rows:
        if event not in FAILURE_EVENTS:
            break
        run += 1
    return run


def ledger_prices(ledger: Ledger) -> dict[str, Decimal]:
    """The latest USD(-like) price of every asset in the ledger (`risk.figures`' rule)."""
    from .figures import latest_prices

    return latest_prices(ledger)


def ticker_prices(ws: Workspace, assets: set[str]) -> dict[str, Decimal]:
    """USD prices of `assets` from the first enabled account that quotes them (best effort)."""
    found: dict[str, Decimal] = {}
    if not assets:
        return found
    from ccxtkit.exchanges.factory import open_exchange

    for name in sorted(ws.config.enabled_exchanges()):
        missing = assets - set(found)
        if not missing:
            break
        try:
            client = open_exchange(ws, name)
            try:
                markets = client.load_markets()
                for asset in sorted(missing):
                    for quote in ("USD", "USDT", "USDC"):
                        if f"{asset}/{quote}" in markets:
                            found[asset] = client.fetch_ticker(f"{asset}/{quote}").last
                            break
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - a price source down leaves the asset unpriced
            log.warning("prices from %s unavailable for the kill-switch check: %s", name, exc)
    return found


def inputs_from_exposure(
    exposure: Exposure,
    failures: list[datetime],
    dust: Decimal = Decimal(0),
    consecutive: int | None = None,
) -> tuple[triggers.TriggerInputs, list[str]]:
    """Trigger inputs from an exposure snapshot; notes name the rules left unevaluated."""
    from .figures import figures_of
    from .limits import open_positions

    notes: list[str] = []
    figures = figures_of(exposure, {})
    held_unpriced = list(figures.unpriced_held)
    if held_unpriced:
        notes.append(
            f"drawdown and daily loss not evaluated: no USD price for {', '.join(held_unpriced)} "
            "(run `vhc prices fetch`)"
        )
        drawdown = pnl = capital = None
    else:
        drawdown = figures.drawdown_pct
        pnl = figures.pnl_today_usd  # None unless built with_pnl=True
        # Capital as it stood before today's realised result, so a loss does not shrink its base.
        capital = None if pnl is None else exposure.portfolio_usd - pnl
    inputs = triggers.TriggerInputs(
        drawdown_pct=drawdown,
        realised_pnl_today=pnl,
        capital_usd=capital,
        open_positions=open_positions(exposure, dust),
        failure_times=tuple(failures),
        consecutive_failures=consecutive,
    )
    return inputs, notes


def limits_of(ws: Workspace) -> triggers.TriggerLimits:
    """The triggers' limits under the workspace's config, read as its policy document."""
    from ccxtkit.policy.document import policy_document

    # One reader for both paths: the memo path reads the same document from the record.
    return triggers.limits_from_policy(policy_document(ws.config))


def gather_inputs(
    ws: Workspace, now: datetime, prices_usd: Mapping[str, Decimal] | None = None
) -> tuple[triggers.TriggerInputs, list[str]]:
    """Read the ledger (and, for missing prices, the tickers) into trigger inputs."""
    gathered = _gather(ws, now, prices_usd, policy=False)
    assert gathered is not None  # only a policy check in the visit can leave it unread
    return gathered.inputs, gathered.notes


@dataclass(frozen=True)
class _Gathered:
    inputs: triggers.TriggerInputs
    notes: list[str]
    limits: triggers.TriggerLimits | None = None
    switch_active: bool = False  # the ledger's record says on, whatever the state file says


def _gather(
    ws: Workspace,
    now: datetime,
    prices_usd: Mapping[str, Decimal] | None,
    policy: bool,
    memo: Memo | None = None,
) -> _Gathered | None:
    """`gather_inputs`; with `policy`, the policy record is read in the same ledger visit.

    None means the record was not the config's (or there is no ledger) and nothing else was
    read. With a `memo`, its policy hash must be the record's, and the limits are the record's.
    """
    from ccxtkit.ledger.store import open_ledger

    from .figures import compute

    wait = ws.basics.lock_wait_seconds
    if not ws.ledger_path.exists():
        if policy:
            return None  # the policy is settled first (enforce_policy), then this is asked again
        return _Gathered(triggers.TriggerInputs(), ["no ledger yet: nothing to evaluate"])
    with open_ledger(ws.ledger_path, wait_seconds=wait, read_only=True) as ledger:
        if memo is not None:
            limits = _recorded_limits(ws, ledger, memo.policy_hash)
            if limits is None:
                return None
        else:
            if policy:
                from ccxtkit.policy.service import recorded_in

                if not recorded_in(ws, ledger):
                    return None
            limits = limits_of(ws)
        read = _read(ws, ledger, now, prices_usd, limits)
    if read is None:
        return _Gathered(triggers.TriggerInputs(), [], limits, switch_active=True)
    exposure, prices, failures, run = read
    missing = {a for a in exposure.unpriced if not is_usd_like(a)}
    if missing:
        # Talk to exchanges with the ledger closed, then read it again with the new prices.
        prices.update(ticker_prices(ws, missing))
        with open_ledger(ws.ledger_path, wait_seconds=wait, read_only=True) as ledger:
            exposure = compute(ledger, now, ws.basics.timezone, prices).exposure
    inputs, notes = inputs_from_exposure(exposure, failures, consecutive=run)
    return _Gathered(inputs, notes, limits)


def _recorded_limits(
    ws: Workspace, ledger: Ledger, policy_hash: str
) -> triggers.TriggerLimits | None:
    """The record's limits when the record is the memo's policy; else None (the full path)."""
    from ccxtkit.policy.service import last_recorded

    recorded = last_recorded(ledger, ws)  # row hash, document hash and seal checked (exit 6)
    if recorded is None or recorded.hash != policy_hash:
        return None
    try:
        return triggers.limits_from_policy(recorded.document)
    except ValueError:
        return None


def _read(
    ws: Workspace,
    ledger: Ledger,
    now: datetime,
    prices_usd: Mapping[str, Decimal] | None,
    limits: triggers.TriggerLimits,
) -> tuple[Exposure, dict[str, Decimal], list[datetime], int] | None:
    """The triggers' inputs from an open ledger; None when its record says the switch is on."""
    from .figures import compute

    if state_in(ws, ledger).active:
        return None
    figures = compute(ledger, now, ws.basics.timezone, dict(prices_usd or {}))
    failures = failure_times(ledger, now, limits.window_minutes)
    run = consecutive_failures(ledger, limits.max_failures)
    return figures.exposure, dict(figures.prices), failures, run


def fired_in(
    ws: Workspace, ledger: Ledger, prices_usd: Mapping[str, Decimal], now: datetime | None = None
) -> list[triggers.Trigger] | None:
    """The triggers that fire, read in the caller's ledger visit (after an order's outcome).

    [] when the switch is already on; None when a held asset has no USD price, so only
    `check` (which asks the tickers with the ledger closed) can tell.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    limits = limits_of(ws)
    read = _read(ws, ledger, moment, prices_usd, limits)
    if read is None:
        return []
    exposure, _prices, failures, run = read
    if any(not is_usd_like(a) for a in exposure.unpriced):
        return None
    inputs, _notes = inputs_from_exposure(exposure, failures, consecutive=run)
    return triggers.fire(inputs, moment, limits)


def trip(ws: Workspace, fired: list[triggers.Trigger], timeout: float = 30.0) -> Activation:
    """Activate the kill switch for the triggers that fired (the first one names it)."""
    return activate(
        ws,
        "; ".join(t.reason for t in fired),
        trigger=fired[0].name,
        actor="vhc kill-switch --check",
        timeout=timeout,
    )


def check(
    ws: Workspace,
    now: datetime | None = None,
    prices_usd: Mapping[str, Decimal] | None = None,
    timeout: float = 30.0,
) -> CheckOutcome:
    """Evaluate every trigger; activate the kill switch with the first that fires."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    if read_state(ws).active:
        return CheckOutcome(fired=[], already_active=True)
    # Every minute: the config's memo (no pydantic), its policy the record's, in one visit.
    memo = ws.recall_memo()
    gathered = _gather(ws, moment, prices_usd, policy=True, memo=memo) if memo else None
    if gathered is None:
        gathered = _gather_validated(ws, moment, prices_usd)
    if gathered.switch_active:
        return CheckOutcome(fired=[], already_active=True)
    inputs, notes = gathered.inputs, gathered.notes
    limits = gathered.limits or limits_of(ws)
    fired = triggers.fire(inputs, moment, limits)
    outcome = CheckOutcome(fired=fired, notes=notes, inputs=inputs)
    if fired:
        outcome.activation = trip(ws, fired, timeout)
    return outcome


def _gather_validated(
    ws: Workspace, now: datetime, prices_usd: Mapping[str, Decimal] | None
) -> _Gathered:
    """The full path: the config validated, its policy settled (or refused), then the memo kept."""
    from ccxtkit.config_memo import remember
    from ccxtkit.policy.service import enforce_policy

    # The triggers' limits must be the recorded ones (else exit 8). The record is read in the
    # same ledger visit as the inputs; a missing ledger or a policy that differs from the
    # record is settled (or refused) by enforce_policy first, as on every command.
    gathered = _gather(ws, now, prices_usd, policy=True)
    if gathered is None:
        enforce_policy(ws)
        gathered = _gather(ws, now, prices_usd, policy=False)
    assert gathered is not None
    remember(ws)
    return gathered
