"""Where an approver's TOTP secret lives, and how a code is checked against it there.

Backends: `keyring`, `vault`, `aws` (the secret `totp_<ledgerid>_<approver>`), `vault-engine`
(a key `vhc-<ledgerid>-<approver>` inside Vault/OpenBao's TOTP engine, which checks each code
itself: the secret is shown once at enrolment and is never stored on this machine) and `env`
(`VHC_TOTP_SECRET` for admin, `VHC_TOTP_<NAME>` for others: development only, warned).

A code is only ever checked in the backend recorded at enrolment; a backend that fails is an
AuthorizationError (exit 8) carrying the backend's own message, never a fallback elsewhere.
"""

from __future__ import annotations

import hmac
import os
import re
from dataclasses import dataclass, field

from ccxtkit.errors import AuthorizationError, ConfigError, SecretsError, UsageError
from ccxtkit.logs import register_secret
from ccxtkit.workspace import Workspace

APPROVER_BACKENDS = ("keyring", "vault", "vault-engine", "aws", "env")
DEFAULT_APPROVER = "admin"
ISSUER = "vhc"
STEP_SECONDS = 30
#: Accept the previous and the next step too: clocks drift, people type slowly.
VALID_WINDOW = 1


def dev_warning(text: str) -> None:
    """A warning shown once at the end of the command (the CLI prints the secrets warnings)."""
    from ccxtkit import secrets

    secrets._WARNINGS.append(f"warning: {text}")  # noqa: SLF001 - the CLI's one warning list


def require_approver_backend(name: str) -> str:
    """A backend name given to `vhc totp setup --backend`."""
    if name not in APPROVER_BACKENDS:
        raise UsageError(f"unknown 2FA backend {name!r}: use one of {', '.join(APPROVER_BACKENDS)}")
    return name


def secret_name(lid: str, approver: str) -> str:
    """The secret's name in keyring/vault/aws: carries the ledger id (no cross-workspace clash)."""
    return f"totp_{lid}_{approver}"


def engine_key(lid: str, approver: str) -> str:
    """The key's name inside Vault's TOTP engine."""
    return f"vhc-{lid}-{approver}"


def env_var(approver: str) -> str:
    """The environment variable of an `env` approver (DESIGN.md)."""
    if approver == DEFAULT_APPROVER:
        return "VHC_TOTP_SECRET"
    return "VHC_TOTP_" + re.sub(r"[^A-Z0-9]", "_", approver.upper())


def location(ws: Workspace, lid: str, approver: str, backend: str) -> str:
    """Where the secret is, in words (never the value)."""
    if backend == "env":
        return f"environment variable {env_var(approver)}"
    if backend == "vault-engine":
        from ccxtkit.secrets.vault import TOTP_MOUNT

        return f"Vault TOTP engine key {TOTP_MOUNT}/keys/{engine_key(lid, approver)}"
    return f"{backend} secret {secret_name(lid, approver)}"


def _refused(backend: str, exc: SecretsError | ConfigError) -> AuthorizationError:
    return AuthorizationError(f"2FA backend {backend} failed: {exc.message}")


def read_secret(ws: Workspace, lid: str, approver: str, backend: str) -> str | None:
    """The base32 secret, None if the backend has none; exit 8 if the backend fails."""
    if backend == "vault-engine":
        raise AuthorizationError("internal: a vault-engine secret never leaves Vault")
    if backend == "env":
        value = os.environ.get(env_var(approver))
    else:
        from ccxtkit.secrets import MissingSecretError, get_secret
        from ccxtkit.secrets.common import require_backend

        try:
            value = get_secret(ws, secret_name(lid, approver), require_backend(backend))
        except MissingSecretError:
            value = None
        except (SecretsError, ConfigError) as exc:
            raise _refused(backend, exc) from None
    if not value:
        return None
    secret = value.strip().replace(" ", "").upper()
    register_secret(secret)
    return secret


def exists(ws: Workspace, lid: str, approver: str, backend: str) -> bool:
    """Whether the backend already holds a secret under this approver's name."""
    if backend == "env":
        return False  # vhc never writes the environment: nothing of ours to overwrite
    if backend == "vault-engine":
        from ccxtkit.secrets.vault import totp_key_exists

        try:
            return totp_key_exists(ws.config.secrets.vault, engine_key(lid, approver))
        except (SecretsError, ConfigError) as exc:
            raise _refused(backend, exc) from None
    return read_secret(ws, lid, approver, backend) is not None


@dataclass(frozen=True)
class Stored:
    """A new secret in its backend: the otpauth URI to show once, and what to export."""

    uri: str
    secret: str | None  # None for vault-engine: only Vault holds it
    exports: dict[str, str] = field(default_factory=dict)


def store_new(ws: Workspace, lid: str, approver: str, backend: str) -> Stored:
    """Create a fresh secret for the approver in `backend` (the caller checked overwrites)."""
    import pyotp

    account = f"{approver}@{ws.home.name}"
    if backend == "vault-engine":
        from ccxtkit.secrets.vault import totp_key_create

        try:
            uri = totp_key_create(
                ws.config.secrets.vault, engine_key(lid, approver), ISSUER, account
            )
        except (SecretsError, ConfigError) as exc:
            raise _refused(backend, exc) from None
        return Stored(uri, None)
    secret = pyotp.random_base32()
    register_secret(secret)
    uri = pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)
    if backend == "env":
        dev_warning(
            f"approver {approver!r} uses the env backend ({env_var(approver)}): development only"
        )
        return Stored(uri, secret, {env_var(approver): secret})
    from ccxtkit.secrets import set_secret
    from ccxtkit.secrets.common import require_backend

    try:
        set_secret(ws, secret_name(lid, approver), secret, require_backend(backend), reserved=True)
    except (SecretsError, ConfigError) as exc:
        raise _refused(backend, exc) from None
    return Stored(uri, secret)


def matching_step(secret: str, code: str, step: int) -> int | None:
    """The step within the window whose code is `code`, or None."""
    import pyotp

    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    found = None
    for candidate in range(step - VALID_WINDOW, step + VALID_WINDOW + 1):
        # Compare every candidate (no early exit) so timing does not tell which step matched.
        if hmac.compare_digest(totp.generate_otp(candidate), code):
            found = candidate
    return found


def check(ws: Workspace, lid: str, approver: str, backend: str, code: str, step: int) -> int | None:
    """The step a valid code belongs to (vault-engine: the current one), or None if wrong.

    Raises AuthorizationError (exit 8) when the backend fails or no longer holds the secret.
    """
    if backend == "vault-engine":
        from ccxtkit.secrets.vault import totp_code_valid

        try:
            ok = totp_code_valid(ws.config.secrets.vault, engine_key(lid, approver), code)
        except (SecretsError, ConfigError) as exc:
            raise _refused(backend, exc) from None
        # Vault does not say which step matched: the current one is recorded, and Vault's
        # own used-code cache refuses a replay in the neighbouring steps.
        return step if ok else None
    secret = read_secret(ws, lid, approver, backend)
    if secret is None:
        raise AuthorizationError(
            f"approver {approver!r} is enrolled with {location(ws, lid, approver, backend)}, "
            "which is missing: restore it (or re-enrol with another approver's code)"
        )
    if backend == "env":
        dev_warning(
            f"approver {approver!r}'s 2FA secret comes from {env_var(approver)} "
            "(backend env): development only"
        )
    return matching_step(secret, code, step)
