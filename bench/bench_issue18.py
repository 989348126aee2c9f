"""Issue 18's figures in one run, one section after another: the paths that must be fast.

Usage: python bench/bench_issue18.py [--rows N] [--runs R]

1. the kill switch, 3 accounts x 50 open orders at 100 ms per call: core `activate()` and the
   whole `vhc kill-switch --activate` process, on paper and with the Kraken-protocol server
   (`bench_killswitch.py`);
2. exchange calls per market order, per exchange protocol server (`bench_calls.py`);
3. vhc's own time per order on a ledger of N trades, default 1,000,000 (`bench_trade.py`);
4. `vhc --help` against a bare Typer app, and `kill-switch --check` (`bench_startup.py`);
5. the kill switch through a warm `vhc serve`, request to answer (`bench_serve_killswitch.py`).

The machine's speed (`machine.py`'s reference loop) is printed before and after.

Each section is its own process, so one's imports and caches never flatter another's figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from machine import describe

HERE = Path(__file__).resolve().parent


def section(title: str, script: str, *args: str) -> None:
    """Run one benchmark script and print its output under a heading."""
    print(f"\n## {title}\n", flush=True)
    start = time.monotonic()
    subprocess.run([sys.executable, str(HERE / script), *args], check=True)
    print(f"({script} took {time.monotonic() - start:.0f} s)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="ledger size for section 3")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(
        f"# issue 18 figures: nproc {os.cpu_count()}, load {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}"
    )
    print(describe(), flush=True)
    section("Kill switch, 3 x 50 orders, 100 ms per call", "bench_killswitch.py",
            "--runs", str(args.runs))  # fmt: skip
    section("Exchange calls per market order", "bench_calls.py", "--orders", "4")
    section(f"vhc's own time per order, {args.rows:,}-trade ledger", "bench_trade.py",
            str(args.rows), "20")  # fmt: skip
    section("Start-up: vhc --help and kill-switch --check", "bench_startup.py",
            "--runs", str(max(args.runs, 5)))  # fmt: skip
    section("Kill switch through a warm vhc serve", "bench_serve_killswitch.py",
            "--runs", str(args.runs))  # fmt: skip
    print(f"\n{describe()}")


if __name__ == "__main__":
    main()
