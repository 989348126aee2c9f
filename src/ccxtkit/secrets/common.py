"""What every secrets backend shares: the credentials record, its errors, and where names live."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ccxtkit.errors import ConfigError, SecretsError
from ccxtkit.logs import register_secret

Backend = Literal["keyring", "vault", "aws", "env"]
BACKENDS: tuple[Backend, ...] = ("keyring", "vault", "aws", "env")

#: Keyring service name under which vhc keeps everything.
KEYRING_SERVICE = "vhc"

#: The fields of an exchange key, as the seed's Vault and AWS examples name them.
CREDENTIAL_FIELDS = ("api_key", "api_secret", "passphrase")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


@dataclass(frozen=True)
class Credentials:
    """An exchange account's API key. Its repr never shows the values."""

    api_key: str
    api_secret: str
    passphrase: str | None = None

    def __repr__(self) -> str:
        return "Credentials(api_key=***, api_secret=***, passphrase=***)"

    __str__ = __repr__

    def register(self) -> Credentials:
        """Register every value for redaction and return self."""
        for value in (self.api_key, self.api_secret, self.passphrase):
            register_secret(value)
        return self

    def as_fields(self) -> dict[str, str]:
        """The stored form: api_key, api_secret and passphrase when there is one."""
        fields = {"api_key": self.api_key, "api_secret": self.api_secret}
        if self.passphrase:
            fields["passphrase"] = self.passphrase
        return fields


@dataclass(frozen=True)
class Fetched:
    """A secret's fields as a backend returned them, and when it was set if the backend knows."""

    fields: dict[str, str]
    updated_at: datetime | None = None


@dataclass(frozen=True)
class SecretRef:
    """Which secret: an exchange account's key (`exchange`) or a named one (`generic`)."""

    kind: Literal["exchange", "generic"]
    name: str

    @property
    def is_exchange(self) -> bool:
        return self.kind == "exchange"


def check_name(name: str) -> str:
    """Secret and account names become paths and variable names: keep them plain."""
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"secret name {name!r} may hold only letters, digits, '_', '-' and '.' "
            "(and must start with a letter or digit)"
        )
    return name


class MissingSecretError(ConfigError):
    """The backend answered, but holds no such secret (exit 2: run `vhc secrets set`)."""


class BackendUnavailableError(SecretsError):
    """The backend is down, unreachable, or refused our access (exit 5)."""


def credentials_from(fields: dict[str, str], where: str, account: str) -> Credentials:
    """Build Credentials from stored fields, or say which field is missing."""
    missing = [f for f in ("api_key", "api_secret") if not fields.get(f)]
    if missing:
        raise MissingSecretError(
            f"{where} has no {' or '.join(missing)}: run `vhc secrets set {account}`"
        )
    passphrase = fields.get("passphrase") or None
    return Credentials(fields["api_key"], fields["api_secret"], passphrase).register()


def parse_json_fields(text: str, where: str) -> dict[str, str]:
    """Parse a JSON object of string fields (keyring and AWS store credentials this way)."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ConfigError(f"{where} is not a JSON object of fields; store it again") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where} is not a JSON object of fields; store it again")
    return {str(k): str(v) for k, v in data.items() if v is not None}


def require_backend(name: str) -> Backend:
    """Validate a backend name given on the command line."""
    for backend in BACKENDS:
        if name == backend:
            return backend
    raise ConfigError(f"unknown secrets backend {name!r}: use one of {', '.join(BACKENDS)}")
