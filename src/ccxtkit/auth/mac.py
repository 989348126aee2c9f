"""MACs over control records, keyed by a secret that lives only in the secrets backend.

The ledger's hash chain proves that rows were not changed after the fact, but anyone who can
write the DuckDB file can append rows with correct hashes. Enrolments, allowlist entries and
withdrawal approvals therefore also carry an HMAC-SHA256 under the workspace's *control key*:
32 random bytes created at the first enrolment in that approver's secrets backend, under a
name carrying the ledger id (`control_<ledgerid>`; `VHC_CONTROL_KEY` for `env`). Whoever can
edit files but not read the backend cannot produce these MACs.

Errors: a key that cannot be read is exit 8 (AuthorizationError: nothing can be authorised);
a MAC that is missing or wrong is exit 6 (LedgerIntegrityError: the ledger holds a record vhc
did not make, i.e. evidence of tampering), with an alert.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets as pysecrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccxtkit.errors import AuthorizationError, ConfigError, LedgerIntegrityError, SecretsError
from ccxtkit.logs import log, register_secret
from ccxtkit.workspace import Workspace

from .backends import dev_warning
from .ledger_id import ledger_id

if TYPE_CHECKING:
    from ccxtkit.ledger.store import Ledger

KEY_EVENT = "control_key.created"
ENV_KEY = "VHC_CONTROL_KEY"
_CHECK = b"vhc control key check v1"
#: Backends the control key can live in (a vault-engine approver's key goes to Vault KV).
KEY_BACKENDS = ("keyring", "vault", "aws", "env")

_CACHE: dict[tuple[str, str, str], bytes] = {}


@dataclass(frozen=True)
class KeyRecord:
    """Where the control key lives, as the ledger recorded it at the first enrolment."""

    ledger_id: str
    backend: str
    check: str  # HMAC of a fixed text: tells a wrong key from a tampered record


def key_name(lid: str) -> str:
    """The control key's secret name in the backend."""
    return f"control_{lid}"


def key_backend(approver_backend: str) -> str:
    """The backend the control key goes to for an approver's backend."""
    return "vault" if approver_backend == "vault-engine" else approver_backend


def key_record(ledger: Ledger) -> KeyRecord | None:
    """The first `control_key.created` event, or None before the first enrolment."""
    rows = ledger.query(
        "SELECT details FROM control_events WHERE kind = ? ORDER BY seq LIMIT 1", [KEY_EVENT]
    )
    if not rows:
        return None
    d = json.loads(rows[0][0] or "{}")
    return KeyRecord(str(d.get("ledger_id")), str(d.get("backend")), str(d.get("check")))


def check_value(key: bytes) -> str:
    """The key's check value (safe to record: an HMAC of a fixed text)."""
    return hmac.new(key, _CHECK, hashlib.sha256).hexdigest()


def read_key(ws: Workspace, lid: str, backend: str) -> bytes | None:
    """The control key from its backend; None if it is not there; exit 8 if it cannot be read."""
    if backend == "env":
        text = os.environ.get(ENV_KEY)
        if text:
            dev_warning(f"the control key comes from ${ENV_KEY} (backend env): development only")
    else:
        from ccxtkit.secrets import MissingSecretError, get_secret
        from ccxtkit.secrets.common import require_backend

        try:
            text = get_secret(ws, key_name(lid), require_backend(backend))
        except MissingSecretError:
            text = None
        except (SecretsError, ConfigError) as exc:
            raise AuthorizationError(
                f"the workspace's control key cannot be read from {backend}: {exc.message}"
            ) from None
    if not text:
        return None
    register_secret(text)
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise AuthorizationError(
            f"the control key in {backend} is not hex: it was overwritten; restore it"
        ) from None
    return key


def create_key(ws: Workspace, lid: str, backend: str) -> tuple[bytes, dict[str, str]]:
    """Make a new control key and store it; returns it and the variables the user must export.

    An existing key of this name is never overwritten (the caller decides what it means).
    """
    key = pysecrets.token_bytes(32)
    text = key.hex()
    register_secret(text)
    if backend == "env":
        return key, {ENV_KEY: text}
    from ccxtkit.secrets import set_secret
    from ccxtkit.secrets.common import require_backend

    try:
        set_secret(ws, key_name(lid), text, require_backend(backend), reserved=True)
    except (SecretsError, ConfigError) as exc:
        raise AuthorizationError(
            f"the control key cannot be stored in {backend}: {exc.message}"
        ) from None
    return key, {}


def remember_key(ledger: Ledger, lid: str, backend: str, key: bytes) -> None:
    """Keep a key just created for this process (an env key is not exported yet)."""
    _CACHE[(str(ledger.path), lid, backend)] = key


def control_key(ws: Workspace, ledger: Ledger | None = None) -> bytes:
    """The workspace's control key, checked against the ledger's record (exit 8 if unreadable).

    Pass `ledger` when one is already open (the ledger lock is not re-entrant).
    """
    if ledger is None:
        with ws.open_ledger() as opened:
            return control_key(ws, opened)
    rec = key_record(ledger)
    lid = ledger_id(ledger)
    if rec is None or lid is None:
        raise AuthorizationError(
            "no approver is enrolled in this workspace yet, so nothing can be authorised: "
            "run `vhc totp setup`"
        )
    if rec.ledger_id != lid:
        raise LedgerIntegrityError(
            f"the control key record names ledger {rec.ledger_id}, but this ledger is {lid}: "
            "the ledger was edited; restore it from a backup"
        )
    cache_key = (str(ledger.path), lid, rec.backend)
    key = _CACHE.get(cache_key)
    if key is None:
        key = read_key(ws, lid, rec.backend)
        where = f"${ENV_KEY}" if rec.backend == "env" else f"{rec.backend} ({key_name(lid)})"
        if key is None:
            raise AuthorizationError(
                f"the workspace's control key is missing from {where}: restore it from your "
                "backup of the secrets backend (nothing can be authorised without it)"
            )
        if not hmac.compare_digest(check_value(key), rec.check):
            raise AuthorizationError(
                f"the control key in {where} is not the one this workspace was sealed with: "
                "restore the right one"
            )
        if rec.backend == "env":
            _refuse_moved_key(ws, lid)
        _CACHE[cache_key] = key
    return key


def _refuse_moved_key(ws: Workspace, lid: str) -> None:
    """The record says `env`, yet a real backend holds this ledger's key: the record was moved.

    (Someone who rewrote the ledger to point at a key of their own in the environment.)
    """
    for place in sorted({"keyring", ws.config.secrets.backend} - {"env"}):
        try:
            found = read_key(ws, lid, place)
        except AuthorizationError:
            continue  # that backend is not usable here: nothing to compare with
        if found is not None:
            raise LedgerIntegrityError(
                f"the ledger says the control key is in ${ENV_KEY}, but {place} holds "
                f"{key_name(lid)}: the key's record was rewritten; restore the ledger from a "
                "backup"
            )


def _message(lid: str, kind: str, fields: Mapping[str, object]) -> bytes:
    body = {str(k): "" if v is None else str(v) for k, v in fields.items()}
    return json.dumps(
        {"ledger_id": lid, "kind": kind, "fields": body}, sort_keys=True, separators=(",", ":")
    ).encode()


def seal(
    ws: Workspace, kind: str, fields: Mapping[str, object], ledger: Ledger | None = None
) -> str:
    """The MAC (hex) of a record of `kind` with these fields, bound to this ledger's id."""
    if ledger is None:
        with ws.open_ledger() as opened:
            return seal(ws, kind, fields, opened)
    key = control_key(ws, ledger)
    lid = ledger_id(ledger) or ""
    return hmac.new(key, _message(lid, kind, fields), hashlib.sha256).hexdigest()


def verify_seal(
    ws: Workspace,
    kind: str,
    fields: Mapping[str, object],
    mac: object,
    ledger: Ledger | None = None,
    what: str = "",
) -> None:
    """Raise LedgerIntegrityError (exit 6) unless `mac` is this record's MAC; exit 8 if no key."""
    expected = seal(ws, kind, fields, ledger)
    if not isinstance(mac, str) or not hmac.compare_digest(expected, mac):
        label = what or kind
        log.warning("seal check failed: %s", label)
        raise LedgerIntegrityError(
            f"{label} has no valid seal: it was not recorded by vhc with an approver's code "
            "(the ledger was edited); refused — investigate, then restore the ledger from a "
            "backup (`vhc ledger verify --digest`)"
        )


def tamper_alert(ws: Workspace, exc: LedgerIntegrityError, key: str) -> None:
    """Alert (critical) on evidence of tampering; a failing channel is only logged."""
    from ccxtkit.alerts import Alert, send_alert

    try:
        send_alert(ws, Alert("critical", "vhc: tampered control record refused", exc.message, key))
    except Exception as err:  # noqa: BLE001 - the refusal matters more than the alert
        log.warning("tamper alert not sent: %s", err)
