"""Record the policy in the ledger and enforce it: the one gate every policy-relying path calls.

`enforce_policy(ws)` compares the loaded config's policy with the ledger's last
`policy.recorded` event. The same hash passes; a change that only tightens is recorded
automatically; any other change is refused (exit 8) until `vhc config apply --auth-code`.
Until the first approver is enrolled every change is recorded without a code, with a warning.

It is called where policy is relied on, not per command: when an exchange client is opened
(`exchanges.factory.open_exchange`: orders, cancels, balances, reconcile, sync, withdrawals
sent), when a withdrawal is requested or approved, and when the kill switch's triggers are
evaluated. The check is against the ledger's record, so a second config file (`--config`)
pointing at the same ledger is refused like an edited one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccxtkit.errors import AuthorizationError, LedgerIntegrityError, VhcError
from ccxtkit.ledger.chain import canonical, row_hash
from ccxtkit.ledger.schema import TABLES
from ccxtkit.ledger.store import Ledger
from ccxtkit.logs import log
from ccxtkit.workspace import DEFAULT_LEDGER, Workspace

from .document import policy_document, policy_hash
from .rules import ABSENT, Change, compare, loosened

EVENT = "policy.recorded"
APPLY_HINT = "vhc config apply --auth-code CODE [--approver NAME]"

#: Set on a Workspace once its (cached, never re-read) config passed: one ledger visit each.
_CHECKED = "_vhc_policy_checked"
#: Warnings for the person at the keyboard, printed by the CLI after the command.
_NOTES: list[str] = []


def take_notes() -> list[str]:
    """Warnings gathered by this process's policy checks (each once), then forget them."""
    taken = list(dict.fromkeys(_NOTES))
    _NOTES.clear()
    return taken


@dataclass(frozen=True)
class Recorded:
    """The ledger's last recorded policy."""

    seq: int
    hash: str
    document: dict[str, Any]
    timestamp: str


@dataclass(frozen=True)
class PolicyStatus:
    """The file's policy against the recorded one."""

    file_hash: str
    document: dict[str, Any]
    recorded: Recorded | None
    changes: list[Change] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.recorded is not None and self.recorded.hash == self.file_hash

    @property
    def loosening(self) -> list[Change]:
        return loosened(self.changes)


@dataclass(frozen=True)
class Applied:
    """What `vhc config apply` (or an automatic recording) put on the record."""

    seq: int | None  # None: nothing to record, the file matches the record
    hash: str
    how: str  # unchanged | initial | tightened | unenrolled | approved
    changes: list[Change]
    warning: str | None = None


# -- the record ------------------------------------------------------------------------------
def _seal_fields(details: dict[str, Any]) -> dict[str, object]:
    """What a policy record's seal covers (the document is bound through its hash)."""
    return {k: details.get(k) for k in ("hash", "previous", "how", "approver")}


def _check_seal(ws: Workspace, ledger: Ledger, seq: int, details: dict[str, Any]) -> None:
    """Once the control key exists, every later policy record must carry its seal (exit 6).

    Otherwise a loosened policy row appended to the file by hand would be taken as approved.
    """
    from ccxtkit.auth.mac import KEY_EVENT, tamper_alert, verify_seal

    key_seq = ledger.query("SELECT min(seq) FROM control_events WHERE kind = ?", [KEY_EVENT])
    if key_seq[0][0] is None or seq < int(key_seq[0][0]):
        return
    what = f"the recorded policy (ledger seq {seq})"
    try:
        verify_seal(ws, EVENT, _seal_fields(details), details.get("mac"), ledger, what=what)
    except LedgerIntegrityError as exc:
        tamper_alert(ws, exc, "policy.forged")
        raise


def last_recorded(ledger: Ledger, ws: Workspace | None = None) -> Recorded | None:
    """The last `policy.recorded` event, its row hash, document hash and seal checked (exit 6).

    Without `ws` the seal is not checked (only to learn whether another ledger has a policy).
    """
    columns = [c.name for c in TABLES["control_events"]]
    quoted = ", ".join(f'"{c}"' for c in columns)
    rows = ledger.query(
        f"SELECT seq, prev_hash, row_hash, recorded_at, {quoted} FROM control_events "
        "WHERE kind = ? ORDER BY seq DESC LIMIT 1",
        [EVENT],
    )
    if not rows:
        return None
    seq, prev, digest, recorded_at, *values = rows[0]
    row = dict(zip(columns, values, strict=True))
    if row_hash(canonical("control_events", seq, prev, recorded_at, row)) != digest:
        raise LedgerIntegrityError(
            f"the recorded policy (ledger seq {seq}) was altered: its row hash does not match; "
            "run `vhc ledger verify` and restore the ledger from a backup"
        )
    details = json.loads(row["details"])
    document = details.get("policy")
    if not isinstance(document, dict) or policy_hash(document) != details.get("hash"):
        raise LedgerIntegrityError(
            f"the recorded policy (ledger seq {seq}) does not match its hash; "
            "run `vhc ledger verify` and restore the ledger from a backup"
        )
    if ws is not None:
        _check_seal(ws, ledger, int(seq), details)
    return Recorded(int(seq), str(details["hash"]), document, str(row["timestamp"]))


def _change_doc(change: Change) -> dict[str, Any]:
    def shown(v: Any) -> Any:
        return None if v is ABSENT else v

    return {
        "key": change.key,
        "old": shown(change.old),
        "new": shown(change.new),
        "direction": change.direction,
        "reason": change.reason,
    }


def _record(
    ws: Workspace,
    ledger: Ledger,
    status: PolicyStatus,
    how: str,
    approver: str | None = None,
    note: str | None = None,
) -> int:
    details = {
        "hash": status.file_hash,
        "policy": status.document,
        "previous": status.recorded.hash if status.recorded else None,
        "changes": [_change_doc(c) for c in status.changes],
        "how": how,
        "approver": approver,
        "note": note,
    }
    from ccxtkit.auth.mac import key_record, seal

    if key_record(ledger) is not None:
        details["mac"] = seal(ws, EVENT, _seal_fields(details), ledger)
    return ledger.record_event(EVENT, details, subject=status.file_hash[:16])


def _status(ws: Workspace, ledger: Ledger, document: dict[str, Any], digest: str) -> PolicyStatus:
    recorded = last_recorded(ledger, ws)
    changes = compare(recorded.document, document) if recorded else []
    return PolicyStatus(digest, document, recorded, changes)


def policy_status(ws: Workspace) -> PolicyStatus:
    """The config file's policy against the ledger's record (for `config diff` and doctor)."""
    document = policy_document(ws.config)
    return _read_status(ws, document, policy_hash(document))


def _read_status(ws: Workspace, document: dict[str, Any], digest: str) -> PolicyStatus:
    """The status read-only (checking commands write nothing); a ledger not yet made has none."""
    if not ws.ledger_path.exists():
        return PolicyStatus(digest, document, None, [])
    with ws.open_ledger(read_only=True) as ledger:
        return _status(ws, ledger, document, digest)


def record_initial(ws: Workspace, ledger: Ledger) -> int:
    """At `vhc init`: the new workspace's policy is its first record."""
    document = policy_document(ws.config)
    digest = policy_hash(document)
    return _record(ws, ledger, PolicyStatus(digest, document, None), "initial")


def _keys(changes: list[Change]) -> str:
    return ", ".join(c.key for c in changes)


def _approvers(ws: Workspace) -> list[str]:
    # Read before the ledger is opened: enrolment may itself live in the ledger.
    from ccxtkit.auth.totp import enrolled_approvers

    return sorted(enrolled_approvers(ws))


def _mark_checked(ws: Workspace, digest: str) -> None:
    # Per Workspace object, like its cached config: a new object (or process) checks again.
    ws.__dict__[_CHECKED] = digest


# -- the gate --------------------------------------------------------------------------------
def enforce_policy(ws: Workspace) -> None:
    """Refuse (exit 8) unless the loaded config's policy is on record or only tightens it."""
    document = policy_document(ws.config)
    digest = policy_hash(document)
    if ws.__dict__.get(_CHECKED) == digest:
        return
    status = _read_status(ws, document, digest)
    if not status.same:
        _settle(ws, status, approvers=_approvers(ws))
    _mark_checked(ws, digest)


def recorded_in(ws: Workspace, ledger: Ledger) -> bool:
    """Whether the config's policy is the record of this open ledger (the caller's visit).

    True marks the workspace checked, so `enforce_policy` then returns at once; on False the
    caller closes its visit and calls `enforce_policy`, which settles or refuses.
    """
    document = policy_document(ws.config)
    digest = policy_hash(document)
    if ws.__dict__.get(_CHECKED) == digest or _status(ws, ledger, document, digest).same:
        _mark_checked(ws, digest)
        return True
    return False


def _home_ledger_has_policy(ws: Workspace) -> Path | None:
    """The workspace's usual ledger, when the config points elsewhere and it has a policy."""
    from ccxtkit.ledger.store import open_ledger

    usual = ws.home / DEFAULT_LEDGER
    if not usual.exists() or usual.resolve() == ws.ledger_path.resolve():
        return None
    try:
        with open_ledger(usual, wait_seconds=5, read_only=True) as ledger:
            return usual if last_recorded(ledger) is not None else None
    except VhcError:
        return usual  # unreadable: assume the worst


def _refuse_moved_ledger(ws: Workspace) -> None:
    """A config that moves the ledger to a new file would escape the recorded policy."""
    usual = _home_ledger_has_policy(ws)
    if usual is not None:
        raise AuthorizationError(
            f"this config's ledger ({ws.ledger_path}) has no policy on record, but the "
            f"workspace's ledger {usual} has: a config pointing at a new ledger is refused; "
            "keep ledger.path on the workspace's ledger (move the file itself to move it)"
        )


def _settle(ws: Workspace, first: PolicyStatus, approvers: list[str]) -> None:
    if first.recorded is None:
        _refuse_moved_ledger(ws)
    with ws.open_ledger() as ledger:
        status = _status(ws, ledger, first.document, first.file_hash)  # again, under the lock
        if status.same:
            return
        if status.recorded is None and approvers:
            raise AuthorizationError(
                "no policy is on record in this ledger yet and approvers are enrolled: "
                f"record the config's policy with `{APPLY_HINT}`"
            )
        if status.recorded is not None and not status.loosening:
            note = f"tightened: {_keys(status.changes)}" if status.changes else "reordered"
            _record(ws, ledger, status, "tightened", note=note)
            _NOTES.append(f"policy change recorded automatically ({note})")
            log.info("policy %s recorded: %s", status.file_hash[:16], note)
            return
        if not approvers:
            changed = _keys(status.changes) or "the first policy"
            warning = (
                f"warning: policy change recorded WITHOUT a code ({changed}): no approver is "
                "enrolled yet; run `vhc totp setup` so that loosening a limit needs a 2FA code"
            )
            _record(ws, ledger, status, "unenrolled", note=warning)
            _NOTES.append(warning)
            log.warning("%s", warning)
            return
    message = (
        f"the config loosens the recorded policy ({_keys(status.loosening)}); nothing was "
        f"done: see `vhc config diff`, and record the change with `{APPLY_HINT}`"
    )
    _alert(ws, message, status.file_hash)
    raise AuthorizationError(message)


def _alert(ws: Workspace, message: str, digest: str) -> None:
    """Someone edited the policy, or pointed vhc at another config: the approvers hear of it."""
    from ccxtkit.alerts import Alert, send_alert

    try:
        send_alert(ws, Alert("critical", "Policy change refused", message, f"policy.{digest}"))
    except Exception as exc:  # noqa: BLE001 - the refusal stands whatever the channel does
        log.warning("policy alert not sent: %s", exc)


def apply_policy(ws: Workspace, code: str | None, approver: str | None = None) -> Applied:
    """Record the config file's policy: a loosening change needs an enrolled approver's code."""
    from ccxtkit.auth.totp import DEFAULT_APPROVER, verify_code

    document = policy_document(ws.config)
    digest = policy_hash(document)
    with ws.open_ledger() as ledger:
        before = _status(ws, ledger, document, digest)
    if before.same:
        return Applied(None, digest, "unchanged", [])
    if before.recorded is None:
        _refuse_moved_ledger(ws)
    approvers = _approvers(ws)
    needs_code = bool(approvers) and (before.recorded is None or bool(before.loosening))
    who: str | None = None
    if needs_code:
        if not code:
            what = _keys(before.loosening) or "the first policy"
            raise AuthorizationError(
                f"this change loosens the policy ({what}): pass --auth-code CODE "
                "(and --approver NAME) from an enrolled approver"
            )
        who = approver or DEFAULT_APPROVER
        if who not in approvers:
            raise AuthorizationError(
                f"approver {who!r} is not enrolled (enrolled: {', '.join(approvers)})"
            )
        verify_code(ws, code, who, purpose="config.apply")
    with ws.open_ledger() as ledger:
        status = _status(ws, ledger, document, digest)
        if status.same:
            return Applied(None, digest, "unchanged", [])
        if status.recorded != before.recorded:
            raise AuthorizationError(
                "the recorded policy changed while this command ran; run it again"
            )
        warning = None
        if who:
            how = "approved"
        elif not approvers:
            how = "unenrolled"
            warning = (
                "warning: recorded WITHOUT a code: no approver is enrolled yet; run "
                "`vhc totp setup` so that loosening a limit needs a 2FA code"
            )
        else:
            how = "tightened"
        seq = _record(ws, ledger, status, how, approver=who, note=warning)
    _mark_checked(ws, digest)
    return Applied(seq, digest, how, status.changes, warning)
