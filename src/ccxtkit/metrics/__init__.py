"""Prometheus metrics derived from the ledger and state files, for cron jobs and scrapers.

vhc runs from cron, so no process lives long enough to count anything: every value is
recomputed from what is on disk. `collect(ws)` builds a fresh registry; `export_metrics(ws)`
writes it as a node_exporter textfile and/or pushes it to a Pushgateway; `serve(ws, port)`
exposes it over HTTP, recollected on every scrape. Definitions: see `facts.py`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from ccxtkit.errors import LedgerBusyError
from ccxtkit.logs import log, redact

from .families import StaticCollector, kill_switch_active, latency_families, ledger_families
from .latency import read_latency, record_latency

if TYPE_CHECKING:
    from ccxtkit.workspace import Workspace

__all__ = ["collect", "export_metrics", "record_latency", "serve", "TEXTFILE_NAME"]

TEXTFILE_NAME = "vhc.prom"
#: The textfile holds balances: owner and group only (add node_exporter's user to the group).
TEXTFILE_MODE = 0o640


def collect(
    ws: Workspace, now: datetime | None = None, wait_seconds: float | Decimal | None = None
) -> CollectorRegistry:
    """A fresh registry holding every vhc metric, computed from the ledger and state files."""
    now = now or datetime.now(UTC)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(StaticCollector(_families(ws, now, wait_seconds)))
    return registry


def _latest_verify(ws: Workspace, facts: Any) -> None:
    """`vhc ledger verify` keeps its outcome in state/ (it writes nothing to the ledger)."""
    from ccxtkit.ledger.verify import last_outcome

    seen = last_outcome(ws.state_dir)
    if seen is None:
        return
    ok, at = seen
    when = at.replace(tzinfo=UTC)
    if facts.last_verify is None or when >= facts.last_verify:
        facts.verify_ok, facts.last_verify = ok, when


def _families(ws: Workspace, now: datetime, wait_seconds: float | Decimal | None) -> list[Metric]:
    from .facts import read_facts

    families: list[Metric] = []
    health: dict[str, Any] = {}
    readable = 0
    # The file, overruled by the ledger's record when it can be read: a deleted or edited file
    # must not make the metric say "off" while trading is blocked.
    switch_active = kill_switch_active(ws.state_dir)
    ledger_path = ws.ledger_path
    if ledger_path.exists():
        from ccxtkit.ledger.store import open_ledger
        from ccxtkit.risk.switch_state import state_in

        wait = ws.config.ledger.lock_wait_seconds if wait_seconds is None else wait_seconds
        try:
            with open_ledger(ledger_path, wait, read_only=True) as ledger:
                facts = read_facts(ledger, now, _day_start(ws, now), _ttl(ws), ws.config.timezone)
                switch_active = int(state_in(ws, ledger).active)
            _latest_verify(ws, facts)
            families += ledger_families(facts)
            health = facts.exchange_health
            readable = 1
        except LedgerBusyError:
            log.info("metrics: the ledger is busy; ledger-derived metrics skipped this time")
        except Exception as exc:  # noqa: BLE001 - metrics must never break a command
            log.warning("metrics: ledger-derived metrics skipped: %s", redact(str(exc)))
    families += latency_families(read_latency(ws), health)
    families += [
        GaugeMetricFamily(
            "vhc_kill_switch_active", "1 while the kill switch is active.",
            value=switch_active,
        ),
        GaugeMetricFamily(
            "vhc_ledger_readable", "1 if this collection could read the ledger.", value=readable
        ),
        GaugeMetricFamily(
            "vhc_metrics_collected_timestamp_seconds", "When these metrics were computed.",
            value=now.timestamp(),
        ),
    ]  # fmt: skip
    return families


def _day_start(ws: Workspace, now: datetime) -> datetime:
    """Midnight of today in the config's time zone (UTC when unset), as UTC."""
    if ws.config.timezone:
        from zoneinfo import ZoneInfo

        local = now.astimezone(ZoneInfo(ws.config.timezone))
    else:
        local = now.astimezone(UTC)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def _ttl(ws: Workspace) -> timedelta:
    return timedelta(hours=float(ws.config.withdrawals.request_ttl_hours))


def export_metrics(
    ws: Workspace, now: datetime | None = None, wait_seconds: float | Decimal | None = None
) -> list[str]:
    """Write the textfile and/or push to the Pushgateway as configured; notes of what was done."""
    notes: list[str] = []
    try:
        monitoring = ws.config.monitoring
        if not monitoring.textfile_dir and not monitoring.pushgateway_url:
            return ["metrics export not configured (monitoring.textfile_dir / pushgateway_url)"]
        registry = collect(ws, now, wait_seconds)
    except Exception as exc:  # noqa: BLE001 - a broken export must not break the command
        log.warning("metrics: collection failed: %s", redact(str(exc)))
        return [f"metrics collection failed: {redact(str(exc))}"]
    if monitoring.textfile_dir:
        target = ws.path(monitoring.textfile_dir) / TEXTFILE_NAME
        try:
            write_textfile(target, generate_latest(registry))
            notes.append(f"wrote {target}")
        except OSError as exc:
            log.warning("metrics: cannot write %s: %s", target, exc)
            notes.append(f"could not write {target}: {exc.strerror or exc}")
    if monitoring.pushgateway_url:
        from prometheus_client import push_to_gateway

        url = monitoring.pushgateway_url
        try:
            push_to_gateway(url, job="vhc", registry=registry, timeout=5)
            notes.append(f"pushed to {redact(url)}")
        except Exception as exc:  # noqa: BLE001 - urllib raises many kinds
            log.warning("metrics: push to %s failed: %s", redact(url), redact(str(exc)))
            notes.append(f"push to {redact(url)} failed: {redact(str(exc))}")
    return notes


def write_textfile(target: Path, data: bytes) -> None:
    """Write atomically beside the target (node_exporter must never read half a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # node_exporter only reads *.prom, so the temporary name must not end in .prom.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, TEXTFILE_MODE)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, TEXTFILE_MODE)  # umask may have narrowed it
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _LiveCollector:
    """Recollects on every scrape, so `metrics serve` always shows the current ledger."""

    def __init__(self, ws: Workspace, wait_seconds: float) -> None:
        self.ws = ws
        self.wait_seconds = wait_seconds

    def collect(self) -> Iterator[Metric]:
        """Yield a fresh collection."""
        now = datetime.now(UTC)
        yield from _families(self.ws, now, self.wait_seconds)


def serve(ws: Workspace, port: int, addr: str = "127.0.0.1", wait_seconds: float = 5) -> Any:
    """Start the HTTP exporter in a background thread; returns the server (call .shutdown())."""
    from prometheus_client import start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_LiveCollector(ws, wait_seconds))
    try:
        server, _thread = start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        from ccxtkit.errors import UsageError

        raise UsageError(
            f"cannot listen on {addr}:{port}: {exc.strerror}; pick another --port"
        ) from None
    return server


def wait_forever() -> None:
    """Block the serving process until it is interrupted."""
    while True:
        time.sleep(3600)
