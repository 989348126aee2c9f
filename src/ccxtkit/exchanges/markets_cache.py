"""An on-disk cache of one account's market and currency lists (what ccxt's load_markets fetches).

Loading markets is two slow calls on most exchanges and the lists rarely change, so each
account keeps them in `state/markets/<account>.json` (0600) for a TTL (default one hour).
A cache is only used while it is fresh and only for the same ccxt exchange, endpoints and
ccxt version it was written for: precision and limits of an order must never come from a
stale or foreign list. A symbol the cache does not know makes the gateway reload at once.

The file is in `state/`, which someone at the keyboard can edit: a list that maps `BTC/USD`
to another market's id, or loosens a minimum, must not reach an order. So the file is
signed with a key derived from the account's API secret (never stored; whoever can forge
it can trade anyway), and a file whose signature does not match is ignored and replaced.
An account without an API secret keeps no cache.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccxtkit.logs import log
from ccxtkit.workspace import write_private

FORMAT_VERSION = 1
DEFAULT_TTL_SECONDS = 3600.0


@dataclass(frozen=True)
class CachedMarkets:
    """What a fresh cache file holds: ccxt's markets, currencies and helper options."""

    fetched_at: float
    markets: dict[str, Any]
    currencies: dict[str, Any] | None
    helpers: dict[str, Any]

    def age(self, now: float) -> float:
        """Seconds since the lists were fetched from the exchange."""
        return max(0.0, now - self.fetched_at)


def signing_key(api_secret: str) -> bytes:
    """The cache's signing key, derived from the account's API secret (domain-separated)."""
    return hashlib.sha256(b"vhc markets cache v1\0" + api_secret.encode()).digest()


def fingerprint(exchange_id: str, sandbox: bool, urls: Any, ccxt_version: str) -> str:
    """What a cache is valid for: a change of exchange, endpoints or ccxt makes it foreign."""
    text = json.dumps([exchange_id, sandbox, urls, ccxt_version], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class MarketsCache:
    """One account's cache file, valid for `ttl` seconds and one fingerprint."""

    path: Path
    key: str
    secret: bytes
    ttl: float = DEFAULT_TTL_SECONDS
    clock: Callable[[], float] = time.time

    def load(self) -> CachedMarkets | None:
        """The cached lists, or None when missing, unreadable, foreign or older than the TTL."""
        if self.ttl <= 0:
            return None
        try:
            mac, _, body = self.path.read_text().partition("\n")
            if not hmac.compare_digest(mac, self._sign(body)):
                log.warning("markets cache %s: signature does not match, reloading", self.path)
                return None
            data = json.loads(body)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("markets cache %s unreadable, reloading: %s", self.path, exc)
            return None
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            return None
        if data.get("key") != self.key or not isinstance(data.get("markets"), dict):
            return None
        fetched_at = data.get("fetched_at")
        if not isinstance(fetched_at, int | float):
            return None
        cached = CachedMarkets(
            float(fetched_at), data["markets"], data.get("currencies"), data.get("helpers") or {}
        )
        if cached.age(self.clock()) >= self.ttl or fetched_at > self.clock() + 60:
            return None
        return cached

    def store(
        self, markets: dict[str, Any], currencies: dict[str, Any] | None, helpers: dict[str, Any]
    ) -> float:
        """Write the lists just fetched; returns their fetch time. A failed write is only logged."""
        fetched_at = self.clock()
        if self.ttl <= 0:
            return fetched_at
        doc = {
            "version": FORMAT_VERSION,
            "key": self.key,
            "fetched_at": fetched_at,
            "markets": markets,
            "currencies": currencies,
            "helpers": helpers,
        }
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            body = json.dumps(doc, default=_plain_json)
            write_private(self.path, self._sign(body) + "\n" + body)
        except (OSError, TypeError, ValueError) as exc:
            log.warning("markets cache %s not written: %s", self.path, exc)
        return fetched_at

    def _sign(self, body: str) -> str:
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()

    def clear(self) -> None:
        """Forget the cache (`vhc exchanges --refresh`)."""
        self.path.unlink(missing_ok=True)


def _plain_json(value: Any) -> Any:
    # ccxt's market dicts are JSON except for the odd Decimal or set in `info`.
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
