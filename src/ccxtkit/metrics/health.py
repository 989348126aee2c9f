"""The health probe of `vhc metrics serve`: each enabled exchange's cheapest call, on a timer.

Every `monitoring.healthcheck_interval` seconds it pings each enabled account; the timed client
records the call in the latency file, which is what `vhc_exchange_up` and
`vhc_exchange_last_check_timestamp_seconds` read, so they are never older than the interval.
"""

from __future__ import annotations

import threading

from ccxtkit.logs import log, redact
from ccxtkit.workspace import Workspace


def probe_once(ws: Workspace) -> dict[str, bool]:
    """Ping every enabled account once; a failure is recorded as the account being down."""
    from ccxtkit.exchanges.factory import open_exchange
    from ccxtkit.metrics.latency import record_latency
    from ccxtkit.secrets import resolve_credentials

    results: dict[str, bool] = {}
    for name in sorted(ws.config.enabled_exchanges()):
        try:
            client = open_exchange(ws, name, resolve_credentials(ws, name))
        except Exception as exc:  # noqa: BLE001 - a refused policy or missing keys: down
            log.warning("health probe of %s: %s", name, redact(str(exc)))
            record_latency(ws, name, "ping", 0.0, ok=False)
            results[name] = False
            continue
        try:
            client.ping()  # timed: the latency file records it, ok or not
            results[name] = True
        except Exception as exc:  # noqa: BLE001 - recorded by the timed client as a failure
            log.info("health probe of %s failed: %s", name, redact(str(exc)))
            results[name] = False
        finally:
            client.close()
    return results


class HealthProbe(threading.Thread):
    """Runs `probe_once` every `interval` seconds until `stop()`."""

    def __init__(self, ws: Workspace, interval: float) -> None:
        super().__init__(name="vhc-health-probe", daemon=True)
        self.ws = ws
        self.interval = interval
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.is_set():
            try:
                probe_once(self.ws)
            except Exception as exc:  # noqa: BLE001 - the exporter keeps serving
                log.warning("health probe failed: %s", redact(str(exc)))
            self._stopped.wait(self.interval)

    def stop(self) -> None:
        """Ask the thread to finish after the current round."""
        self._stopped.set()
