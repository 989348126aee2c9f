"""The policy document: the config's policy sections as plain, canonical data, and its hash."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ccxtkit.errors import ConfigError

if TYPE_CHECKING:
    from ccxtkit.config import TradingConfig

#: The config sections that are policy (DESIGN.md "Approvers and policy").
SECTIONS = ("exchanges", "risk", "withdrawals", "signals")

#: ccxt constructor keys that carry credentials: never in the config, never in the ledger.
SECRET_CCXT_KEYS = frozenset(
    {"apiKey", "secret", "password", "privateKey", "uid", "walletAddress", "token", "twofa"}
)


def plain(value: Any) -> Any:
    """JSON-ready data: Decimals as normalized strings (`10000`, `0.5`), keys as strings."""
    if isinstance(value, Decimal):
        if value == 0:
            return "0"
        text = format(value.normalize(), "f")
        return text
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _secret_paths(value: Any, path: str) -> list[str]:
    if isinstance(value, dict):
        found = [f"{path}.{k}" for k in value if str(k) in SECRET_CCXT_KEYS]
        for key, item in value.items():
            found += _secret_paths(item, f"{path}.{key}")
        return found
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _secret_paths(item, f"{path}[{i}]")]
    return []


def policy_document(config: TradingConfig) -> dict[str, Any]:
    """The policy sections with every default filled in (all fields, whatever the model has).

    Refuses credentials in an account's `ccxt` mapping: they would end up in the ledger.
    """
    data = config.model_dump(mode="python", include=set(SECTIONS))
    leaked = [
        p
        for name, account in data["exchanges"].items()
        for p in _secret_paths(account.get("ccxt", {}), f"exchanges.{name}.ccxt")
    ]
    if leaked:
        raise ConfigError(
            f"{', '.join(leaked)}: credentials belong in the secrets backend, not the config "
            "file (they would be recorded in the ledger with the policy); remove them and run "
            "`vhc secrets set NAME`"
        )
    result: dict[str, Any] = plain(data)
    return result


def canonical_json(document: dict[str, Any]) -> str:
    """The exact text that is hashed: sorted keys, no spaces, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def policy_hash(document: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON, lowercase hex."""
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()
