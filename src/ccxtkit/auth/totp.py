"""TOTP second factor (RFC 6238): enrolment, one-use codes, and a lockout after wrong codes.

Each approver (default "admin") has their own secret, stored in the secrets backend as
`totp_<approver>` (or, for development, in `$VHC_TOTP_SECRET` / `$VHC_TOTP_SECRET_<APPROVER>`).
A code is accepted once: the last accepted 30-second step of each approver is remembered and
only a later step is accepted afterwards (RFC 6238 section 5.2). Wrong codes are counted: five
within five minutes lock the approver out until the oldest of them is five minutes old.

The state (last steps, failures, enrolled approvers) lives in `state/totp_state.json`, owner-only,
behind its own flock. It deliberately does not use the ledger lock: deactivating the kill switch
must work while a long reconcile holds the ledger.
"""

from __future__ import annotations

import hmac
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ccxtkit.errors import AuthorizationError, ConfigError, SecretsError, UsageError
from ccxtkit.filelock import flocked
from ccxtkit.logs import log, register_secret
from ccxtkit.workspace import Workspace, write_private

from .audit import record_control_event

DEFAULT_APPROVER = "admin"
STEP_SECONDS = 30
#: Accept the previous and the next step too: clocks drift, people type slowly.
VALID_WINDOW = 1
MAX_FAILURES = 5
LOCKOUT = timedelta(minutes=5)
ISSUER = "vhc"

_APPROVER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_CODE_RE = re.compile(r"^\d{6}$")


@dataclass(frozen=True)
class Enrolment:
    """A freshly enrolled secret: show the URI once, then it lives only in the backend."""

    approver: str
    uri: str
    secret: str
    stored_in: str  # a secrets backend name, or "env" when the user must export it


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


def secret_name(approver: str) -> str:
    """The name of an approver's TOTP secret in the secrets backend."""
    return f"totp_{approver}"


def env_names(approver: str) -> list[str]:
    """Environment variables that may hold an approver's secret (development only).

    `VHC_TOTP_SECRET` (DESIGN.md) for the default approver; `VHC_TOTP_<APPROVER>` for each,
    the name the secrets package's env backend gives the secret `totp_<approver>`.
    """
    own = "VHC_TOTP_" + re.sub(r"[^A-Z0-9]", "_", approver.upper())
    return ["VHC_TOTP_SECRET", own] if approver == DEFAULT_APPROVER else [own]


def approver_secret(ws: Workspace, approver: str) -> str:
    """The approver's base32 secret from the secrets backend, else the environment."""
    value: str | None = None
    from ccxtkit.secrets import get_secret

    try:
        value = get_secret(ws, secret_name(approver))
    except (SecretsError, ConfigError) as exc:
        log.debug("TOTP secret of %s not in the secrets backend: %s", approver, exc)
    if not value:
        value = next((os.environ[n] for n in env_names(approver) if os.environ.get(n)), None)
    if not value:
        raise AuthorizationError(
            f"no TOTP secret is enrolled for approver {approver!r}: "
            f"run `vhc totp setup --approver {approver}`"
        )
    secret = value.strip().replace(" ", "").upper()
    register_secret(secret)
    return secret


# -- state file ------------------------------------------------------------------------------
def state_path(ws: Workspace) -> Path:
    """Where the TOTP state lives."""
    return ws.state_dir / "totp_state.json"


@contextmanager
def _locked_state(ws: Workspace) -> Iterator[dict[str, Any]]:
    """Load the state under an exclusive flock; write it back (atomically, 0600) on success."""
    path = state_path(ws)
    with flocked(path.with_name("totp_state.lock")):
        try:
            state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            state = {}
        except (OSError, ValueError) as exc:
            # Refuse rather than start afresh: a reset state would re-open replays and lockouts.
            raise AuthorizationError(
                f"the 2FA state file {path} is unreadable ({exc}); restore it from backup"
            ) from None
        for key in ("approvers", "last_step", "failures"):
            state.setdefault(key, {})
        yield state
        write_private(path, json.dumps(state, indent=2, sort_keys=True))


def enrolled_approvers(ws: Workspace) -> dict[str, dict[str, Any]]:
    """Approvers enrolled with `vhc totp setup`, with when and where their secret went."""
    with _locked_state(ws) as state:
        return dict(state["approvers"])


# -- enrolment -------------------------------------------------------------------------------
def enrol(
    ws: Workspace,
    approver: str = DEFAULT_APPROVER,
    backend: str | None = None,
    replace_code: str | None = None,
    now: datetime | None = None,
    vouched_by: str | None = None,
) -> Enrolment:
    """Create a new secret for an approver and store it.

    Replacing one needs its current code; adding a further approver needs a code from one
    already enrolled, so a stolen laptop alone cannot mint the second approval.
    """
    import pyotp

    check_approver(approver)
    enrolled = enrolled_approvers(ws)
    if not enrolled:
        from ccxtkit.policy.service import enforce_policy

        # The last moment a policy change needs no code: the first approver freezes it.
        enforce_policy(ws)
    existing = approver in enrolled
    if existing:
        if not replace_code:
            raise UsageError(
                f"approver {approver!r} is already enrolled: to replace the secret, pass "
                "--replace --auth-code with a current code from it"
            )
        verify_code(ws, replace_code, approver, purpose="totp.replace", now=now)
    elif enrolled:
        voucher = vouched_by or sorted(enrolled)[0]
        if voucher not in enrolled:
            raise AuthorizationError(f"--by {voucher!r} is not an enrolled approver")
        if not replace_code:
            raise AuthorizationError(
                f"approvers are already enrolled ({', '.join(sorted(enrolled))}): adding "
                f"{approver!r} needs --auth-code with a current code from one of them "
                "(and --by NAME if it is not the first)"
            )
        verify_code(ws, replace_code, voucher, purpose="totp.enrol_new", now=now)
    secret = pyotp.random_base32()
    stored_in = _store_secret(ws, approver, secret, backend)
    uri = pyotp.TOTP(secret).provisioning_uri(name=f"{approver}@{ws.home.name}", issuer_name=ISSUER)
    when = (now or datetime.now(UTC)).isoformat()
    with _locked_state(ws) as state:
        state["approvers"][approver] = {"enrolled_at": when, "stored_in": stored_in}
        state["last_step"].pop(approver, None)
        state["failures"].pop(approver, None)
    details = {"approver": approver, "stored_in": stored_in, "replaced": existing}
    record_control_event(ws, "totp.enrolled", details, subject=approver)
    return Enrolment(approver=approver, uri=uri, secret=secret, stored_in=stored_in)


def _store_secret(ws: Workspace, approver: str, secret: str, backend: str | None) -> str:
    from ccxtkit.secrets import set_secret
    from ccxtkit.secrets.common import require_backend

    chosen = require_backend(backend) if backend else ws.config.secrets.backend
    if chosen == "env":
        return "env"  # the env backend cannot store: the user exports the variable
    return str(set_secret(ws, secret_name(approver), secret, chosen).backend)


# -- verification ----------------------------------------------------------------------------
def _matching_step(secret: str, code: str, step: int) -> int | None:
    import pyotp

    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    found = None
    for candidate in range(step - VALID_WINDOW, step + VALID_WINDOW + 1):
        # Compare every candidate (no early exit) so timing does not tell which step matched.
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            found = candidate
    return found


def verify_code(
    ws: Workspace,
    code: str,
    approver: str = DEFAULT_APPROVER,
    purpose: str = "",
    now: datetime | None = None,
) -> Verified:
    """Accept a fresh, unused TOTP code of `approver` or raise AuthorizationError (exit 8).

    Every attempt is recorded in the ledger (`totp.verified` / `totp.failed`), never the code.
    """
    check_approver(approver)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    secret = approver_secret(ws, approver)
    text = code.strip().replace(" ", "")
    step = int(moment.timestamp()) // STEP_SECONDS
    failure: str | None = None
    matched: int | None = None
    message = ""
    with _locked_state(ws) as state:
        recent = [
            t
            for t in state["failures"].get(approver, [])
            if datetime.fromisoformat(t) > moment - LOCKOUT
        ]
        if len(recent) >= MAX_FAILURES:
            retry_at = datetime.fromisoformat(recent[-MAX_FAILURES]) + LOCKOUT
            failure = "locked_out"
            message = (
                f"too many wrong 2FA codes for approver {approver!r}: locked out; "
                f"try again after {retry_at.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}"
            )
        else:
            matched = _matching_step(secret, text, step) if _CODE_RE.match(text) else None
            last = state["last_step"].get(approver)
            if matched is None:
                failure = "wrong_code"
                message = (
                    f"the 2FA code is not valid for approver {approver!r} "
                    "(check the authenticator app and the clock)"
                )
            elif last is not None and matched <= int(last):
                failure = "replayed"
                message = (
                    f"this 2FA code of approver {approver!r} was already used; "
                    "wait for the next code (every code is accepted once)"
                )
            else:
                state["last_step"][approver] = matched
            if failure:
                recent.append(moment.isoformat())
        # Lockouts do not extend themselves: a locked-out attempt is recorded but not counted.
        state["failures"][approver] = recent
    details = {"approver": approver, "purpose": purpose}
    if failure:
        record_control_event(ws, "totp.failed", {**details, "reason": failure}, subject=approver)
        raise AuthorizationError(message)
    record_control_event(ws, "totp.verified", details, subject=approver)
    return Verified(approver=approver, step=matched if matched is not None else step)
