"""TOTP second factor (RFC 6238): enrolment, one-use codes, and a lockout after wrong codes.

The ledger is the authority (auth.enrolment): who is enrolled and in which backend, the last
accepted 30-second step of each approver (a code is accepted once, RFC 6238 section 5.2), and
the wrong codes (five within five minutes lock the approver out until the oldest of them is five
minutes old). Nothing lives in `state/`, so deleting it re-opens nothing.

A code is checked inside one ledger session (its lock held): the enrolment, the replay and
lockout state are read and the outcome appended atomically, so two processes cannot both spend
one code. This means checking a code waits for the ledger lock (`ledger.lock_wait_seconds`)
and, if another process holds it longer, fails closed with exit 7: a code is never accepted
without checking it has not been used. Activating the kill switch never waits; deactivating it
may (it is the safe direction to be slow in).
"""

from __future__ import annotations

import re
import secrets as pysecrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ccxtkit.errors import AuthorizationError, LedgerBusyError, LedgerIntegrityError, UsageError
from ccxtkit.filelock import flocked
from ccxtkit.ledger.store import Ledger
from ccxtkit.workspace import Workspace

from . import backends
from .backends import DEFAULT_APPROVER, STEP_SECONDS, env_var
from .enrolment import (
    ENROLLED,
    FAILED,
    REMOVED,
    VERIFIED,
    Enrolled,
    enrol_fields,
    enrolled_in,
    last_step,
    recent_failures,
    removal_fields,
)
from .ledger_id import ensure_ledger_id, ledger_id
from .mac import (
    KEY_EVENT,
    check_value,
    create_key,
    key_backend,
    key_record,
    read_key,
    remember_key,
    seal,
)

__all__ = [
    "DEFAULT_APPROVER",
    "LOCKOUT",
    "MAX_FAILURES",
    "Enrolment",
    "Verified",
    "check_approver",
    "enrol",
    "enrolled_approvers",
    "env_names",
    "remove",
    "verify_code",
]

MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=5)

_APPROVER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_CODE_RE = re.compile(r"^\d{6}$")


@dataclass(frozen=True)
class Enrolment:
    """A freshly enrolled secret: show the URI once, then it lives only in the backend."""

    approver: str
    uri: str
    secret: str | None  # None for vault-engine: only Vault ever holds it
    stored_in: str  # the backend
    location: str
    exports: dict[str, str] = field(default_factory=dict)  # env variables the user must set


@dataclass(frozen=True)
class Verified:
    """A code that was accepted: who, and which 30-second step it belonged to."""

    approver: str
    step: int


def check_approver(name: str) -> str:
    """An approver name: lower-case letters, digits, '-' and '_', at most 32 characters."""
    if not _APPROVER_RE.match(name):
        raise UsageError(
            f"approver name {name!r} is not valid: use lower-case letters, digits, '-' or '_'"
        )
    return name


def env_names(approver: str) -> list[str]:
    """The environment variable of an approver enrolled with `--backend env`."""
    return [env_var(approver)]


def enrolled_approvers(ws: Workspace) -> dict[str, dict[str, Any]]:
    """Approvers enrolled (from the ledger, read-only), with when and where their secret went."""
    if not ws.ledger_path.exists():
        return {}
    with ws.open_ledger(read_only=True) as ledger:
        found = enrolled_in(ledger, ws)
    return {
        n: {
            "enrolled_at": e.enrolled_at.isoformat(),
            "stored_in": e.backend,
            "location": e.location,
        }
        for n, e in found.items()
    }


# -- enrolment -------------------------------------------------------------------------------
def enrol(
    ws: Workspace,
    approver: str = DEFAULT_APPROVER,
    backend: str | None = None,
    replace_code: str | None = None,
    now: datetime | None = None,
    vouched_by: str | None = None,
) -> Enrolment:
    """Create a new secret for an approver, store it, and record the enrolment (sealed).

    Replacing one needs its current code; adding a further approver needs a code from one
    already enrolled; a secret already in the backend is never overwritten without its code.
    """
    check_approver(approver)
    chosen = backends.require_approver_backend(backend or ws.config.secrets.backend)
    if chosen == "keyring":
        from ccxtkit.secrets.keyring_backend import require_usable_keyring

        require_usable_keyring()  # before anything is created: a setup problem, exit 2
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    ws.ensure_private_dir(ws.state_dir)
    # Serialises enrolments of this workspace (two at once would race on the backend write).
    with flocked(ws.state_dir / "totp_enrol.lock"):
        with ws.open_ledger() as ledger:
            lid = ensure_ledger_id(ledger)
            enrolled = enrolled_in(ledger, ws)
            has_key = key_record(ledger) is not None
        if not enrolled:
            from ccxtkit.policy.service import enforce_policy

            # The last moment a policy change needs no code: the first approver freezes it.
            enforce_policy(ws)
        if has_key and not enrolled:
            raise LedgerIntegrityError(
                "the ledger records this workspace's control key but no approver: its "
                "enrolment records were removed; restore the ledger from a backup"
            )
        voucher = _authorise(ws, approver, enrolled, replace_code, vouched_by, moment)
        if not has_key:
            _refuse_orphan_key(ws, lid, chosen)
        current = enrolled.get(approver)
        same_place = current is not None and current.backend == chosen
        if not same_place and backends.exists(ws, lid, approver, chosen):
            raise AuthorizationError(
                f"{backends.location(ws, lid, approver, chosen)} already exists but this "
                "ledger does not record it as enrolled: vhc never overwrites a secret without "
                "a code from it; restore the ledger from a backup, or delete that secret by hand"
            )
        new_key: tuple[bytes, dict[str, str]] | None = None
        kb = key_backend(chosen)
        if not has_key:
            existing_key = read_key(ws, lid, kb) if kb == "env" else None
            new_key = (existing_key, {}) if existing_key else create_key(ws, lid, kb)
        stored = backends.store_new(ws, lid, approver, chosen)
        where = backends.location(ws, lid, approver, chosen)
        with ws.open_ledger() as ledger:
            if new_key is not None:
                _record_key(ledger, ws, lid, kb, new_key[0])
            details: dict[str, Any] = {
                "approver": approver,
                "backend": chosen,
                "location": where,
                "replaced": current is not None,
                "by": voucher,
                "nonce": pysecrets.token_hex(8),
            }
            details["mac"] = seal(ws, ENROLLED, enrol_fields(details), ledger)
            ledger.record_event(ENROLLED, details, subject=approver, timestamp=moment)
    exports = {**(new_key[1] if new_key else {}), **stored.exports}
    _alert(
        ws,
        f"Approver {approver} enrolled",
        f"2FA approver {approver!r} was {'re-' if current else ''}enrolled"
        + (f" (vouched for by {voucher})" if voucher and voucher != approver else "")
        + f"; secret in {where}. If this was not you, activate the kill switch.",
    )
    return Enrolment(approver, stored.uri, stored.secret, chosen, where, exports)


def _authorise(
    ws: Workspace,
    approver: str,
    enrolled: dict[str, Enrolled],
    code: str | None,
    vouched_by: str | None,
    now: datetime,
) -> str | None:
    """Check the code an enrolment needs; returns whose code it was (None for the first)."""
    if approver in enrolled:
        if not code:
            raise UsageError(
                f"approver {approver!r} is already enrolled: to replace the secret, pass "
                "--replace --auth-code with a current code from it"
            )
        verify_code(ws, code, approver, purpose="totp.replace", now=now)
        return approver
    if not enrolled:
        return None
    voucher = vouched_by or sorted(enrolled)[0]
    if voucher not in enrolled:
        raise AuthorizationError(f"--by {voucher!r} is not an enrolled approver")
    if not code:
        raise AuthorizationError(
            f"approvers are already enrolled ({', '.join(sorted(enrolled))}): adding "
            f"{approver!r} needs --auth-code with a current code from one of them "
            "(and --by NAME if it is not the first)"
        )
    verify_code(ws, code, voucher, purpose="totp.enrol_new", now=now)
    return voucher


def _refuse_orphan_key(ws: Workspace, lid: str, chosen: str) -> None:
    """A control key for this ledger id that the ledger does not record: its rows were removed."""
    own = key_backend(chosen)
    for place in sorted({own, ws.config.secrets.backend} - {"env"}):
        try:
            found = read_key(ws, lid, place) is not None
        except AuthorizationError:
            if place == own:
                raise
            continue  # the configured backend is not reachable here: the chosen one decides
        if found:
            raise LedgerIntegrityError(
                f"{place} already holds this workspace's control key (control_{lid}), but the "
                "ledger records no enrolment: its enrolment records were removed; restore the "
                "ledger from a backup (if a first enrolment failed half-way, delete that key "
                "from the backend by hand and run `vhc totp setup` again)"
            )


def _record_key(ledger: Ledger, ws: Workspace, lid: str, backend: str, key: bytes) -> None:
    details = {"ledger_id": lid, "backend": backend, "check": check_value(key)}
    ledger.record_event(KEY_EVENT, details, subject=lid)
    remember_key(ledger, lid, backend, key)


def remove(
    ws: Workspace,
    approver: str,
    code: str,
    by: str | None = None,
    now: datetime | None = None,
) -> None:
    """Remove an approver, with a code from it or (--by) another one; never the last one."""
    check_approver(approver)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    voucher = check_approver(by) if by else approver
    enrolled = enrolled_approvers(ws)
    if approver not in enrolled:
        raise UsageError(f"approver {approver!r} is not enrolled (see `vhc totp list`)")
    if len(enrolled) == 1:
        raise UsageError(
            f"{approver!r} is the only enrolled approver: enrol another before removing it "
            "(with none, anyone could enrol without a code)"
        )
    verify_code(ws, code, voucher, purpose=f"totp.remove {approver}", now=moment)
    with ws.open_ledger() as ledger:
        if approver not in enrolled_in(ledger, ws):
            raise UsageError(f"approver {approver!r} is not enrolled (see `vhc totp list`)")
        details: dict[str, Any] = {
            "approver": approver,
            "by": voucher,
            "nonce": pysecrets.token_hex(8),
        }
        details["mac"] = seal(ws, REMOVED, removal_fields(details), ledger)
        ledger.record_event(REMOVED, details, subject=approver, timestamp=moment)
    _alert(ws, f"Approver {approver} removed", f"2FA approver {approver!r} removed by {voucher}.")


# -- verification ----------------------------------------------------------------------------
def verify_code(
    ws: Workspace,
    code: str,
    approver: str = DEFAULT_APPROVER,
    purpose: str = "",
    now: datetime | None = None,
) -> Verified:
    """Accept a fresh, unused TOTP code of an enrolled `approver` or raise (exit 8).

    Every attempt is recorded in the ledger (`totp.verified` with its step / `totp.failed`),
    never the code. A busy ledger is exit 7 and the code is not used.
    """
    check_approver(approver)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    try:
        with ws.open_ledger() as ledger:
            outcome = _check(ledger, ws, code, approver, purpose, moment)
    except LedgerBusyError as exc:
        raise LedgerBusyError(
            f"{exc.message}; the 2FA code was not checked (it cannot be checked for reuse "
            "without the ledger) and is not used up"
        ) from None
    except LedgerIntegrityError as exc:
        from .mac import tamper_alert

        tamper_alert(ws, exc, key="totp.forged")
        raise
    if isinstance(outcome, AuthorizationError):
        raise outcome
    return outcome


def _check(
    ledger: Ledger, ws: Workspace, code: str, approver: str, purpose: str, moment: datetime
) -> Verified | AuthorizationError:
    details = {"approver": approver, "purpose": purpose}

    def fail(reason: str, message: str) -> AuthorizationError:
        ledger.record_event(
            FAILED, {**details, "reason": reason}, subject=approver, timestamp=moment
        )
        return AuthorizationError(message)

    enrolled = enrolled_in(ledger, ws)
    who = enrolled.get(approver)
    if who is None:
        return fail(
            "not_enrolled",
            f"approver {approver!r} is not enrolled in this workspace: run `vhc totp setup "
            f"--approver {approver}` (a secret in the environment is not an enrolment)",
        )
    recent = recent_failures(ledger, approver, who.seq, moment - LOCKOUT)
    if len(recent) >= MAX_FAILURES:
        retry_at = recent[-MAX_FAILURES] + LOCKOUT
        return fail(
            "locked_out",
            f"too many wrong 2FA codes for approver {approver!r}: locked out; "
            f"try again after {retry_at.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}",
        )
    text = code.strip().replace(" ", "")
    step = int(moment.timestamp()) // STEP_SECONDS
    lid = ledger_id(ledger) or ""
    try:
        matched = (
            backends.check(ws, lid, approver, who.backend, text, step)
            if _CODE_RE.match(text)
            else None
        )
    except AuthorizationError as exc:
        return fail("backend_error", exc.message)
    if matched is None:
        return fail(
            "wrong_code",
            f"the 2FA code is not valid for approver {approver!r} "
            "(check the authenticator app and the clock)",
        )
    last = last_step(ledger, who)
    if last is not None and matched <= last:
        return fail(
            "replayed",
            f"this 2FA code of approver {approver!r} was already used; "
            "wait for the next code (every code is accepted once)",
        )
    ledger.record_event(
        VERIFIED,
        {**details, "step": matched, "backend": who.backend},
        subject=approver,
        timestamp=moment,
    )
    return Verified(approver=approver, step=matched)


def _alert(ws: Workspace, title: str, body: str) -> None:
    from ccxtkit.alerts import Alert, send_alert
    from ccxtkit.logs import log

    try:
        send_alert(ws, Alert("warning", title, body, key=f"totp.{title}"))
    except Exception as exc:  # noqa: BLE001 - an alert channel failing must not undo enrolment
        log.warning("alert %r not sent: %s", title, exc)
