"""The kill switch: one small state file that blocks every new order, and the sweep behind it.

`state/kill_switch.json` (0600, atomic writes, flock on `state/kill_switch.lock`) is the single
source of truth. The trade path reads it right before each send (`ensure_trading_allowed`, or
`order_send_guard` which also tells an activation that a send is in flight). It never touches the
ledger lock: activation must work while a long reconcile holds the ledger, so its events go to
the ledger when it is free within half a second and to the outbox otherwise.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ccxtkit import crashpoints
from ccxtkit.auth.audit import queue_control_event, record_control_event
from ccxtkit.errors import AuthorizationError, KillSwitchActiveError, UsageError
from ccxtkit.filelock import flocked
from ccxtkit.ledger.store import default_actor
from ccxtkit.logs import log
from ccxtkit.workspace import Workspace, write_private

from .flatten import AccountResult, sweep_account

#: How long one account's sweep may take before it is reported as failed.
DEFAULT_TIMEOUT_SECONDS = 30.0
#: How long activation waits for an order send that was in flight when it began.
IN_FLIGHT_WAIT_SECONDS = 30.0
DEACTIVATE_HINT = "deactivate with `vhc kill-switch --deactivate --auth-code CODE`"


@dataclass
class KillSwitchState:
    """What `state/kill_switch.json` holds."""

    active: bool = False
    since: str | None = None
    reason: str | None = None
    trigger: str | None = None
    actor: str | None = None
    deactivated_at: str | None = None
    deactivated_by: str | None = None
    last_activation: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KillSwitchState:
        """Build from the file's JSON, ignoring keys this version does not know."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class Activation:
    """The outcome of an activation: the state after it and each account's result."""

    state: KillSwitchState
    accounts: list[AccountResult]
    seconds: float
    recorded_in: str  # "ledger" or "outbox"

    @property
    def ok(self) -> bool:
        """True when every account was swept without failure."""
        return all(a.ok for a in self.accounts)

    def failed(self) -> list[AccountResult]:
        """The accounts that reported a failure."""
        return [a for a in self.accounts if not a.ok]


def state_path(ws: Workspace) -> Path:
    """Where the kill switch's state lives (the metrics exporter reads `active` here too)."""
    return ws.state_dir / "kill_switch.json"


def _send_lock_path(ws: Workspace) -> Path:
    return ws.state_dir / "order_send.lock"


def _now_iso(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat()


# -- reading: cheap enough for every order ---------------------------------------------------
def read_state(ws: Workspace) -> KillSwitchState:
    """The current state; a missing file means never activated.

    An unreadable file fails closed: it raises KillSwitchActiveError, because a switch we cannot
    read must not let orders through.
    """
    path = state_path(ws)
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or not isinstance(data.get("active"), bool):
            raise ValueError("no boolean 'active'")
    except FileNotFoundError:
        return KillSwitchState()
    except (OSError, ValueError) as exc:
        raise KillSwitchActiveError(
            f"the kill switch state {path} is unreadable ({exc}); trading is blocked until "
            "it is repaired: activate again with `vhc kill-switch --activate --reason ...` "
            f"and then {DEACTIVATE_HINT}"
        ) from None
    return KillSwitchState.from_dict(data)


def is_active(ws: Workspace) -> bool:
    """True when the kill switch blocks trading (an unreadable state counts as active)."""
    try:
        return read_state(ws).active
    except KillSwitchActiveError:
        return True


def ensure_trading_allowed(ws: Workspace) -> None:
    """Raise KillSwitchActiveError (exit 4) when the kill switch is active."""
    state = read_state(ws)
    if state.active:
        raise KillSwitchActiveError(
            f"the kill switch is active since {state.since} ({state.trigger}: {state.reason}); "
            f"no orders are sent; {DEACTIVATE_HINT}"
        )


@contextmanager
def order_send_guard(ws: Workspace) -> Iterator[None]:
    """Check the switch and hold a shared lock while one order is sent.

    Use it around the exchange call itself. An activation that starts while a send is inside
    this block waits for it and sweeps again, so no order survives an activation that returned.
    """
    with flocked(_send_lock_path(ws), shared=True):
        ensure_trading_allowed(ws)
        yield


# -- writing ---------------------------------------------------------------------------------
@contextmanager
def _locked(ws: Workspace) -> Iterator[KillSwitchState]:
    """Read-modify-write the state under its flock; the yielded state is written back."""
    with flocked(ws.state_dir / "kill_switch.lock"):
        try:
            current = read_state(ws)
        except KillSwitchActiveError:
            current = KillSwitchState()  # an unreadable state is replaced by this write
        yield current
        write_private(state_path(ws), json.dumps(asdict(current), indent=2, sort_keys=True))


def _run_all(
    names: list[str], work: Callable[[str], AccountResult], timeout: float
) -> list[AccountResult]:
    """Run `work` for every account at once, one thread each; a slow one is cut off at `timeout`.

    Daemon threads rather than a pool: a hung exchange call must not keep the process alive
    (a pool's workers are joined at interpreter exit).
    """
    results: dict[str, AccountResult] = {}
    lock = threading.Lock()

    def run(name: str) -> None:
        outcome = work(name)
        with lock:
            results[name] = outcome

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    with lock:
        done = dict(results)
    return [
        done.get(n) or AccountResult(n, errors=[f"timed out after {timeout:g} s"], seconds=timeout)
        for n in names
    ]


def _merge(first: AccountResult, second: AccountResult) -> AccountResult:
    """A second sweep's result on top of the first (used after an in-flight send)."""
    return AccountResult(
        account=first.account,
        cancelled=first.cancelled + [i for i in second.cancelled if i not in first.cancelled],
        still_open=second.still_open,
        closed=first.closed + second.closed,
        errors=second.errors,
        seconds=first.seconds + second.seconds,
    )


def _sends_in_flight(ws: Workspace) -> int | None:
    """None when no order send is in flight; else an open fd to wait on (caller closes it)."""
    fd = os.open(_send_lock_path(ws), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return fd
    os.close(fd)
    return None


def _wait_exclusive(fd: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def activate(
    ws: Workspace,
    reason: str,
    trigger: str = "manual",
    flatten: bool = False,
    actor: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    now: datetime | None = None,
) -> Activation:
    """Block new orders at once, then cancel (and optionally flatten) every enabled account."""
    if not reason.strip():
        raise UsageError("give a reason: `vhc kill-switch --activate --reason TEXT`")
    started = time.monotonic()
    when = _now_iso(now)
    who = actor or default_actor()
    # 1. The state file first: from this write on, no new order passes the check.
    with _locked(ws) as state:
        if not state.active:
            state.active, state.since, state.reason, state.trigger = True, when, reason, trigger
            state.actor, state.deactivated_at, state.deactivated_by = who, None, None
        state.last_activation = {
            "started": when,
            "status": "in_progress",
            "reason": reason,
            "trigger": trigger,
            "actor": who,
            "flatten": flatten,
            "accounts": {},
        }
    crashpoints.reach("killswitch.state_written")
    in_flight = _sends_in_flight(ws)
    # 2. The audit event, durably and without waiting on the ledger lock.
    event = {"reason": reason, "trigger": trigger, "since": state.since, "flatten": flatten}
    queue_control_event(ws, "kill_switch.activate", event, actor=who)
    # 3. Every enabled account at once.
    names = sorted(ws.config.enabled_exchanges())

    def work(name: str) -> AccountResult:
        return sweep_account(ws, name, flatten)

    results = _run_all(names, work, timeout)
    if in_flight is not None:
        # An order send had passed the check before our write: wait for it, then sweep again.
        try:
            if not _wait_exclusive(in_flight, IN_FLIGHT_WAIT_SECONDS):
                log.warning("an order send was still in flight after %s s", IN_FLIGHT_WAIT_SECONDS)
            again = _run_all(names, work, timeout)
            results = [_merge(a, b) for a, b in zip(results, again, strict=True)]
        finally:
            os.close(in_flight)
    seconds = time.monotonic() - started
    # 4. The per-account report: state file, then ledger (or outbox).
    report = {r.account: r.to_dict() for r in results}
    ok = all(r.ok for r in results)
    with _locked(ws) as final:
        final.last_activation = {
            **state.last_activation,
            "status": "ok" if ok else "failed",
            "finished": _now_iso(None),
            "seconds": round(seconds, 3),
            "accounts": report,
        }
    sweep = {"reason": reason, "trigger": trigger, "ok": ok, "accounts": report}
    crashpoints.reach("killswitch.before_sweep_event")
    recorded_in = record_control_event(ws, "kill_switch.sweep", sweep, actor=who)
    failed = [r.account for r in results if not r.ok]
    _alert(
        ws,
        "critical",
        f"Kill switch activated ({trigger})",
        f"{reason}. Accounts swept: {', '.join(names) or 'none'}."
        + (f" FAILED: {', '.join(failed)}." if failed else "")
        + f" {DEACTIVATE_HINT}.",
        key=f"kill_switch.activate.{trigger}",
    )
    return Activation(state=final, accounts=results, seconds=seconds, recorded_in=recorded_in)


def deactivate(
    ws: Workspace,
    code: str,
    approver: str = "admin",
    actor: str | None = None,
    now: datetime | None = None,
) -> KillSwitchState:
    """Lift the kill switch after a fresh TOTP code; every attempt is an audit event."""
    from ccxtkit.auth.totp import verify_code

    who = actor or default_actor()
    if not read_state(ws).active:
        return read_state(ws)
    try:
        verify_code(ws, code, approver, purpose="kill_switch.deactivate", now=now)
    except AuthorizationError as exc:
        details = {"approver": approver, "error": exc.message}
        record_control_event(ws, "kill_switch.deactivate_failed", details, actor=who)
        raise
    with _locked(ws) as state:
        was = {"since": state.since, "reason": state.reason, "trigger": state.trigger}
        state.active = False
        state.deactivated_at, state.deactivated_by = _now_iso(now), f"{who} (approver {approver})"
    record_control_event(ws, "kill_switch.deactivate", {**was, "approver": approver}, actor=who)
    _alert(
        ws,
        "warning",
        "Kill switch deactivated",
        f"Trading is allowed again (deactivated by {who}, approver {approver}; "
        f"it was active since {was['since']}: {was['reason']}).",
        key="kill_switch.deactivate",
    )
    return state


def _alert(
    ws: Workspace, severity: Literal["info", "warning", "critical"], title: str, body: str, key: str
) -> None:
    """Send through the alerting interface; a failing channel is only logged."""
    from ccxtkit.alerts import Alert, send_alert

    try:
        send_alert(ws, Alert(severity, title, body, key))  # logs it, and never raises by contract
    except Exception as exc:  # noqa: BLE001 - belt and braces: an alert must not undo the switch
        log.warning("alert %r not sent: %s", key, exc)
