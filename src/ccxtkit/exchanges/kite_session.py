"""Kite's daily session: `vhc kite login` exchanges a request token, the secrets backend keeps it.

The API key and secret are the account's ordinary keys (`vhc secrets set NAME`). The access
token that `generate_session` returns is stored beside them as the named secret
`kite_session_<account>` in the account's backend, with its expiry (06:00 IST after the
login), as a small JSON document. Neither the token nor the key ever reaches a log, the
ledger or `--json`: only the expiry and the Kite user id do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ccxtkit.errors import ConfigError, ExchangeError, UsageError
from ccxtkit.logs import redact, register_secret

from . import kite_hours
from .base import ApiKey
from .kite import KiteSessionError, renew_hint

if TYPE_CHECKING:
    from ccxtkit.workspace import Workspace

LOGIN_URL = "https://kite.zerodha.com/connect/login"


def is_kite(ws: Workspace, name: str) -> bool:
    """True when account `name` is a Kite Connect account (`id: kite`)."""
    return (ws.config.exchange(name).id or name) == "kite"


def kite_accounts(ws: Workspace) -> list[str]:
    """Every Kite account in the config."""
    return [n for n, a in ws.config.exchanges.items() if (a.id or n) == "kite"]


def secret_name(account: str) -> str:
    """The named secret holding the account's session."""
    return f"kite_session_{account}"


def login_url(api_key: str) -> str:
    """Where a person logs in to get a request token (Kite redirects with it)."""
    return f"{LOGIN_URL}?api_key={api_key}&v=3"


@dataclass(frozen=True)
class Session:
    """A stored session: the access token (never shown) and when it ends."""

    access_token: str
    expires_at: datetime
    user_id: str | None = None


@dataclass(frozen=True)
class LoginResult:
    """What `vhc kite login` did (no token in it)."""

    account: str
    user_id: str | None
    login_time: datetime
    expires_at: datetime
    stored_in: str


def _backend(ws: Workspace, account: str) -> Any:
    from ccxtkit.secrets import account_backend

    backend = account_backend(ws, account)
    if backend is None:
        raise ConfigError(f"{account}: a Kite account needs `secrets:` (keyring, vault or aws)")
    return backend


def load_session(ws: Workspace, account: str) -> Session:
    """The stored session; exit 8 with how to renew when there is none."""
    from ccxtkit.secrets import MissingSecretError, get_secret

    try:
        raw = get_secret(ws, secret_name(account), _backend(ws, account))
    except MissingSecretError:
        raise KiteSessionError(
            f"{account}: no Kite session is stored; {renew_hint(account)}"
        ) from None
    register_secret(raw)
    try:
        doc = json.loads(raw)
        session = Session(
            access_token=str(doc["access_token"]),
            expires_at=datetime.fromisoformat(doc["expires_at"]),
            user_id=doc.get("user_id"),
        )
    except (ValueError, KeyError, TypeError):
        raise KiteSessionError(
            f"{account}: the stored Kite session is unreadable; {renew_hint(account)}"
        ) from None
    register_secret(session.access_token)
    return session


def open_client(ws: Workspace, name: str, credentials: ApiKey | None) -> Any:
    """The account's `KiteClient`, on its stored session."""
    from .kite import KiteClient

    if credentials is None:
        raise ConfigError(f"{name}: a Kite account needs its API key (`vhc secrets set {name}`)")
    session = load_session(ws, name)
    cfg = ws.config.exchange(name)
    return KiteClient(
        name,
        cfg.kite,
        credentials.api_key,
        session.access_token,
        expires_at=session.expires_at,
    )


def login(
    ws: Workspace, account: str, request_token: str, now: datetime | None = None
) -> LoginResult:
    """Exchange a request token for the day's access token and store it (with its expiry)."""
    from kiteconnect import KiteConnect

    from ccxtkit.secrets import describe, resolve_credentials, set_secret
    from ccxtkit.secrets.common import SecretRef

    if not is_kite(ws, account):
        raise UsageError(f"{account} is not a Kite account (`id: kite`)")
    token = request_token.strip()
    if not token or not token.isalnum():
        raise UsageError("the request token is the `request_token=` value of Kite's redirect URL")
    register_secret(token)
    creds = resolve_credentials(ws, account)
    if creds is None:
        raise ConfigError(f"{account}: set the API key first: `vhc secrets set {account}`")
    backend = _backend(ws, account)
    cfg = ws.config.exchange(account).kite
    kite = KiteConnect(creds.api_key, root=cfg.root, timeout=float(cfg.timeout_seconds))
    try:
        data = kite.generate_session(token, api_secret=creds.api_secret)
    except Exception as exc:
        kind = type(exc).__name__
        detail = redact(" ".join(str(exc).split()))[:300]
        if kind == "TokenException":
            raise KiteSessionError(
                f"{account}: Kite refused the request token ({detail}); a request token works "
                f"once, for a few minutes: log in again at {login_url(creds.api_key)}"
            ) from None
        raise ExchangeError(
            f"{account}: the Kite session exchange failed ({kind}: {detail})"
        ) from None
    access = str(data["access_token"])
    register_secret(access)
    login_time = data.get("login_time")
    if isinstance(login_time, datetime):
        moment = (
            login_time.replace(tzinfo=kite_hours.IST) if login_time.tzinfo is None else login_time
        )
    else:
        moment = now or datetime.now(UTC)
    expires = kite_hours.session_expiry(moment)
    doc = {
        "access_token": access,
        "expires_at": expires.isoformat(),
        "user_id": data.get("user_id"),
    }
    set_secret(ws, secret_name(account), json.dumps(doc), backend)
    where = describe(ws, SecretRef("generic", secret_name(account)), backend)
    return LoginResult(account, data.get("user_id"), moment.astimezone(UTC), expires, where)
