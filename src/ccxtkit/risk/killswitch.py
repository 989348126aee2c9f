"""The kill switch: a state file that blocks every new order at once, the sweep behind it, and
its record in the ledger.

Where its state lives and how the two sources are reconciled is `switch_state`'s docstring (in
short: the later of the state file and the ledger's last activate/deactivate event; a missing,
unreadable or disagreeing file fails closed). This module writes them:
- activation writes the file first (under `state/kill_switch.lock`, never the ledger lock), then
  queues its event in the outbox, sweeps, alerts, and only then records the sweep: in the ledger
  if it can be written within half a second, else in the outbox (busy, damaged, disk full);
- deactivation checks the code, then, holding the ledger and the state file's lock, writes its
  ledger event before the file. It waits for the ledger; it never goes through the outbox.
The trade path reads the file right before each send (`ensure_trading_allowed`, or
`order_send_guard`, which also tells an activation that a send is in flight) and compares it
with the record inside the ledger visit that writes the order's intent (`check_recorded`).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ccxtkit import crashpoints
from ccxtkit.auth.audit import queue_control_event, record_control_event
from ccxtkit.errors import KillSwitchActiveError, UsageError
from ccxtkit.filelock import flocked
from ccxtkit.ledger.store import Ledger, default_actor
from ccxtkit.logs import log
from ccxtkit.workspace import Workspace

from .deactivation import deactivate
from .flatten import AccountResult, CancelsFirst, sweep_account
from .switch_state import (
    ACTIVATE,
    DEACTIVATE_HINT,
    MISSING,
    Effective,
    KillSwitchState,
    effective_state,
    lock_path,
    read_file,
    restore_inactive,
    state_path,
    write_file,
)
from .switch_state import alert as _alert
from .switch_state import check_recorded as _check_recorded

__all__ = [
    "DEACTIVATE_HINT",
    "Activation",
    "Effective",
    "KillSwitchState",
    "activate",
    "check_recorded",
    "deactivate",
    "effective_state",
    "ensure_trading_allowed",
    "is_active",
    "order_send_guard",
    "read_state",
    "state_path",
]

#: How long one account's sweep may take before it is reported as failed.
DEFAULT_TIMEOUT_SECONDS = 30.0
#: How long activation waits for an order send that was in flight when it began.
IN_FLIGHT_WAIT_SECONDS = 30.0


@dataclass
class Activation:
    """The outcome of an activation: the state after it and each account's result."""

    state: KillSwitchState
    accounts: list[AccountResult]
    seconds: float
    recorded_in: str  # "ledger", "outbox" or "nowhere" (see audit.record_control_event)
    #: The swept accounts are not the ones the ledger's policy records (another --config).
    unrecorded_accounts: str | None = None

    @property
    def ok(self) -> bool:
        """True when every recorded account was swept without failure."""
        return all(a.ok for a in self.accounts) and self.unrecorded_accounts is None

    def failed(self) -> list[AccountResult]:
        """The accounts that reported a failure."""
        return [a for a in self.accounts if not a.ok]

    def to_dict(self) -> dict[str, Any]:
        """The outcome as `--json` and the HTTP API show it."""
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "recorded_in": self.recorded_in,
            "unrecorded_accounts": self.unrecorded_accounts,
            "state": asdict(self.state),
            "accounts": [a.to_dict() for a in self.accounts],
        }


def _send_lock_path(ws: Workspace) -> Path:
    return ws.state_dir / "order_send.lock"


def _now_iso(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat()


# -- reading: cheap enough for every order ---------------------------------------------------
def read_state(ws: Workspace) -> KillSwitchState:
    """What the state file says (a missing file: never activated); see `effective_state`.

    An unreadable file raises KillSwitchActiveError: a switch we cannot read blocks orders.
    """
    state, problem = read_file(ws)
    if state is not None:
        return state
    if problem == MISSING:
        return KillSwitchState()
    raise _unreadable(ws, problem)


def _unreadable(ws: Workspace, problem: str | None) -> KillSwitchActiveError:
    return KillSwitchActiveError(
        f"the kill switch state {state_path(ws)} is {problem}; trading is blocked until it is "
        "repaired: activate again with `vhc kill-switch --activate --reason ...` and then "
        f"{DEACTIVATE_HINT}"
    )


def is_active(ws: Workspace) -> bool:
    """True when the switch blocks trading: the file and the ledger's record (read-only).

    A file that says active answers at once; otherwise the record decides, and a record that
    cannot be read (busy, damaged) counts as active. A missing file that the record shows
    inactive is written back, so the check right before a send lets it through.
    """
    state, _ = read_file(ws)
    if state is not None and state.active:
        return True
    eff = effective_state(ws)
    if eff.file_problem == MISSING and not eff.active and eff.record_read:
        restore_inactive(ws, eff.last_event)  # what the record says, for the pre-send check
    return eff.active or not eff.record_read


def ensure_trading_allowed(ws: Workspace, missing_ok: bool = False) -> None:
    """Raise KillSwitchActiveError (exit 4) unless the state file says inactive.

    The file only, no ledger lock: fast enough for right before a send. A missing file is
    active, unless `missing_ok` (an early check whose ledger visit will decide, see
    `check_recorded`).
    """
    state, problem = read_file(ws)
    if state is None:
        if problem == MISSING:
            if missing_ok:
                return
            raise KillSwitchActiveError(
                f"the kill switch state {state_path(ws)} is missing; no orders are sent until "
                "the ledger confirms the switch is off (see `vhc kill-switch --status`)"
            )
        raise _unreadable(ws, problem)
    if state.active:
        raise KillSwitchActiveError(
            f"the kill switch is active since {state.since} ({state.trigger}: {state.reason}); "
            f"no orders are sent; {DEACTIVATE_HINT}"
        )


def check_recorded(ws: Workspace, ledger: Ledger) -> None:
    """In the ledger visit before a send: refuse (exit 4) if file or record says active.

    A file that disagrees with the record (moved, deleted, edited) is alerted as well. Uses the
    caller's open ledger: never takes the ledger lock itself.
    """
    eff = _check_recorded(ws, ledger)
    if not eff.active:
        return
    if eff.disagreement is None:
        s = eff.file  # file and record agree: the switch is simply on
        raise KillSwitchActiveError(
            f"the kill switch is active since {s.since} ({s.trigger}: {s.reason}); "
            f"no orders are sent; {DEACTIVATE_HINT}"
        )
    _alert(
        ws,
        "critical",
        "Kill switch state file disagrees with the ledger",
        f"{eff.disagreement}. Trading stays blocked. Someone may have moved or edited "
        f"{state_path(ws)}; find out who, then {DEACTIVATE_HINT} if trading may resume.",
        key="kill_switch.state_disagrees",
    )
    raise KillSwitchActiveError(
        f"the kill switch is active: {eff.disagreement}; no orders are sent; {DEACTIVATE_HINT}"
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
    with flocked(lock_path(ws)):
        current, _ = read_file(ws)  # a missing or unreadable state is replaced by this write
        current = current or KillSwitchState()
        yield current
        write_file(ws, current)


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
    queue_control_event(ws, ACTIVATE, event, actor=who)
    # 3. Every enabled account at once.
    names = sorted(ws.config.enabled_exchanges())

    def sweep_all() -> list[AccountResult]:
        turns = CancelsFirst(len(names))  # every account's cancels before anyone's books
        return _run_all(names, lambda name: sweep_account(ws, name, flatten, turns), timeout)

    results = sweep_all()
    if in_flight is not None:
        # An order send had passed the check before our write: wait for it, then sweep again.
        try:
            if not _wait_exclusive(in_flight, IN_FLIGHT_WAIT_SECONDS):
                log.warning("an order send was still in flight after %s s", IN_FLIGHT_WAIT_SECONDS)
            again = sweep_all()
            results = [_merge(a, b) for a, b in zip(results, again, strict=True)]
        finally:
            os.close(in_flight)
    seconds = time.monotonic() - started
    # The sweep used the config as given, unchecked (it must never wait); a config that is not
    # the recorded one may have swept the wrong endpoints or left an account out.
    unrecorded = _accounts_differ_from_record(ws)
    # 4. The per-account report: state file, then ledger (or outbox).
    report = {r.account: r.to_dict() for r in results}
    ok = all(r.ok for r in results) and unrecorded is None
    with _locked(ws) as final:
        final.last_activation = {
            **state.last_activation,
            "status": "ok" if ok else "failed",
            "finished": _now_iso(None),
            "seconds": round(seconds, 3),
            "accounts": report,
        }
    failed = [r.account for r in results if not r.ok]
    # 5. The alert before the record: a broken ledger must not keep anyone from hearing it.
    _alert(
        ws,
        "critical",
        f"Kill switch activated ({trigger})",
        f"{reason}. Accounts swept: {', '.join(names) or 'none'}."
        + (f" FAILED: {', '.join(failed)}." if failed else "")
        + (f" NOT SWEPT AS RECORDED: {unrecorded}." if unrecorded else "")
        + f" {DEACTIVATE_HINT}.",
        key=f"kill_switch.activate.{trigger}",
    )
    sweep: dict[str, object] = {"reason": reason, "trigger": trigger, "ok": ok, "accounts": report}
    if unrecorded:
        sweep["unrecorded_accounts"] = unrecorded
    crashpoints.reach("killswitch.before_sweep_event")
    recorded_in = record_control_event(ws, "kill_switch.sweep", sweep, actor=who)
    return Activation(final, results, seconds, recorded_in, unrecorded)


def _accounts_differ_from_record(ws: Workspace) -> str | None:
    """How the config's accounts differ from the ledger's recorded policy, else None.

    Read-only and within half a second: a busy or unreadable ledger is logged, not a failure
    (the sweep itself already ran on the config's accounts).
    """
    from ccxtkit.errors import VhcError
    from ccxtkit.ledger.store import open_ledger
    from ccxtkit.policy.document import policy_document
    from ccxtkit.policy.rules import compare
    from ccxtkit.policy.service import last_recorded

    if not ws.ledger_path.exists():
        return None
    try:
        with open_ledger(ws.ledger_path, wait_seconds=0.5, read_only=True) as ledger:
            recorded = last_recorded(ledger, ws)
    except VhcError as exc:
        log.warning("kill switch: the swept accounts were not checked against the record: %s",
                    exc.message)  # fmt: skip
        return None
    if recorded is None:
        return None
    current = policy_document(ws.config)
    swept = {
        name
        for name, account in recorded.document.get("exchanges", {}).items()
        if isinstance(account, dict) and account.get("enabled", True)
    }
    # Only the recorded sweep matters: a recorded-enabled account changed, disabled or gone.
    keys = []
    for change in compare(recorded.document, current):
        section, account, *rest = [*change.key.split("."), ""]
        if section == "exchanges" and account in swept and rest[:1] != ["paper"]:
            keys.append(change.key)
    if not keys:
        return None
    return (
        f"the config differs from the ledger's recorded accounts at {', '.join(keys)}; orders "
        "on the recorded accounts may still be open: run `vhc kill-switch --activate` again "
        "with the workspace's own config"
    )
