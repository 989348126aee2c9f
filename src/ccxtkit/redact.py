"""Config with anything secret-looking masked, for `vhc config show` and --json."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .config import TradingConfig

_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_?key|apikey|passphrase|private)", re.I)
#: Webhook URLs carry their credential in the path (Slack's hooks.slack.com/services/T/B/XXXX).
_URL_IS_SECRET = {"slack", "webhook"}
MASK = "***"


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, ""))
    return url


def _walk(value: Any, parent: str = "") -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            # Names of secrets (e.g. password_secret: smtp_pw) are references, not values.
            # `secrets: keyring` names a backend.
            is_reference = name.endswith(("_secret", "_env")) or name == "secrets"
            if _SECRET_KEY.search(name) and not is_reference and item not in (None, "", {}):
                out[name] = MASK
            elif name == "url" and parent in _URL_IS_SECRET and item:
                out[name] = MASK
            else:
                out[name] = _walk(item, name)
        return out
    if isinstance(value, list):
        return [_walk(v, parent) for v in value]
    if isinstance(value, str) and "://" in value:
        return _mask_url(value)
    return value


def redacted_config(config: TradingConfig) -> dict[str, Any]:
    """The resolved config (defaults filled in) as plain data, secrets masked."""
    data = config.model_dump()
    result: dict[str, Any] = _walk(data)
    return result
