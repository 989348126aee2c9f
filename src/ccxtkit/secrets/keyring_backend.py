"""The OS keyring (service `vhc`): exchange keys as one JSON entry, named secrets as plain text."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigError
from .common import (
    KEYRING_SERVICE,
    BackendUnavailableError,
    Fetched,
    MissingSecretError,
    SecretRef,
    parse_json_fields,
)


def username(ref: SecretRef) -> str:
    """The keyring user name: `exchanges/<account>` for exchange keys, else the name itself."""
    return f"exchanges/{ref.name}" if ref.is_exchange else ref.name


def where(ref: SecretRef) -> str:
    """A human-readable location (never the value)."""
    return f"keyring service {KEYRING_SERVICE!r} entry {username(ref)!r}"


def _unavailable(ref: SecretRef, exc: Exception) -> BackendUnavailableError:
    # keyring's messages name the backend and what is missing; they never hold the value.
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return BackendUnavailableError(
        f"the OS keyring cannot be used for {where(ref)}: {reason}; "
        "unlock or install a keyring, or choose another backend (secrets: vault|aws)"
    )


class PlaintextKeyringError(ConfigError):
    """The keyring backend keeps secrets in a readable file: vhc will not use it (exit 2)."""


class NoUsableKeyringError(ConfigError):
    """No keyring backend is installed or unlocked to store in (exit 2, with the fix)."""


def _backend_name(backend: Any) -> str:
    return f"{type(backend).__module__}.{type(backend).__qualname__}"


def _in_use(backend: Any) -> Any:
    """The backend that really stores: a chainer writes to its first (highest-priority) one."""
    chained = getattr(backend, "backends", None)
    return chained[0] if chained else backend


def is_plaintext(backend: Any) -> bool:
    """keyrings.alt's plaintext file backends store values base64-encoded, readable by anyone
    who can read the file: not a keyring for API keys or TOTP secrets."""
    name = _backend_name(_in_use(backend))
    return name.startswith("keyrings.alt.") and "Plaintext" in name


def require_safe_keyring() -> None:
    """Refuse a plaintext keyring backend, naming it and the fix."""
    import keyring

    backend = keyring.get_keyring()
    if is_plaintext(backend):
        used = _in_use(backend)
        where = getattr(used, "file_path", None)
        stored = f" (file {where})" if where else ""
        raise PlaintextKeyringError(
            f"the keyring backend {_backend_name(used)}{stored} stores secrets in plain text; "
            "vhc will not keep API keys or 2FA secrets there: remove it "
            "(`pip uninstall keyrings.alt`, it comes only with the dev extra), set "
            "PYTHON_KEYRING_BACKEND to your OS keyring, or use `secrets: vault|aws`"
        )


def require_usable_keyring() -> None:
    """Refuse (exit 2, with the fix) when this machine has no keyring to store in at all."""
    import keyring
    from keyring.backends import fail

    if isinstance(keyring.get_keyring(), fail.Keyring):
        raise NoUsableKeyringError(
            "there is no OS keyring on this machine to store the 2FA secret in: install and "
            "unlock one (GNOME Keyring, KWallet, macOS Keychain, Windows Credential Locker), or "
            "store it elsewhere with --backend vault|aws (see `secrets:` in the config)"
        )


def read(ref: SecretRef) -> Fetched:
    """Read a secret from the keyring."""
    import keyring
    from keyring.errors import KeyringError

    require_safe_keyring()
    try:
        text = keyring.get_password(KEYRING_SERVICE, username(ref))
    except KeyringError as exc:
        raise _unavailable(ref, exc) from None
    if text is None:
        raise MissingSecretError(f"no secret in {where(ref)}: run `vhc secrets set {ref.name}`")
    if ref.is_exchange:
        return Fetched(parse_json_fields(text, where(ref)))
    return Fetched({"value": text})


def write(ref: SecretRef, fields: dict[str, str]) -> str:
    """Store a secret in the keyring; returns where it went."""
    import keyring
    from keyring.errors import KeyringError, NoKeyringError

    require_safe_keyring()
    text = json.dumps(fields, sort_keys=True) if ref.is_exchange else fields["value"]
    try:
        keyring.set_password(KEYRING_SERVICE, username(ref), text)
    except NoKeyringError:
        # Nothing is down: this machine has no keyring to store in (a setup problem, exit 2).
        raise NoUsableKeyringError(
            f"there is no OS keyring on this machine to store {where(ref)}: install and unlock "
            "one (GNOME Keyring, KWallet, macOS Keychain, Windows Credential Locker), or store "
            "it elsewhere with --backend vault|aws (see `secrets:` in the config)"
        ) from None
    except KeyringError as exc:
        raise _unavailable(ref, exc) from None
    return where(ref)
