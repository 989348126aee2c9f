"""Turn ledger facts, latency samples and state files into Prometheus metric families.

Names are part of the contract (deploy/prometheus and deploy/grafana use them). Counters are
exposed the prometheus_client way: family `trading_orders_filled`, sample
`trading_orders_filled_total`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .facts import LedgerFacts
from .latency import LatencySample

#: Upper bounds of the latency histogram's buckets, in milliseconds.
#: Histogram bounds in seconds (Prometheus base units: `_seconds`, never `_ms`).
LATENCY_BUCKETS_SECONDS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class StaticCollector:
    """A collector that yields metric families computed beforehand."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        """Yield the stored families."""
        return iter(self._families)


def _gauge(name: str, doc: str, value: float | Decimal | None) -> list[Metric]:
    if value is None:
        return []
    return [GaugeMetricFamily(name, doc, value=float(value))]


#: (kind, name, help, LedgerFacts attribute) of the per-exchange families.
_PER_EXCHANGE: tuple[tuple[str, str, str, str], ...] = (
    ("counter", "trading_orders", "Orders created by vhc.", "orders_total"),
    ("counter", "trading_orders_filled", "Orders filled completely.", "orders_filled"),
    ("counter", "trading_orders_rejected", "Orders rejected or failed.", "orders_rejected"),
    ("gauge", "trading_balance_usd", "Latest balance snapshot valued in USD.", "balance_usd"),
    (
        "gauge",
        "trading_balance_unpriced_assets",
        "Assets held or traded today without a USD price (left out of values).",
        "unpriced_assets",
    ),
    (
        "gauge",
        "trading_pnl_daily_usd",
        "Profit of today's trades marked at the latest price, USD, net of fees.",
        "pnl_daily_usd",
    ),
    ("gauge", "trading_volume_daily_usd", "Traded value today, USD.", "volume_daily_usd"),
    (
        "gauge",
        "trading_reconciliation_discrepancy_usd",
        "Absolute USD discrepancy found by the latest reconcile of each exchange.",
        "discrepancy_usd",
    ),
)


def ledger_families(facts: LedgerFacts) -> list[Metric]:
    """Families derived from the ledger."""
    out: list[Metric] = []
    for kind, name, doc, attr in _PER_EXCHANGE:
        family: CounterMetricFamily | GaugeMetricFamily
        if kind == "counter":
            family = CounterMetricFamily(name, doc, labels=["exchange"])
        else:
            family = GaugeMetricFamily(name, doc, labels=["exchange"])
        values: dict[str, int | Decimal] = getattr(facts, attr)
        for exchange, value in sorted(values.items()):
            family.add_metric([exchange], float(value))
        out.append(family)
    positions = GaugeMetricFamily(
        "trading_position_usd", "Value of a non-cash holding, USD.", labels=["exchange", "asset"]
    )
    for (exchange, asset), value in sorted(facts.positions_usd.items()):
        positions.add_metric([exchange, asset], float(value))
    out.append(positions)
    out += _gauge(
        "trading_drawdown_pct",
        "Percent below the high-water mark of portfolio value (balance snapshots).",
        facts.drawdown_pct,
    )
    out += _gauge(
        "vhc_ledger_head_seq", "Sequence number of the ledger's last row.", facts.head_seq
    )
    out += _gauge(
        "vhc_last_reconcile_success_timestamp_seconds",
        "When a reconcile last completed without findings (0: never).",
        _epoch(facts.last_reconcile_success) or 0,
    )
    out += _gauge(
        "vhc_last_reconcile_timestamp_seconds",
        "When a reconcile last completed.",
        _epoch(facts.last_reconcile),
    )
    out += _gauge(
        "vhc_withdrawal_requests_pending",
        "Withdrawal requests waiting for a decision.",
        facts.withdrawals_pending,
    )
    if facts.verify_ok is not None:
        out += _gauge(
            "vhc_ledger_verify_ok", "1 if the latest ledger verify passed.", int(facts.verify_ok)
        )
        out += _gauge(
            "vhc_last_ledger_verify_timestamp_seconds", "When the ledger was last verified.",
            _epoch(facts.last_verify),
        )  # fmt: skip
    return out


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def latency_families(
    samples: list[LatencySample], health: dict[str, tuple[bool, datetime]]
) -> list[Metric]:
    """The latency histogram and per-exchange up/last-check gauges."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(
        lambda: [0] * len(LATENCY_BUCKETS_SECONDS)
    )
    sums: dict[tuple[str, str], float] = defaultdict(float)
    totals: dict[tuple[str, str], int] = defaultdict(int)
    latest: dict[str, tuple[bool, float]] = {
        n: (ok, ts.timestamp()) for n, (ok, ts) in health.items()
    }
    for s in samples:
        key = (s.exchange, s.method)
        totals[key] += 1
        seconds = s.ms / 1000
        sums[key] += seconds
        for i, bound in enumerate(LATENCY_BUCKETS_SECONDS):
            if seconds <= bound:
                counts[key][i] += 1
        if s.exchange not in latest or latest[s.exchange][1] <= s.timestamp:
            latest[s.exchange] = (s.ok, s.timestamp)
    histogram = HistogramMetricFamily(
        "trading_api_latency_seconds",
        "Exchange API call duration, seconds.",
        labels=["exchange", "method"],
    )
    for key in sorted(totals):
        bounds = [
            str(float(b)) for b in LATENCY_BUCKETS_SECONDS
        ]  # le="0.05", as Histogram writes it
        buckets = [(b, float(c)) for b, c in zip(bounds, counts[key], strict=True)]
        buckets.append(("+Inf", float(totals[key])))
        histogram.add_metric(list(key), buckets, sums[key])
    up = GaugeMetricFamily(
        "vhc_exchange_up",
        "1 if the latest API call or health check succeeded.",
        labels=["exchange"],
    )
    checked = GaugeMetricFamily(
        "vhc_exchange_last_check_timestamp_seconds",
        "When the exchange was last called or checked.",
        labels=["exchange"],
    )
    for exchange, (ok, ts) in sorted(latest.items()):
        up.add_metric([exchange], float(ok))
        checked.add_metric([exchange], ts)
    return [histogram, up, checked]


def kill_switch_active(state_dir: Path) -> int:
    """1 when `state/kill_switch.json` says active (or cannot be read: assume the worst)."""
    path = state_dir / "kill_switch.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return 0
    except (OSError, ValueError):
        return 1
    return 1 if not isinstance(data, dict) or data.get("active") is not False else 0
