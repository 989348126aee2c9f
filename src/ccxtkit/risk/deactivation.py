"""Lifting the kill switch: a fresh code, then the ledger event, then the file.

It waits for the ledger (exit 7 if it stays busy) and never goes through the outbox: a
deactivation is only ever written by the process that checked its code. The state file's lock
is taken only once the ledger is held, for one insert and one file write, so an activation waits
milliseconds for it, never for the ledger lock; and an activation that came in while the code
was being checked is never undone by it (see `switch_state` for how the state is read).
"""

from __future__ import annotations

from datetime import UTC, datetime

from ccxtkit.auth.mac import seal
from ccxtkit.errors import AuthorizationError, KillSwitchActiveError, VhcError
from ccxtkit.filelock import flocked
from ccxtkit.ledger.store import default_actor
from ccxtkit.logs import log
from ccxtkit.workspace import Workspace

from .switch_state import (
    DEACTIVATE,
    KillSwitchState,
    alert,
    deactivation_fields,
    effective_state,
    lock_path,
    read_file,
    write_file,
)


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
    before = effective_state(ws)
    if not before.active and before.record_read:
        return before.file
    try:
        verified = verify_code(ws, code, approver, purpose=DEACTIVATE, now=now)
    except AuthorizationError as exc:
        _record_failure(ws, {"approver": approver, "error": exc.message}, who)
        raise
    seen = before.file.last_activation.get("started")
    with ws.open_ledger() as ledger, flocked(lock_path(ws)):
        current, _ = read_file(ws)
        if current is not None and current.last_activation.get("started") != seen:
            error = (
                f"a new activation ({current.trigger}: {current.reason}) came in at "
                f"{current.last_activation.get('started')} while the code was checked; it "
                "stands: look at it, then deactivate again with a new code"
            )
            ledger.record_event(
                f"{DEACTIVATE}_failed", {"approver": approver, "error": error}, actor=who
            )
            raise KillSwitchActiveError(error)
        state = current or before.file
        last = before.last_event.details if before.last_event else {}
        was = {
            "since": state.since or last.get("since"),
            "reason": state.reason or last.get("reason"),
            "trigger": state.trigger or last.get("trigger"),
        }
        details: dict[str, object] = {**was, "approver": approver, "step": verified.step}
        # Sealed: a deactivation row appended to the file by hand must not lift the switch.
        details["mac"] = seal(ws, DEACTIVATE, deactivation_fields(details), ledger)
        ledger.record_event(DEACTIVATE, details, actor=who)
        state.active = False
        state.since, state.reason, state.trigger = was["since"], was["reason"], was["trigger"]
        state.deactivated_at, state.deactivated_by = (
            (now or datetime.now(UTC)).astimezone(UTC).isoformat(),
            f"{who} (approver {approver})",
        )
        write_file(ws, state)
    alert(
        ws,
        "warning",
        "Kill switch deactivated",
        f"Trading is allowed again (deactivated by {who}, approver {approver}; "
        f"it was active since {was['since']}: {was['reason']}).",
        key="kill_switch.deactivate",
    )
    return state


def _record_failure(ws: Workspace, details: dict[str, str], who: str) -> None:
    """A failed deactivation on the record; a ledger that cannot take it is only logged."""
    try:
        with ws.open_ledger() as ledger:
            ledger.record_event(f"{DEACTIVATE}_failed", details, actor=who)
    except VhcError as exc:
        log.warning("failed deactivation not recorded: %s", exc.message)
