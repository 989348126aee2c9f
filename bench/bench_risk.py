"""Time vhc's pre-trade risk work (exposure query + every limit) on a 1,000,000-trade ledger.

Usage: python bench/bench_risk.py [--trades N] [--runs R] [--keep DIR] [--check]

Builds the ledger in a temporary folder with `Ledger.append` in chunks of 100,000 (the store
goes through Arrow for big appends), plus a year of daily balance snapshots and prices on
three exchanges, some orders and order events. Then runs `build_exposure` + `check_order`
R times and prints the median and p95. Exchange latency is not part of this figure.

With `--check` the ledger is a workspace's, and what is timed is the whole `vhc kill-switch
--check` process (launch to exit: imports, config, ledger open, every trigger), as cron runs it
every minute.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ccxtkit.config import RiskConfig
from ccxtkit.ledger.store import Ledger, open_ledger
from ccxtkit.risk.exposure import build_exposure
from ccxtkit.risk.limits import OrderProposal, check_order

from vhc_bytecode import ensure_bytecode  # noqa: E402

EXCHANGES = ("kraken", "coinbase", "paper")
PAIRS = (
    ("BTC", "USD", "60000"),
    ("ETH", "USD", "3000"),
    ("SOL", "USDT", "150"),
    ("ETH", "BTC", "0.05"),
)
CHUNK = 100_000
NOW = datetime(2025, 6, 30, 15, 0, tzinfo=UTC)


def _trades(start: int, count: int, first: datetime, step: timedelta) -> list[dict[str, object]]:
    rng = random.Random(start)
    rows: list[dict[str, object]] = []
    for i in range(start, start + count):
        base, quote, px = PAIRS[i % len(PAIRS)]
        price = Decimal(px) * (1 + Decimal(rng.randint(-500, 500)) / 10_000)
        amount = Decimal(rng.randint(1, 10_000)) / 10_000
        cost = amount * price
        rows.append(
            {
                "timestamp": first + step * i,
                "exchange": EXCHANGES[i % len(EXCHANGES)],
                "symbol": f"{base}/{quote}",
                "asset": base,
                "quote": quote,
                "side": "buy" if rng.random() < 0.55 else "sell",
                "amount": amount,
                "price": price,
                "cost": cost,
                "fee": (cost * Decimal("0.001")).quantize(Decimal("1E-10")),
                "fee_currency": quote,
                "trade_id": f"T{i}",
                "source": "bench",
                "total_usd": cost if quote != "BTC" else cost * 60000,
            }
        )
    return rows


def build(ledger: Ledger, n_trades: int, snapshots: bool = True) -> None:
    """Fill the ledger: n trades over the year up to NOW, snapshots, prices, orders."""
    first = (NOW - timedelta(days=365)).replace(tzinfo=None)
    step = timedelta(days=365) / n_trades
    for start in range(0, n_trades, CHUNK):
        ledger.append("trades", _trades(start, min(CHUNK, n_trades - start), first, step))
        print(f"  {start + CHUNK:>9,} trades", file=sys.stderr)
    snaps, prices = [], []
    for day in range(0, 365, 1):
        ts = first + timedelta(days=day)
        for asset, px in (("BTC", "60000"), ("ETH", "3000"), ("SOL", "150")):
            prices.append(
                {
                    "timestamp": ts,
                    "asset": asset,
                    "quote": "USD",
                    "price": Decimal(px),
                    "source": "bench",
                }
            )
        # A snapshot a week on each exchange (the latest one is what holdings start from).
        if snapshots and day % 7 == 0:
            for ex in EXCHANGES:
                for asset, total in (
                    ("USD", "500000"),
                    ("BTC", "2"),
                    ("ETH", "30"),
                    ("SOL", "100"),
                ):
                    snaps.append(
                        {
                            "timestamp": ts,
                            "exchange": ex,
                            "asset": asset,
                            "total": Decimal(total),
                            "free": Decimal(total),
                            "source": "bench",
                        }
                    )
    ledger.append("prices", prices)
    ledger.append("balance_snapshots", snaps)
    orders, events = [], []
    for i in range(2_000):
        ts = first + timedelta(minutes=i)
        ex = EXCHANGES[i % 3]
        orders.append(
            {
                "timestamp": ts,
                "client_order_id": f"c{i}",
                "exchange": ex,
                "symbol": "BTC/USD",
                "side": "buy",
                "type": "limit",
                "amount": Decimal("0.01"),
                "price": Decimal("50000"),
                "source": "bench",
                "live": False,
            }
        )
        events.append(
            {
                "timestamp": ts,
                "client_order_id": f"c{i}",
                "exchange": ex,
                "event": "sent",
                "status": "open",
            }
        )
        if i % 50:  # all but one in fifty end filled: 40 stay open
            events.append(
                {
                    "timestamp": ts,
                    "client_order_id": f"c{i}",
                    "exchange": ex,
                    "event": "filled",
                    "status": "closed",
                }
            )
    ledger.append("orders", orders)
    ledger.append("order_events", events)


def measure(ledger: Ledger, runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU (all threads) milliseconds of exposure + checks, per run."""
    risk = RiskConfig(max_daily_volume=Decimal("1E12"), max_position_size=Decimal("1E12"))
    prices = {"BTC": Decimal("61000"), "ETH": Decimal("3100"), "SOL": Decimal("155")}
    proposal = OrderProposal(
        "kraken",
        "BTC/USD",
        "BTC",
        "USD",
        "buy",
        "market",
        Decimal("0.01"),
        Decimal("61000"),
        fee_rate=Decimal("0.0026"),
    )
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        exposure = build_exposure(
            ledger, prices, NOW, "America/New_York", {"USD": Decimal("100000")}
        )
        results = check_order(proposal, exposure, risk)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        assert results and exposure.open_orders == 40, exposure.open_orders
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--keep", type=Path, help="reuse/keep the ledger in this folder")
    ap.add_argument(
        "--no-snapshots",
        action="store_true",
        help="worst case: no balance snapshots, so holdings sum every trade",
    )
    ap.add_argument("--check", action="store_true", help="time `vhc kill-switch --check`")
    args = ap.parse_args()
    print(ensure_bytecode())
    folder = args.keep or Path(tempfile.mkdtemp(prefix="vhc-bench-risk-"))
    path = folder / "bench.duckdb"
    if args.check:
        from ccxtkit.workspace import init_workspace

        home = folder / "ws"
        if not home.exists():
            init_workspace(home)
        path = home / "ledger" / "vhc.duckdb"
    with open_ledger(path) as ledger:
        if not ledger.query("SELECT count(*) FROM trades")[0][0]:
            t0 = time.perf_counter()
            build(ledger, args.trades, snapshots=not args.no_snapshots)
            print(
                f"built {args.trades:,} trades in {time.perf_counter() - t0:.1f} s", file=sys.stderr
            )
        n = ledger.query("SELECT count(*) FROM trades")[0][0]
        if not args.check:
            measure(ledger, 3)  # warm DuckDB's caches, as a long-lived ledger file would be
            wall, cpu = measure(ledger, args.runs)
    if args.check:
        check_process(path.parent.parent, n, args.runs)
    else:
        report(wall, cpu, n, args)
    if not args.keep:
        import shutil

        shutil.rmtree(folder)


def check_process(home: Path, n: int, runs: int) -> None:
    """Time the whole `vhc kill-switch --check` process, as cron runs it."""
    vhc = str(Path(sys.executable).with_name("vhc"))
    command = [vhc, "--home", str(home), "kill-switch", "--check"]
    wall, cpu = [], []
    for i in range(runs + 2):
        before = os.times()
        t0 = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed = (time.perf_counter() - t0) * 1000
        after = os.times()
        assert done.returncode == 0, done.stderr
        if i >= 2:  # two warm-up runs: the OS page cache holds the file, as every minute
            wall.append(elapsed)
            cpu.append((after.children_user + after.children_system) * 1000
                       - (before.children_user + before.children_system) * 1000)  # fmt: skip
    times = sorted(wall)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(
        f"vhc kill-switch --check, whole process, {n:,} trades, {runs} runs: "
        f"median {statistics.median(times):.0f} ms, p95 {p95:.0f} ms, max {times[-1]:.0f} ms; "
        f"CPU median {statistics.median(cpu):.0f} ms "
        f"(nproc {os.cpu_count()}, load {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()})"
    )


def report(wall: list[float], cpu: list[float], n: int, args: argparse.Namespace) -> None:
    """Print the exposure + checks figures."""
    times = sorted(wall)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    load = os.getloadavg()[0]
    print(
        f"risk exposure+checks, {n:,} trades{' (no snapshots)' if args.no_snapshots else ''}, "
        f"{args.runs} runs: "
        f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms; "
        f"CPU median {statistics.median(cpu):.1f} ms "
        f"(nproc {os.cpu_count()}, load {load:.1f}, Python {platform.python_version()})"
    )


if __name__ == "__main__":
    main()
