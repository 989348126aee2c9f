"""How long a `vhc trade` spends in vhc itself on a ledger of 1,000,000 trades.

Places market orders on the paper exchange through the real order flow (`place_order`) and
subtracts the time spent inside exchange-client calls, which a timing proxy measures: what is
left is vhc's own work (ledger opens, recovery scan, exposure + risk checks, intent and
outcome writes). Target: risk checks under 50 ms; the whole of vhc's share reported too.

Usage: python bench/bench_trade.py [ROWS] [ORDERS] [WORKSPACE]
(WORKSPACE: built there on the first run and reused by later ones, to compare code A/B.)
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from machine import describe

from ccxtkit.exchanges.base import ExchangeClient
from ccxtkit.trading import orders
from ccxtkit.trading.orders import OrderRequest, place_order
from ccxtkit.workspace import Workspace, init_workspace


class TimedClient:
    """Forwards every call to the real client and adds up the time spent in it."""

    def __init__(self, inner: ExchangeClient) -> None:
        self._inner = inner
        self.seconds = 0.0
        self.cpu_seconds = 0.0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.cpu_seconds += time.process_time() - cpu

        return timed


def build_ledger(ws: Workspace, rows: int) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    chunk = 100_000
    with ws.open_ledger() as ledger:
        for first in range(0, rows, chunk):
            batch = []
            for i in range(first, min(rows, first + chunk)):
                price = Decimal(50000 + i % 1000)
                amount = Decimal("0.001")
                batch.append(
                    {
                        "timestamp": start + timedelta(seconds=i * 30),
                        "exchange": "paper",
                        "symbol": "BTC/USD",
                        "asset": "BTC",
                        "quote": "USD",
                        "side": "buy" if i % 2 == 0 else "sell",
                        "amount": amount,
                        "price": price,
                        "cost": amount * price,
                        "fee": Decimal("0.05"),
                        "fee_currency": "USD",
                        "trade_id": f"B-{i}",
                        "source": "bench",
                        "total_usd": amount * price,
                    }
                )
            ledger.append("trades", batch)


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    n_orders = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    if len(sys.argv) > 3:
        home = Path(sys.argv[3])
    else:
        home = Path(tempfile.mkdtemp(prefix="vhc-bench-trade-")) / "ws"
    if not (home / "config").exists():
        init_workspace(home)
        t0 = time.perf_counter()
        build_ledger(Workspace.locate(str(home)), rows)
        print(f"ledger of {rows:,} trades built in {time.perf_counter() - t0:.1f} s")
    ws = Workspace.locate(str(home))

    proxies: list[TimedClient] = []
    real_connect = orders.connect

    def timed_connect(ws: Workspace, name: str) -> ExchangeClient:
        proxy = TimedClient(real_connect(ws, name))
        proxies.append(proxy)
        return proxy  # type: ignore[return-value]

    orders.connect = timed_connect  # type: ignore[assignment]
    own_ms, total_ms, own_cpu_ms = [], [], []
    for i in range(n_orders):
        request = OrderRequest(
            "paper", "BTC/USD", "buy" if i % 2 == 0 else "sell", Decimal("0.001")
        )
        if i % 2:
            request = OrderRequest("paper", "BTC/USD", "sell", Decimal("0.001"))
        start, cpu = time.perf_counter(), time.process_time()
        place_order(ws, request)
        total = time.perf_counter() - start
        own_ms.append((total - proxies[-1].seconds) * 1000)
        own_cpu_ms.append((time.process_time() - cpu - proxies[-1].cpu_seconds) * 1000)
        total_ms.append(total * 1000)
    own_ms.sort()
    print(f"orders placed: {n_orders}; {describe()}")
    print(
        f"vhc's own time per trade: median {statistics.median(own_ms):.1f} ms, "
        f"p95 {own_ms[int(len(own_ms) * 0.95) - 1]:.1f} ms"
    )
    print(f"whole place_order incl. paper exchange: median {statistics.median(total_ms):.1f} ms")
    print(
        f"vhc's own CPU per trade (every thread, exchange calls' CPU left out): "
        f"median {statistics.median(own_cpu_ms):.1f} ms"
    )


if __name__ == "__main__":
    main()
