"""Every exchange call timed for the `trading_api_latency_seconds` histogram and `vhc_exchange_up`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

#: Called as (method, milliseconds, ok) after each call.
Recorder = Callable[[str, float, bool], None]


class TimedClient:
    """Forwards to an exchange client and reports how long each call took and whether it failed."""

    def __init__(self, inner: Any, record: Recorder) -> None:
        self._inner = inner
        self._record = record

    def __setattr__(self, name: str, value: Any) -> None:
        # Hooks set on the client (e.g. the gateway's `on_page`) belong to the real client.
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._inner, name, value)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_") or name == "close":
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            ok = False
            try:
                result = attr(*args, **kwargs)
                ok = True
                return result
            finally:
                self._record(name, (time.perf_counter() - start) * 1000, ok)

        return timed
