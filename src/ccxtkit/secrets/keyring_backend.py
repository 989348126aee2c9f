"""The OS keyring (service `vhc`): exchange keys as one JSON entry, named secrets as plain text."""

from __future__ import annotations

import json

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


def read(ref: SecretRef) -> Fetched:
    """Read a secret from the keyring."""
    import keyring
    from keyring.errors import KeyringError

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
    from keyring.errors import KeyringError

    text = json.dumps(fields, sort_keys=True) if ref.is_exchange else fields["value"]
    try:
        keyring.set_password(KEYRING_SERVICE, username(ref), text)
    except KeyringError as exc:
        raise _unavailable(ref, exc) from None
    return where(ref)
