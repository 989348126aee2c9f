"""Secrets from environment variables: for development only, and vhc says so on live accounts."""

from __future__ import annotations

import os
import re

from .common import Fetched, MissingSecretError, SecretRef


def _stem(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def variables(ref: SecretRef) -> dict[str, str]:
    """Field name -> environment variable (`KRAKEN_API_KEY`..., or `VHC_<NAME>`)."""
    stem = _stem(ref.name)
    if ref.is_exchange:
        return {f: f"{stem}_{f.upper()}" for f in ("api_key", "api_secret", "passphrase")}
    return {"value": f"VHC_{stem}"}


def where(ref: SecretRef) -> str:
    """A human-readable location (never the value)."""
    names = variables(ref)
    if ref.is_exchange:
        return f"environment variables {names['api_key']}/{names['api_secret']}"
    return f"environment variable {names['value']}"


def read(ref: SecretRef) -> Fetched:
    """Read a secret from the process environment."""
    fields = {f: os.environ[var] for f, var in variables(ref).items() if os.environ.get(var)}
    if ref.is_exchange:
        needed = [variables(ref)[f] for f in ("api_key", "api_secret") if f not in fields]
        if needed:
            raise MissingSecretError(
                f"{' and '.join(needed)} not set in the environment (secrets: env); "
                f"export them, or store the key with `vhc secrets set {ref.name} --backend keyring`"
            )
    elif "value" not in fields:
        raise MissingSecretError(
            f"{where(ref)} is not set; export it, or run `vhc secrets set {ref.name}`"
        )
    return Fetched(fields)


def live_warning(account: str) -> str:
    """The one-line warning shown on each run that trades a live account on env keys."""
    return (
        f"warning: account {account!r} is live and takes its API key from environment "
        "variables (secrets: env), which is for development only; move it to keyring or vault"
    )
