"""Every exchange call timed for the `trading_api_latency_seconds` histogram and `vhc_exchange_up`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

#: Called as (method, milliseconds, ok) after each call.
Recorder = Callable[[str, float, bool], None]

F = TypeVar("F", bound=Callable[..., Any])
#: The mark `not_an_exchange_call` leaves on a method.
_UNTIMED = "_vhc_not_an_exchange_call"


def not_an_exchange_call(method: F) -> F:
    """Mark a client method that asks no exchange (a setting, a clock): it is not timed.

    Its duration would otherwise be a latency sample of the exchange, and a sample that
    never waited on the network drags the histogram down and reports the exchange up.
    """
    setattr(method, _UNTIMED, True)
    return method


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
        untimed = name.startswith("_") or name == "close" or getattr(attr, _UNTIMED, False)
        if not callable(attr) or untimed:
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
