"""Time reconcile's local work: 100,000 ledger trades against 100,000 exchange trades.

Usage: python bench/bench_reconcile.py [--trades N] [--runs R]

Builds a ledger of N trades on one account (`Ledger.append` through Arrow) and the same N
fills as the exchange would report them (vhc's `Trade` dataclasses), with 100 missing, 100
phantom and 100 mismatched. Then times what `vhc reconcile` does once the exchange has
answered: one ledger session that reads the account's trades and transfers for the range,
sums the ledger balances, matches the movements and asserts the balances. Exchange I/O is
excluded. Memory is the peak RSS (ru_maxrss) of the process holding the exchange's 100,000
trades and running the reconcile (the ledger is built in a separate process).
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import random
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ccxtkit.exchanges.base import Trade
from ccxtkit.ledger.store import open_ledger
from ccxtkit.reconcile.balances import Inventory, ledger_balances
from ccxtkit.reconcile.service import AccountRead, _account_ledger_work
from ccxtkit.trading.recording import trade_row

SINCE = datetime(2025, 1, 1, tzinfo=UTC)
UNTIL = datetime(2025, 2, 1, tzinfo=UTC)
SKEW = 100  # missing, phantom and mismatched trades each


def exchange_trades(n: int) -> list[Trade]:
    rng = random.Random(7)
    step = (UNTIL - SINCE) / (n + 1)
    out = []
    for i in range(n):
        amount = Decimal(rng.randint(1, 10_000)) / 10_000
        price = Decimal(60000) + Decimal(rng.randint(-5000, 5000)) / 10
        cost = amount * price
        out.append(Trade(f"T{i:07d}", f"O{i:07d}", "BTC/USD", "buy" if i % 2 else "sell",
                         amount, price, cost, (cost * Decimal("0.0026")).quantize(Decimal("1e-8")),
                         "USD", SINCE + step * (i + 1)))  # fmt: skip
    return out


def build(path: Path, n: int) -> None:
    """Write the ledger side: the exchange's trades with the skew applied."""
    trades = exchange_trades(n)
    ledger_side = trades[SKEW:]  # the first SKEW are missing from the ledger
    ledger_side = [
        replace(t, price=t.price + 1) if i < SKEW else t for i, t in enumerate(ledger_side)
    ]
    phantoms = [replace(t, id=f"GHOST{i}") for i, t in enumerate(trades[-SKEW:])]
    with open_ledger(path) as ledger:
        rows = [trade_row("kraken", t, "trade") for t in ledger_side + phantoms]
        for i in range(0, len(rows), 100_000):
            ledger.append("trades", rows[i : i + 100_000])
        ledger.append("transfers", [{"timestamp": SINCE - timedelta(days=1), "exchange": "kraken",
                                     "kind": "opening_balance", "asset": "USD",
                                     "amount": Decimal(10**9), "source": "bench"}])  # fmt: skip


def once(path: Path, read: AccountRead) -> tuple[float, int]:
    start = time.perf_counter()
    with open_ledger(path) as ledger:
        local_all = ledger_balances(ledger, ["kraken"])
        local = {a: v for (ex, a), v in local_all.items() if ex == "kraken"}
        result = _account_ledger_work(
            ledger, read, local, Inventory({"USD", "BTC"}, True), False, Decimal("0.01")
        )
    return time.perf_counter() - start, len(result.findings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vhc.duckdb"
        t0 = time.perf_counter()
        # Built in another process, so the peak RSS below is reconcile's, not the builder's.
        builder = multiprocessing.get_context("spawn").Process(
            target=build, args=(path, args.trades)
        )
        builder.start()
        builder.join()
        trades = exchange_trades(args.trades)
        print(f"built {args.trades:,} ledger trades in {time.perf_counter() - t0:.1f} s")
        read = AccountRead("kraken", SINCE, UNTIL, balances={"USD": Decimal(10**9), "BTC": Decimal(0)},
                           trades=trades, prices={"BTC": Decimal(60000)})  # fmt: skip
        times = []
        found = 0
        for _ in range(args.runs):
            elapsed, found = once(path, read)
            times.append(elapsed)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"findings per run: {found} (expected {3 * SKEW})")
        print(f"reconcile compute: median {statistics.median(times):.2f} s, max {max(times):.2f} s "
              f"over {args.runs} runs; peak RSS {peak_mb:.0f} MB")  # fmt: skip
        print(f"Python {platform.python_version()} on {platform.machine()}, {sys.platform}")


if __name__ == "__main__":
    main()
