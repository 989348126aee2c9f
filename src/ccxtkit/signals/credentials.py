"""A signal source's credentials from the secrets backend.

The named secret `signals_<source>` holds a JSON object `{"key": ..., "secret": ...}` (or
just the secret's text, for a source that needs no key, like TradingView). With the `env`
backend they are the variables `VHC_SIGNALS_<SOURCE>_KEY` and `VHC_SIGNALS_<SOURCE>_SECRET`.

- sheets: key = the `X-API-Key` header, secret = the HMAC-SHA256 key of `X-Signature`;
- telegram: key = the bot token (for replies), secret = the webhook's secret token;
- tradingview: secret = the body's `passphrase`.

Values are registered for redaction as soon as they are read, and kept in memory for a short
while so that a burst of webhooks does not ask the keyring or Vault once per request.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from ..config import SignalSource
from ..logs import register_secret
from ..secrets import MissingSecretError, SecretRef, fetch
from ..workspace import Workspace

#: Seconds a source's credentials are reused before the backend is asked again.
CACHE_SECONDS = 30.0

_cache: dict[tuple[str, str], tuple[float, SourceCredentials]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class SourceCredentials:
    """A source's key and secret. Its repr never shows them."""

    key: str | None
    secret: str

    def __repr__(self) -> str:
        return "SourceCredentials(key=***, secret=***)"

    __str__ = __repr__


def secret_name(source: str) -> str:
    """The named secret of a source: `signals_<source>`."""
    return f"signals_{source}"


def _read(ws: Workspace, source: str, cfg: SignalSource) -> SourceCredentials:
    backend = cfg.secrets or ws.config.secrets.backend
    name = secret_name(source)
    if backend == "env":
        key_ref = SecretRef("generic", f"{name}_key")
        secret_ref = SecretRef("generic", f"{name}_secret")
        secret = fetch(ws, secret_ref, "env").fields["value"]
        try:
            key: str | None = fetch(ws, key_ref, "env").fields["value"]
        except MissingSecretError:
            key = None
        return SourceCredentials(key, secret)
    value = fetch(ws, SecretRef("generic", name), backend).fields["value"]
    text = value.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("secret"), str):
            raise MissingSecretError(
                f'secret {name} is not a JSON object with a "secret" (and "key"): store it '
                f"again with `vhc secrets set {name}`"
            )
        key = data.get("key") if isinstance(data.get("key"), str) else None
        register_secret(key)
        register_secret(data["secret"])
        return SourceCredentials(key or None, data["secret"])
    return SourceCredentials(None, text)


#: What each kind of source needs: (needs a key, what the key is for).
_KEY_NEEDED = {"sheets": (True, "the X-API-Key header"), "telegram": (False, "the bot's replies")}


def location(ws: Workspace, source: str, cfg: SignalSource) -> str:
    """Where a source's credentials live, in words a person can act on (never the values)."""
    from ..secrets import describe

    backend = cfg.secrets or ws.config.secrets.backend
    name = secret_name(source)
    if backend == "env":
        prefix = f"VHC_{name.upper()}"
        return f"environment variables {prefix}_KEY/{prefix}_SECRET"
    return describe(ws, SecretRef("generic", name), backend)


def check_source(ws: Workspace, source: str, cfg: SignalSource) -> list[str]:
    """Read a source's credentials afresh and judge them; raises when it cannot take signals.

    Returns warnings: a Telegram source without a bot token takes signals but cannot answer.
    """
    name = secret_name(source)
    creds = _read(ws, source, cfg)
    if not creds.secret:
        raise MissingSecretError(f"secret {name} is empty")
    needed, used_for = _KEY_NEEDED.get(cfg.kind, (False, ""))
    if creds.key:
        return []
    if needed:
        raise MissingSecretError(
            f"secret {name} has no key ({used_for}): every delivery would be refused (401)"
        )
    if used_for:
        return [f"secret {name} has no key: {used_for} cannot be sent"]
    return []


def source_credentials(ws: Workspace, source: str, cfg: SignalSource) -> SourceCredentials:
    """The source's credentials (cached for CACHE_SECONDS); MissingSecretError when unset."""
    cache_key = (str(ws.home), source)
    now = time.monotonic()
    with _lock:
        hit = _cache.get(cache_key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    creds = _read(ws, source, cfg)
    if not creds.secret:
        raise MissingSecretError(f"secret {secret_name(source)} is empty")
    with _lock:
        _cache[cache_key] = (now, creds)
    return creds


def forget() -> None:
    """Drop cached credentials (tests, and after `vhc secrets set`)."""
    with _lock:
        _cache.clear()
