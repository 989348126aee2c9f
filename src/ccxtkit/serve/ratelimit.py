"""Token buckets, in memory, one per key (an API token's jti, a signal source's name).

Pure: the caller passes the time (monotonic seconds). A bucket starts full (`burst`), each
request takes one, and it refills at `rate` per second up to `burst`. The buckets live as long
as the `vhc serve` process; a restart refills them, which errs on the side of serving.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import Decimal


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Buckets of `burst` requests refilled at `rate` per second, keyed by a string."""

    #: Buckets kept at most; the fullest (idle longest) are forgotten first beyond it.
    MAX_KEYS = 10_000

    def __init__(self, rate: Decimal | float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> float | None:
        """Take one request from `key`'s bucket: None if allowed, else seconds until one is."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.MAX_KEYS:
                    self._forget_idle(now)
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that would be full by now (forgetting them changes nothing)."""
        full = [
            k for k, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate >= self.burst
        ]
        for k in full or list(self._buckets)[: len(self._buckets) // 2]:
            del self._buckets[k]
