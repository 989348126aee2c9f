"""Exchange calls per market order, per exchange protocol, through the whole `vhc trade`.

Usage: python bench/bench_calls.py [--orders N]

Starts each local protocol server from `tests/` (unmodified ccxt talks to it over HTTP), runs
one warm-up `vhc trade buy` (it loads and caches the market lists), then N more market orders
(alternating buy and sell) and prints the calls each order made, as the server saw them.
Target (issue 18): at most 5 calls per market order on Kraken.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.binanceus_server import BinanceUSServer  # noqa: E402
from tests.kraken_server import KrakenServer  # noqa: E402

from ccxtkit.workspace import init_workspace, write_private  # noqa: E402

SERVERS: dict[str, Any] = {"kraken": KrakenServer, "binanceus": BinanceUSServer}
try:  # the Coinbase Advanced Trade server, where this tree has it
    from tests.coinbase_server import CoinbaseServer  # noqa: E402

    SERVERS["coinbase"] = CoinbaseServer
except ImportError:
    pass


def _workspace(name: str, server: Any) -> tuple[Path, dict[str, str]]:
    home = Path(tempfile.mkdtemp(prefix=f"vhc-calls-{name}-")) / "ws"
    init_workspace(home)
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    account = {"secrets": "env", "rate_limit": 1000, "ccxt": server.ccxt_config()}
    data["exchanges"][name] = account
    write_private(path, yaml.safe_dump(data))
    creds = server.credentials()
    env = {**os.environ, f"{name.upper()}_API_KEY": creds["apiKey"]}
    env[f"{name.upper()}_API_SECRET"] = creds["secret"]
    return home, env


def _trade(home: Path, env: dict[str, str], name: str, side: str, symbol: str) -> None:
    cmd = [sys.executable, "-m", "ccxtkit", "--home", str(home), "-q", "trade", side, symbol]
    cmd += ["0.01", "--exchange", name, "--yes"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{name}: vhc trade {side} failed: {done.stderr.strip()}")


def calls_per_order(name: str, orders: int) -> list[list[str]]:
    """The request paths of each of `orders` market orders after a warm-up one."""
    with SERVERS[name]() as server:
        server.set_balance("USD", "1000000")
        home, env = _workspace(name, server)
        symbol = "BTC/USD"
        _trade(home, env, name, "buy", symbol)
        out = []
        for i in range(orders):
            start = len(server.requests)
            _trade(home, env, name, "buy" if i % 2 == 0 else "sell", symbol)
            out.append([r.path.rsplit("/", 1)[-1] or r.path for r in server.requests[start:]])
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=4)
    args = ap.parse_args()
    print("| exchange | calls per market order (min-max) | the calls (one order) |")
    print("|---|---|---|")
    for name in SERVERS:
        per = calls_per_order(name, args.orders)
        counts = [len(p) for p in per]
        common = Counter(tuple(p) for p in per).most_common(1)[0][0]
        print(f"| {name} | {min(counts)}-{max(counts)} | {', '.join(common)} |")


if __name__ == "__main__":
    main()
