"""Secrets: exchange keys and named secrets from the keyring, Vault, AWS or (dev only) env.

Values never leave this package except inside `Credentials` or as `get_secret`'s return, and
every value is registered for redaction the moment it is read or typed. Errors name the
backend and the path, never a value: a missing secret is exit 2 (with the `vhc secrets set`
that fixes it), a backend that is down or refuses our token is exit 5.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ccxtkit.config import ExchangeConfig
from ccxtkit.errors import UsageError
from ccxtkit.logs import log, register_secret
from ccxtkit.workspace import Workspace

from . import aws, env, keyring_backend, meta, vault
from .common import (
    BACKENDS,
    Backend,
    BackendUnavailableError,
    Credentials,
    Fetched,
    MissingSecretError,
    SecretRef,
    check_name,
    credentials_from,
    require_backend,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendUnavailableError",
    "Credentials",
    "MissingSecretError",
    "SecretRef",
    "SetResult",
    "account_backend",
    "describe",
    "fetch",
    "get_secret",
    "needs_keys",
    "resolve_credentials",
    "set_credentials",
    "set_secret",
    "take_warnings",
    "target",
]

_WARNINGS: list[str] = []


def take_warnings() -> list[str]:
    """Warnings gathered so far (e.g. env keys on a live account), for the CLI to show once."""
    taken = list(dict.fromkeys(_WARNINGS))
    _WARNINGS.clear()
    return taken


def needs_keys(account: str, ex: ExchangeConfig) -> bool:
    """Paper accounts and `secrets: none` need no API key."""
    return (ex.id or account) != "paper" and ex.secrets != "none"


def is_live(account: str, ex: ExchangeConfig) -> bool:
    """Real money: not the paper simulator and not the exchange's sandbox."""
    return (ex.id or account) != "paper" and not ex.sandbox


def account_backend(ws: Workspace, account: str) -> Backend | None:
    """Where an account's keys live, or None when it needs none."""
    ex = ws.config.exchange(account)
    if not needs_keys(account, ex):
        return None
    return require_backend(ex.secrets)


def describe(ws: Workspace, ref: SecretRef, backend: Backend) -> str:
    """Where a secret lives, in words a person can act on (never the value)."""
    cfg = ws.config.secrets
    if backend == "vault":
        return f"Vault path {vault.where(cfg.vault, ref)}"
    if backend == "aws":
        return aws.where(cfg.aws, ref)
    if backend == "env":
        return env.where(ref)
    return keyring_backend.where(ref)


def fetch(ws: Workspace, ref: SecretRef, backend: Backend) -> Fetched:
    """Read a secret's fields from a backend (values registered for redaction)."""
    cfg = ws.config.secrets
    if backend == "vault":
        fetched = vault.read(cfg.vault, ref)
    elif backend == "aws":
        fetched = aws.read(cfg.aws, ref)
    elif backend == "env":
        fetched = env.read(ref)
    else:
        fetched = keyring_backend.read(ref)
    for value in fetched.fields.values():
        register_secret(value)
    return fetched


def resolve_credentials(ws: Workspace, account: str) -> Credentials | None:
    """The account's API key from its backend; None for paper accounts and `secrets: none`."""
    ex = ws.config.exchange(account)
    backend = account_backend(ws, account)
    if backend is None:
        return None
    ref = SecretRef("exchange", check_name(account))
    fetched = fetch(ws, ref, backend)
    creds = credentials_from(fetched.fields, describe(ws, ref, backend), account)
    if backend == "env" and is_live(account, ex):
        _WARNINGS.append(env.live_warning(account))
    log.info("resolved API key of %s from %s", account, backend)
    return creds


def get_secret(ws: Workspace, name: str, backend: Backend | None = None) -> str:
    """A named secret (SMTP password, bot token, ...) from `backend` or `secrets.backend`."""
    ref = SecretRef("generic", check_name(name))
    chosen = backend or ws.config.secrets.backend
    return fetch(ws, ref, chosen).fields["value"]


@dataclass(frozen=True)
class SetResult:
    """What `set` stored and where (never the value)."""

    name: str
    kind: str
    backend: Backend
    location: str
    set_at: datetime
    recorded: str


#: Names only `vhc totp setup` may write: an approver's TOTP secret and the control key.
RESERVED_PREFIXES = ("totp_", "control_")


def target(
    ws: Workspace, name: str, backend: Backend | None = None, *, reserved: bool = False
) -> tuple[SecretRef, Backend]:
    """What `set NAME` would store and where; raises before any prompt if it cannot."""
    if not reserved and check_name(name).startswith(RESERVED_PREFIXES):
        # Writing one of these would replace an approver's 2FA secret without its code.
        raise UsageError(
            f"secret names starting with {' or '.join(RESERVED_PREFIXES)} belong to vhc's 2FA "
            "and are written only by `vhc totp setup` (with the codes it asks for)"
        )
    if is_exchange_account(ws, check_name(name)):
        ref = SecretRef("exchange", name)
        chosen = backend or account_backend(ws, name)
        if chosen is None:
            raise UsageError(
                f"account {name!r} needs no API key (paper or `secrets: none`); "
                "set `secrets:` on it in the config first, or pass --backend"
            )
    else:
        ref = SecretRef("generic", name)
        chosen = backend or ws.config.secrets.backend
    if chosen == "env":
        names = ", ".join(env.variables(ref).values())
        raise UsageError(
            f"the env backend cannot store secrets: export {names} instead "
            "(or choose --backend keyring|vault|aws)"
        )
    return ref, chosen


def _store(ws: Workspace, ref: SecretRef, fields: dict[str, str], backend: Backend) -> str:
    for value in fields.values():
        register_secret(value)
    cfg = ws.config.secrets
    if backend == "vault":
        return vault.write(cfg.vault, ref, fields)
    if backend == "aws":
        return aws.write(cfg.aws, ref, fields)
    if backend == "keyring":
        return keyring_backend.write(ref, fields)
    raise UsageError(f"the {backend} backend cannot store secrets")


def _record(ws: Workspace, ref: SecretRef, backend: Backend, where: str, now: datetime) -> str:
    details = meta.set_event(ref.name, ref.kind, backend, where)
    wait = float(ws.config.ledger.lock_wait_seconds)
    return meta.record_set(ws.ledger_path, wait, details, now)


def set_credentials(
    ws: Workspace,
    account: str,
    creds: Credentials,
    backend: Backend | None = None,
    now: datetime | None = None,
) -> SetResult:
    """Store an account's API key and record when (not what) in the ledger."""
    creds.register()
    ws.config.exchange(
        check_name(account)
    )  # an unknown account is a ConfigError naming those known
    ref, chosen = target(ws, account, backend)
    if not (creds.api_key and creds.api_secret):
        raise UsageError("both the API key and the API secret are needed")
    where = _store(ws, ref, creds.as_fields(), chosen)
    moment = now or datetime.now(UTC)
    recorded = _record(ws, ref, chosen, where, moment)
    log.info("stored API key of %s in %s", account, chosen)
    return SetResult(account, ref.kind, chosen, where, moment, recorded)


def set_secret(
    ws: Workspace,
    name: str,
    value: str,
    backend: Backend | None = None,
    now: datetime | None = None,
    *,
    reserved: bool = False,
) -> SetResult:
    """Store a named secret and record when (not what) in the ledger.

    `reserved=True` is for auth.totp only: the 2FA secrets and the control key.
    """
    register_secret(value)
    if not value:
        raise UsageError(f"an empty value cannot be stored as secret {name!r}")
    ref, chosen = target(ws, name, backend, reserved=reserved)
    if ref.is_exchange:
        raise UsageError(f"{name!r} is an exchange account: store its key with set_credentials")
    where = _store(ws, ref, {"value": value}, chosen)
    moment = now or datetime.now(UTC)
    recorded = _record(ws, ref, chosen, where, moment)
    log.info("stored secret %s in %s", name, chosen)
    return SetResult(name, ref.kind, chosen, where, moment, recorded)


def is_exchange_account(ws: Workspace, name: str) -> bool:
    """Whether `name` is an account under `exchanges:`."""
    return name in ws.config.exchanges
