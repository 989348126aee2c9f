"""Which state the kill switch is in: its state file, checked against the ledger's record.

Two sources, and why:
- `state/kill_switch.json` (0600, atomic writes) is the fast copy, read right before every
  send. It never needs the ledger lock, so activation works while the ledger is busy.
- The record: the ledger's last `kill_switch.activate` / `kill_switch.deactivate` event, where an
  activation still waiting in the outbox counts as the last event (it is newer than anything
  chained). A file can be deleted or edited; the chain cannot be edited unnoticed.

The rule (`decide`): the switch is active unless the file is readable, says inactive, and the
record's last word is not an activation. This is "the later of the two", with one deliberate
choice: the file's own timestamps are never used to order them, since whoever edits the file can
move them. They need not be: a deactivation checks its code, then writes its ledger event before
the file, so a genuine deactivation in the file is never newer than the record's last event. A
missing, unreadable or disagreeing file therefore fails closed.

Who checks what:
- right before a send (`ensure_trading_allowed`, `order_send_guard` in killswitch): the file
  only, no ledger lock; missing or unreadable is active.
- the trade path's intent visit (`check_recorded`), under the ledger lock that visit already
  holds: the file against the record; a disagreement is refused (exit 4) and alerted. When the
  file is missing and the record says inactive (a new or upgraded workspace) the file is written
  back as inactive, which is exactly what the record says.
- `effective_state` (`kill-switch --status`, `doctor`, withdrawals): opens the ledger read-only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from ccxtkit.errors import LedgerIntegrityError, VhcError
from ccxtkit.filelock import flocked
from ccxtkit.ledger import outbox
from ccxtkit.ledger.store import Ledger
from ccxtkit.logs import log
from ccxtkit.workspace import Workspace, write_private

ACTIVATE = "kill_switch.activate"
DEACTIVATE = "kill_switch.deactivate"
DEACTIVATE_HINT = "deactivate with `vhc kill-switch --deactivate --auth-code CODE`"
MISSING = "missing"


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


@dataclass(frozen=True)
class RecordedEvent:
    """The record's last activation or deactivation."""

    kind: str
    timestamp: datetime
    where: str  # "ledger seq N" or "outbox"
    details: dict[str, Any]

    @property
    def is_activation(self) -> bool:
        """True for an activation."""
        return self.kind == ACTIVATE

    def describe(self) -> str:
        """E.g. 'an activation at 2026-01-01T00:00:00+00:00 (ledger seq 12)'."""
        what = "an activation" if self.is_activation else "a deactivation"
        return f"{what} at {self.timestamp.isoformat()} ({self.where})"


@dataclass(frozen=True)
class Effective:
    """The switch's state from both sources, and anything wrong between them."""

    active: bool
    file: KillSwitchState  # what the file says (defaults when it is missing or unreadable)
    file_problem: str | None  # "missing" or "unreadable: ..."
    disagreement: str | None  # the file against the record, in one sentence
    last_event: RecordedEvent | None
    ledger_note: str | None = None  # why the record could not be read (busy, damaged)

    @property
    def record_read(self) -> bool:
        """True when the ledger's record was read (else only the file and outbox were)."""
        return self.ledger_note is None

    def to_dict(self) -> dict[str, Any]:
        """The file's fields with the effective `active`, plus what the record says."""
        last = self.last_event
        return {
            **asdict(self.file),
            "active": self.active,
            "file_says_active": None if self.file_problem else self.file.active,
            "file_problem": self.file_problem,
            "disagreement": self.disagreement,
            "last_event": None
            if last is None
            else {"kind": last.kind, "timestamp": last.timestamp.isoformat(), "where": last.where},
            "ledger_note": self.ledger_note,
        }


def state_path(ws: Workspace) -> Path:
    """Where the kill switch's state lives (the metrics exporter reads `active` here too)."""
    return ws.state_dir / "kill_switch.json"


def lock_path(ws: Workspace) -> Path:
    """The flock every writer of the state file holds."""
    return ws.state_dir / "kill_switch.lock"


def read_file(ws: Workspace) -> tuple[KillSwitchState | None, str | None]:
    """(state, None), or (None, "missing"), or (None, "unreadable: why")."""
    path = state_path(ws)
    try:
        data = json.loads(path.read_bytes())
        if not isinstance(data, dict) or not isinstance(data.get("active"), bool):
            raise ValueError("no boolean 'active'")
        return KillSwitchState.from_dict(data), None
    except FileNotFoundError:
        return None, MISSING
    except (OSError, ValueError, TypeError) as exc:
        return None, f"unreadable: {exc}"


def write_file(ws: Workspace, state: KillSwitchState) -> None:
    """Write the state file (0600, atomic); the caller holds `lock_path`."""
    write_private(state_path(ws), json.dumps(asdict(state), indent=2, sort_keys=True))


# -- the rule (pure) ---------------------------------------------------------------------------
def decide(
    file: KillSwitchState | None,
    file_problem: str | None,
    last: RecordedEvent | None,
    record_read: bool,
) -> tuple[bool, str | None]:
    """(active, disagreement) from the file and the record's last event (see module doc)."""
    path = "the state file"
    if file is None:
        if file_problem != MISSING:
            return True, f"{path} is {file_problem}"
        if last is not None and last.is_activation:
            return True, f"{path} is missing but the ledger's last event is {last.describe()}"
        # Missing and the record says inactive: never activated, or deactivated with a code.
        return (not record_read), None
    if file.active:
        if record_read and (last is None or not last.is_activation):
            said = last.describe() if last else "none"
            return True, (
                f"{path} says active since {file.since} but the ledger's last kill-switch event "
                f"is {said}"
            )
        return True, None
    if last is not None and last.is_activation:
        return True, (
            f"{path} says inactive (deactivated {file.deactivated_at or 'never'}) but the "
            f"ledger's last event is {last.describe()}"
        )
    return False, None


# -- reading the record ------------------------------------------------------------------------
def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _queued_activation(ledger_path: Path, ledger: Ledger | None) -> RecordedEvent | None:
    """The newest activation waiting in the outbox that is not chained yet (crash leftovers).

    An outbox that cannot be read may hide one: it counts as an activation (fails closed).
    """
    try:
        entries = outbox.pending(ledger_path)
    except OSError as exc:
        return RecordedEvent(ACTIVATE, datetime.now(UTC), f"outbox, unreadable: {exc}", {})
    for entry in reversed(entries):
        if entry.kind != ACTIVATE:
            continue
        if ledger is not None and ledger.query(
            "SELECT 1 FROM control_events WHERE details LIKE ? LIMIT 1",
            [f'%"outbox_id": "{entry.id}"%'],
        ):
            continue
        return RecordedEvent(ACTIVATE, _as_utc(entry.timestamp), "outbox", entry.details)
    return None


def last_recorded(ledger: Ledger) -> RecordedEvent | None:
    """The record's last activation or deactivation: the outbox first, then the chain."""
    queued = _queued_activation(ledger.path, ledger)
    if queued is not None:
        return queued
    rows = ledger.query(
        "SELECT seq, timestamp, kind, details FROM control_events "
        "WHERE kind IN (?, ?) ORDER BY seq DESC LIMIT 1",
        [ACTIVATE, DEACTIVATE],
    )
    if not rows:
        return None
    seq, timestamp, kind, details = rows[0]
    try:
        parsed = json.loads(details or "{}")
    except ValueError:
        parsed = {}
    return RecordedEvent(str(kind), _as_utc(timestamp), f"ledger seq {seq}", parsed)


def deactivation_fields(details: dict[str, Any]) -> dict[str, object]:
    """What a deactivation's seal covers."""
    return {k: details.get(k) for k in ("approver", "step", "since", "reason")}


def _sealed(ws: Workspace, ledger: Ledger, last: RecordedEvent | None) -> RecordedEvent | None:
    """A chained deactivation counts only with a valid seal; else it stands as an activation.

    Deactivations recorded before the control key existed (before any approver) carry none.
    """
    from ccxtkit.auth.mac import KEY_EVENT, tamper_alert, verify_seal

    if last is None or last.is_activation or not last.where.startswith("ledger seq "):
        return last
    seq = int(last.where.removeprefix("ledger seq "))
    key_rows = ledger.query("SELECT min(seq) FROM control_events WHERE kind = ?", [KEY_EVENT])
    if key_rows[0][0] is None or seq < int(key_rows[0][0]):
        return last
    fields = deactivation_fields(last.details)
    try:
        verify_seal(ws, DEACTIVATE, fields, last.details.get("mac"), ledger, what=last.describe())
    except LedgerIntegrityError as exc:
        tamper_alert(ws, exc, "kill_switch.forged_deactivation")
        return RecordedEvent(ACTIVATE, last.timestamp, f"{last.where}, a deactivation without "
                             "a valid seal (the ledger was edited)", last.details)  # fmt: skip
    except VhcError as exc:  # the control key cannot be read: the deactivation is unproven
        return RecordedEvent(ACTIVATE, last.timestamp, f"{last.where}, a deactivation whose "
                             f"seal cannot be checked ({exc.message})", last.details)  # fmt: skip
    return last


def effective_state(ws: Workspace, wait_seconds: float | None = None) -> Effective:
    """The switch's state from the file and the ledger (opened read-only, waiting its lock)."""
    from ccxtkit.ledger.store import open_ledger

    file, problem = read_file(ws)
    last: RecordedEvent | None = None
    note: str | None = None
    try:
        path = ws.ledger_path
        wait = float(ws.config.ledger.lock_wait_seconds) if wait_seconds is None else wait_seconds
        if path.exists():
            with open_ledger(path, wait, read_only=True) as ledger:
                last = _sealed(ws, ledger, last_recorded(ledger))
        else:
            last = _queued_activation(path, None)
    except VhcError as exc:
        note = exc.message
        try:
            last = _queued_activation(ws.ledger_path, None)
        except (VhcError, OSError):
            last = None
    active, disagreement = decide(file, problem, last, note is None)
    return Effective(active, file or KillSwitchState(), problem, disagreement, last, note)


def state_in(ws: Workspace, ledger: Ledger) -> Effective:
    """Inside a caller's ledger visit: the file against the record, writing nothing."""
    file, problem = read_file(ws)
    last = _sealed(ws, ledger, last_recorded(ledger))
    active, disagreement = decide(file, problem, last, True)
    return Effective(active, file or KillSwitchState(), problem, disagreement, last)


def check_recorded(ws: Workspace, ledger: Ledger) -> Effective:
    """Inside a ledger visit: the file against the record; writes back a missing inactive file.

    The caller refuses when `.active`. Cheap: one small query and a look at the outbox.
    """
    eff = state_in(ws, ledger)
    if not eff.active and eff.file_problem == MISSING:
        restore_inactive(ws, eff.last_event)
    return eff


def restore_inactive(ws: Workspace, last: RecordedEvent | None) -> None:
    """Write a missing state file as inactive, as the record says (never over an existing one)."""
    with flocked(lock_path(ws)):
        if state_path(ws).exists():
            return  # someone (an activation) wrote it meanwhile: theirs stands
        state = KillSwitchState()
        if last is not None:
            state.since = last.details.get("since")
            state.reason = last.details.get("reason")
            state.trigger = last.details.get("trigger")
            state.deactivated_at = last.timestamp.isoformat()
            state.deactivated_by = f"(restored from the ledger, {last.where})"
        write_file(ws, state)
    log.info("kill switch state file was missing; written back as inactive from the ledger")


def alert(
    ws: Workspace, severity: Literal["info", "warning", "critical"], title: str, body: str, key: str
) -> None:
    """Send through the alerting interface; a failing channel is only logged."""
    from ccxtkit.alerts import Alert, send_alert

    try:
        send_alert(ws, Alert(severity, title, body, key))  # logs it, and never raises by contract
    except Exception as exc:  # noqa: BLE001 - belt and braces: an alert must not undo the switch
        log.warning("alert %r not sent: %s", key, exc)
