"""`vhc ledger sync` of 100,000 fills from the local Kraken-protocol server, 50 ms per page.

The server holds N fills spread over 2024 (each with its two `Ledgers` lines, as Kraken keeps
them) and answers every request after `latency` seconds. The real `vhc ledger sync` runs as a
subprocess against it with unmodified ccxt: Kraken's 50-row pages of TradesHistory, and of
Ledgers (where fees show their real currency). Reported: pages, pages per second, the wall
time, the part spent waiting on the server (pages x latency), the time inside vhc (the rest),
vhc's CPU time, and its own split between reading (gateway + ccxt parsing + waiting) and
writing (ledger transactions). Then a re-run (nothing to add) is timed too.

    python bench/bench_sync.py [--fills 100000] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import bisect
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from tests.kraken_server import PAGE, KrakenServer  # noqa: E402

from ccxtkit.workspace import init_workspace, write_private  # noqa: E402

START = datetime(2024, 1, 1, tzinfo=UTC).timestamp()
YEAR = 366 * 86400


class IndexedKrakenServer(KrakenServer):
    """The same protocol; history pages found by bisecting time-ordered lists (100k rows)."""

    def _window(self, times: list[float], p: dict[str, str]) -> tuple[int, int]:
        lo = bisect.bisect_right(times, float(p["start"])) if p.get("start") else 0
        hi = bisect.bisect_right(times, float(p["end"])) if p.get("end") else len(times)
        return lo, hi

    def _newest_first(self, rows: list[Any], lo: int, hi: int, p: dict[str, str]) -> list[Any]:
        ofs = int(p.get("ofs") or 0)
        top = hi - ofs
        return rows[max(lo, top - PAGE) : max(lo, top)][::-1]

    def _private_TradesHistory(self, p: dict[str, str]) -> Any:  # noqa: N802
        lo, hi = self._window(self._trade_times, p)
        page = self._newest_first(self.trades, lo, hi, p)
        return {"trades": {t.txid: self._trade_json(t) for t in page}, "count": hi - lo}

    def _private_Ledgers(self, p: dict[str, str]) -> Any:  # noqa: N802
        if p.get("asset") or p.get("type", "all") != "all":
            return super()._private_Ledgers(p)
        lo, hi = self._window(self._ledger_times, p)
        page = self._newest_first(self.ledger, lo, hi, p)
        return {"ledger": {e["id"]: {k: v for k, v in e.items() if k != "id"} for e in page},
                "count": hi - lo}  # fmt: skip

    def build(self, fills: int) -> None:
        now = {"t": START}
        self.clock = lambda: now["t"]
        self.set_balance("USD", "1000000000")
        done = []
        with self._lock:
            for i in range(fills):
                now["t"] = START + YEAR * i / fills
                self._private_AddOrder({"pair": "XBTUSD", "type": "buy", "ordertype": "market",
                                        "volume": "0.001"})  # fmt: skip
                done += self.orders  # filled at once; the open-order scans stay O(1)
                self.orders.clear()
            self.orders = done
        self._trade_times = [t.time for t in self.trades]
        self._ledger_times = [e["time"] for e in self.ledger]
        self.clock = time.time
        self.requests.clear()


def run_sync(home: Path, env: dict[str, str]) -> tuple[float, float, dict[str, Any]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("vhc")), "--home", str(home), "--json", "ledger",
         "sync", "--exchange", "kraken", "--since", "2024-01-01"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"vhc ledger sync failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, cpu, json.loads(proc.stdout)


print = functools.partial(print, flush=True)  # noqa: A001 - progress lines as they come


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fills", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    server = IndexedKrakenServer()
    t0 = time.perf_counter()
    server.build(args.fills)
    print(f"server: {args.fills} fills, {len(server.ledger)} ledger lines "
          f"({time.perf_counter() - t0:.1f} s to build)")  # fmt: skip
    with server, tempfile.TemporaryDirectory(prefix="vhc-bench-sync-") as tmp:
        home = Path(tmp) / "ws"
        init_workspace(home)
        cfg_path = home / "config" / "trading_config.yaml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["exchanges"]["kraken"] = {"secrets": "env", "rate_limit": 1000,
                                      "ccxt": {**server.ccxt_config(), "timeout": 30000}}  # fmt: skip
        write_private(cfg_path, yaml.safe_dump(cfg))
        creds = server.credentials()
        env = {**os.environ, "KRAKEN_API_KEY": creds["apiKey"],
               "KRAKEN_API_SECRET": creds["secret"]}  # fmt: skip
        server.latency = args.latency
        for label in ("first sync", "re-run"):
            server.requests.clear()
            wall, cpu, doc = run_sync(home, env)
            pages = len(server.requests)
            waiting = pages * args.latency
            print(
                f"{label}: added {doc['added']}, {doc['batches']} batches, {pages} requests "
                f"({doc['pages']} history pages), wall {wall:.1f} s, {pages / wall:.1f} pages/s, "
                f"waiting on the server {waiting:.1f} s, inside vhc {wall - waiting:.1f} s, "
                f"vhc CPU {cpu:.1f} s (reading {doc['fetch_seconds']:.1f} s, "
                f"writing {doc['write_seconds']:.1f} s)"
            )


if __name__ == "__main__":
    main()
