"""HashiCorp Vault / OpenBao, KV version 2: `secret/exchanges/<account>` and `secret/vhc/<name>`.

Token from VAULT_TOKEN, else an AppRole login (role id from the config or VAULT_ROLE_ID, secret
id from the variable `secrets.vault.secret_id_env`). Address from the config, else VAULT_ADDR.
TLS is verified unless `secrets.vault.verify_tls: false`; VAULT_CACERT names a private CA.

A refused token is exit 5 (SecretsError), not 8: exit 8 is for a person's 2FA code or an
allowlist, while a bad Vault token is vhc failing to reach its own infrastructure.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from ccxtkit.config import VaultSettings
from ccxtkit.errors import ConfigError
from ccxtkit.logs import register_secret

from .common import BackendUnavailableError, Fetched, MissingSecretError, SecretRef

if TYPE_CHECKING:
    import hvac

#: Seconds to wait for Vault before calling it unreachable.
TIMEOUT_SECONDS = 10


def path(settings: VaultSettings, ref: SecretRef) -> str:
    """The KV path inside the mount."""
    return f"{settings.path_prefix}/{ref.name}" if ref.is_exchange else f"vhc/{ref.name}"


def where(settings: VaultSettings, ref: SecretRef) -> str:
    """The path as `vault kv get` spells it, e.g. `secret/exchanges/kraken`."""
    return f"{settings.mount}/{path(settings, ref)}"


def address(settings: VaultSettings) -> str:
    """Vault's URL from the config or VAULT_ADDR."""
    addr = settings.address or os.environ.get("VAULT_ADDR")
    if not addr:
        raise ConfigError(
            "no Vault address: set secrets.vault.address in the config or export VAULT_ADDR"
        )
    return addr.rstrip("/")


def _verify(settings: VaultSettings) -> bool | str:
    if not settings.verify_tls:
        return False
    return os.environ.get("VAULT_CACERT") or True


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    reason = text[0] if text else type(exc).__name__
    if "Connection refused" in reason:
        return "connection refused"
    return reason[:160]


def _fail(exc: Exception, addr: str, where_: str, ref: SecretRef) -> NoReturn:
    """Turn an hvac/requests failure into one actionable line naming the path."""
    import hvac.exceptions as hx
    import requests

    if isinstance(exc, hx.InvalidPath):
        raise MissingSecretError(
            f"no secret at Vault path {where_} ({addr}): run `vhc secrets set {ref.name}`"
        ) from None
    if isinstance(exc, hx.Forbidden | hx.Unauthorized):
        raise BackendUnavailableError(
            f"Vault at {addr} refused access to {where_}: the token is invalid or expired, "
            "or its policy does not allow this path; check VAULT_TOKEN or the AppRole login"
        ) from None
    if isinstance(exc, hx.VaultDown):
        raise BackendUnavailableError(
            f"Vault at {addr} is sealed or in maintenance; cannot read {where_}: unseal it"
        ) from None
    if isinstance(exc, requests.exceptions.SSLError):
        raise BackendUnavailableError(
            f"TLS verification failed for Vault at {addr} ({where_}): "
            "point VAULT_CACERT at the CA file"
        ) from None
    if isinstance(exc, requests.exceptions.RequestException):
        raise BackendUnavailableError(
            f"Vault at {addr} is unreachable ({_short(exc)}) while accessing {where_}: "
            "start Vault, or check secrets.vault.address / VAULT_ADDR"
        ) from None
    raise BackendUnavailableError(f"Vault at {addr} failed on {where_}: {_short(exc)}") from None


def client(settings: VaultSettings, where_: str, ref: SecretRef) -> hvac.Client:
    """An authenticated client: VAULT_TOKEN, else AppRole."""
    import hvac

    addr = address(settings)
    vc = hvac.Client(url=addr, verify=_verify(settings), timeout=TIMEOUT_SECONDS)
    token = os.environ.get("VAULT_TOKEN")
    if token:
        register_secret(token)
        vc.token = token
        return vc
    role_id = settings.role_id or os.environ.get("VAULT_ROLE_ID")
    if not role_id:
        raise ConfigError(
            f"no Vault token for {where_}: export VAULT_TOKEN, or set secrets.vault.role_id "
            f"and export {settings.secret_id_env} for an AppRole login"
        )
    secret_id = os.environ.get(settings.secret_id_env)
    if not secret_id:
        raise ConfigError(
            f"AppRole login to Vault at {addr} needs the secret id in ${settings.secret_id_env}"
        )
    register_secret(secret_id)
    try:
        vc.auth.approle.login(role_id=role_id, secret_id=secret_id)
    except Exception as exc:  # noqa: BLE001 - mapped to one line below
        import hvac.exceptions as hx

        if isinstance(exc, hx.InvalidRequest | hx.Forbidden | hx.Unauthorized):
            raise BackendUnavailableError(
                f"Vault at {addr} refused the AppRole login (role id {role_id}) needed for "
                f"{where_}: check secrets.vault.role_id and ${settings.secret_id_env}"
            ) from None
        _fail(exc, addr, where_, ref)
    register_secret(vc.token)
    return vc


def read(settings: VaultSettings, ref: SecretRef) -> Fetched:
    """Read the latest version of a KV v2 secret."""
    where_ = where(settings, ref)
    vc = client(settings, where_, ref)
    try:
        response: dict[str, Any] = vc.secrets.kv.v2.read_secret_version(
            path=path(settings, ref), mount_point=settings.mount, raise_on_deleted_version=True
        )
    except Exception as exc:  # noqa: BLE001 - mapped to one line
        _fail(exc, vc.url, where_, ref)
    data = response.get("data") or {}
    fields = {str(k): str(v) for k, v in (data.get("data") or {}).items() if v is not None}
    if not ref.is_exchange and "value" not in fields:
        raise MissingSecretError(f"Vault path {where_} has no field 'value'")
    created = (data.get("metadata") or {}).get("created_time")
    updated_at = None
    if created:
        try:
            updated_at = datetime.fromisoformat(str(created))
        except ValueError:
            updated_at = None
    return Fetched(fields, updated_at)


def write(settings: VaultSettings, ref: SecretRef, fields: dict[str, str]) -> str:
    """Write a new version of a KV v2 secret; returns its path."""
    where_ = where(settings, ref)
    vc = client(settings, where_, ref)
    try:
        vc.secrets.kv.v2.create_or_update_secret(
            path=path(settings, ref), secret=fields, mount_point=settings.mount
        )
    except Exception as exc:  # noqa: BLE001 - mapped to one line
        _fail(exc, vc.url, where_, ref)
    return f"Vault path {where_}"


# -- the TOTP secrets engine (`vhc totp setup --backend vault-engine`) -------------------------
#: Where the TOTP engine is mounted (`bao secrets enable totp`).
TOTP_MOUNT = "totp"


def _engine_fail(exc: Exception, addr: str, what: str) -> NoReturn:
    """One line for a failed call to the TOTP engine (never a code or a secret)."""
    import hvac.exceptions as hx

    if isinstance(exc, hx.InvalidPath):
        raise BackendUnavailableError(
            f"Vault at {addr} has no TOTP engine at {TOTP_MOUNT}/ ({what}): enable it with "
            f"`bao secrets enable totp` (or `vault secrets enable totp`)"
        ) from None
    ref = SecretRef("generic", what)
    _fail(exc, addr, f"{TOTP_MOUNT}/{what}", ref)


def totp_key_exists(settings: VaultSettings, name: str) -> bool:
    """Whether the TOTP engine holds a key of this name."""
    where_ = f"{TOTP_MOUNT}/keys/{name}"
    vc = client(settings, where_, SecretRef("generic", name))
    try:
        return vc.read(where_) is not None
    except Exception as exc:  # noqa: BLE001 - mapped to one line
        _engine_fail(exc, vc.url, f"keys/{name}")


def totp_key_create(settings: VaultSettings, name: str, issuer: str, account: str) -> str:
    """Generate a key inside the engine (replacing one of that name); returns its otpauth URL.

    The URL (which holds the secret) is returned once, to be shown once: it is never stored.
    """
    where_ = f"{TOTP_MOUNT}/keys/{name}"
    vc = client(settings, where_, SecretRef("generic", name))
    data = {"generate": True, "issuer": issuer, "account_name": account, "period": 30}
    try:
        response = vc.write_data(where_, data=data)
    except Exception as exc:  # noqa: BLE001 - mapped to one line
        _engine_fail(exc, vc.url, f"keys/{name}")
    url = str(((response or {}).get("data") or {}).get("url") or "")
    register_secret(url)
    return url


def totp_code_valid(settings: VaultSettings, name: str, code: str) -> bool:
    """Ask the engine whether `code` is valid for key `name` now (it refuses a reused code)."""
    import hvac.exceptions as hx

    where_ = f"{TOTP_MOUNT}/code/{name}"
    vc = client(settings, where_, SecretRef("generic", name))
    try:
        response = vc.write_data(where_, data={"code": code})
    except hx.InvalidRequest as exc:
        if "already used" in str(exc):
            return False
        if "unknown key" in str(exc):
            raise BackendUnavailableError(
                f"Vault at {vc.url} has no TOTP key {TOTP_MOUNT}/keys/{name}: the approver's "
                "key was deleted from the engine; re-enrol the approver"
            ) from None
        _engine_fail(exc, vc.url, f"code/{name}")
    except Exception as exc:  # noqa: BLE001 - mapped to one line
        _engine_fail(exc, vc.url, f"code/{name}")
    return bool(((response or {}).get("data") or {}).get("valid"))
