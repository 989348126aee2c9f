"""Benchmark: a year-end tax report over N trades (default 1,000,000), and rp2 on the same history.

    python bench/bench_tax.py [--trades 1000000] [--rp2 2000,5000,10000] [--dir DIR]

The ledger is built once per size in DIR (reused on later runs). The report runs in a child
process so its peak memory (ru_maxrss) is its own. rp2 is driven through its Python API (the
objects its ODS parser would build) on the first K trades of the same history, FIFO, universal.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
Q8 = Decimal("0.00000001")
EXCHANGES = ("kraken", "coinbase")


def history(n: int, seed: int = 7) -> Iterator[tuple[str, dict[str, Any]]]:
    """n trades from 2022 to 2025 on two accounts; ETH/BTC trades come with a BTC price row."""
    rng = random.Random(seed)
    t = datetime(2022, 1, 1)
    step = timedelta(seconds=int(4 * 365 * 86400 / n) or 1)
    px = {"BTC": Decimal(40000), "ETH": Decimal(3000)}
    hold: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    made = 0
    while made < n:
        t += step
        for a, level in (("BTC", 40000), ("ETH", 3000)):
            # cycles and noise around a level: gains and losses, never a runaway walk
            wave = 1 + 0.5 * math.sin(t.timestamp() / 9e6 + (a == "ETH")) + rng.uniform(-0.01, 0.01)
            px[a] = Decimal(level * wave).quantize(Decimal("0.01"))
        ex = rng.choice(EXCHANGES)
        roll = rng.random()
        sym = "BTC/USD" if roll < 0.45 else ("ETH/USD" if roll < 0.9 else "ETH/BTC")
        base, quote = sym.split("/")
        price = px[base] if quote == "USD" else (px["ETH"] / px["BTC"]).quantize(Decimal("1E-6"))
        if hold[ex, base] > Decimal("0.001") and rng.random() < 0.48:
            side = "sell"
            amt = (hold[ex, base] * Decimal(rng.uniform(0.05, 0.6))).quantize(Q8)
        else:
            side, amt = "buy", Decimal(rng.randint(1000, 200000)) * Q8 * 10
        cost = amt * price
        fee = (cost * Decimal("0.0026")).quantize(Decimal("0.01") if quote == "USD" else Q8)
        if amt <= 0 or (quote == "BTC" and side == "buy" and hold[ex, "BTC"] < cost + fee):
            continue
        if quote == "BTC":
            hold[ex, "BTC"] += (cost - fee) if side == "sell" else -(cost + fee)
            yield "prices", dict(timestamp=t, asset="BTC", quote="USD", price=px["BTC"],
                                 source="bench")  # fmt: skip
        hold[ex, base] += amt if side == "buy" else -amt
        made += 1
        yield "trades", dict(timestamp=t, exchange=ex, symbol=sym, asset=base, quote=quote,
                             side=side, amount=amt, price=price, cost=cost, fee=fee,
                             fee_currency=quote, trade_id=f"B{made}", source="bench")  # fmt: skip


def build(home: Path, n: int) -> None:
    """A workspace whose ledger holds the n-trade history (skipped when already built)."""
    from ccxtkit.workspace import Workspace, init_workspace

    if (home / "built").exists():
        return
    if not (home / "config").exists():
        init_workspace(home)
    ws = Workspace.locate(str(home))
    started = time.perf_counter()
    chunk: dict[str, list[dict[str, Any]]] = {"trades": [], "prices": []}
    with ws.open_ledger() as ledger:
        for table, row in history(n):
            chunk[table].append(row)
            if len(chunk["trades"]) >= 100_000:
                for name, rows in chunk.items():
                    ledger.append(name, rows)
                    rows.clear()
        for name, rows in chunk.items():
            ledger.append(name, rows)
    (home / "built").write_text("ok")
    print(f"built ledger of {n:,} trades in {time.perf_counter() - started:.1f} s")


REPORT_CHILD = """
import json, sys, time, resource
from pathlib import Path
from ccxtkit.workspace import Workspace
from ccxtkit.tax.report import tax_report
ws = Workspace.locate(sys.argv[1])
t0, c0 = time.perf_counter(), time.process_time()
r = tax_report(ws, 2025, None, Path(sys.argv[2]))
elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": elapsed, "cpu": cpu, "peak_mb": rss, "rows": len(r.rows),
                  "short_gain": str(r.schedule.short_term.gain),
                  "long_gain": str(r.schedule.long_term.gain)}))
"""


def run_report(home: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", REPORT_CHILD, str(home), str(home / "reports" / "bench.csv")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_rp2(k: int) -> float:
    """Seconds rp2 takes for the first k trades of the same history (FIFO, universal)."""
    import tests.test_tax_rp2 as diff

    class Factory:
        def mktemp(self, name: str) -> Path:
            return Path(tempfile.mkdtemp(prefix=name))

    rp2 = diff.rp2.__wrapped__(Factory())  # type: ignore[attr-defined]
    hist: dict[str, list[dict[str, Any]]] = {"trades": [], "transfers": [], "prices": []}
    for table, row in history(k):
        hist[table].append(row)
    started = time.perf_counter()
    diff.rp2_totals(rp2, hist, "fifo", False, Path(tempfile.mkdtemp()))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--rp2", default="2000,5000,10000,20000")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "vhc-bench-tax")
    args = parser.parse_args()
    home = args.dir / str(args.trades)
    build(home, args.trades)
    r = run_report(home)
    print(
        f"vhc tax-report 2025 over {args.trades:,} trades: {r['seconds']:.1f} s wall "
        f"({r['cpu']:.1f} s CPU; load average {os.getloadavg()[0]:.1f}), "
        f"peak {r['peak_mb']:.0f} MB, {r['rows']:,} Form 8949 rows "
        f"(short gain {r['short_gain']}, long gain {r['long_gain']})"
    )
    for k in [int(x) for x in args.rp2.split(",") if x]:
        secs = run_rp2(k)
        print(f"rp2 (FIFO, universal) over {k:,} trades: {secs:.1f} s "
              f"({secs / k * 1e6:.0f} us/trade)")  # fmt: skip


if __name__ == "__main__":
    main()
