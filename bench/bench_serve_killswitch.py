"""Kill-switch activation through a warm `vhc serve`: 3 accounts x 50 open orders, 100 ms/call.

Starts a real `vhc serve` on a workspace with three paper accounts (`paper.latency_ms: 100`),
or two paper accounts and one on the local Kraken-protocol server (real ccxt over HTTP,
`latency = 0.1`), rests 50 limit orders on each, lets the server warm up (one status call, and
on the Kraken set-up one `GET /executions/orders`, which loads ccxt in the server), then times
`POST /api/v1/risk/killswitch/enable` from request to answer. The answer comes after the
sweep: every account's orders cancelled and confirmed, the activation recorded.

Target (issue 18): activation through `vhc serve` answers in <= 300 ms.

Usage: python bench/bench_serve_killswitch.py [--runs R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_killswitch import bench_accounts, place  # noqa: E402
from tests.kraken_server import KrakenServer  # noqa: E402
from tests.serve_process import JWT_KEY, ServeProcess  # noqa: E402

from ccxtkit.serve.tokens import create_token  # noqa: E402
from ccxtkit.workspace import Workspace, init_workspace, write_private  # noqa: E402

ORDERS, LATENCY_MS = 50, 100


def write_config(home: Path, accounts: dict) -> Workspace:
    cfg = {"version": "1.0", "exchanges": accounts, "secrets": {"backend": "env"}}
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    return Workspace.locate(str(home))


def one_run(server: KrakenServer | None) -> tuple[float, int]:
    """Rest 3 x 50 orders, activate through serve; (seconds to the answer, orders cancelled)."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "ws"
        init_workspace(home)
        names, accounts = bench_accounts(server)
        ws = write_config(home, accounts)
        for name in accounts:
            place(ws, name)
        for n in names:
            accounts[n] = {"id": "paper", "paper": {"latency_ms": LATENCY_MS}}
        ws = write_config(home, accounts)
        token = create_token(ws, "bench", "trader", timedelta(hours=1)).token
        with ServeProcess(home) as srv:
            assert srv.call("GET", "/risk/killswitch/status", token=token).status == 200
            if server is not None:
                srv.call("GET", "/executions/orders", token=token)  # ccxt loaded in the server
                server.latency = LATENCY_MS / 1000
            try:
                start = time.perf_counter()
                answer = srv.call(
                    "POST", "/risk/killswitch/enable", {"reason": "bench"}, token=token
                )
                seconds = time.perf_counter() - start
            finally:
                if server is not None:
                    server.latency = 0.0
            assert answer.status == 200, answer
            accounts_done = answer.json["data"]["accounts"] if "data" in answer.json else []
            cancelled = sum(len(a.get("canceled", [])) for a in accounts_done)
        return seconds, cancelled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ["VHC_SERVE_JWT_KEY"] = JWT_KEY
    print(f"3 accounts x {ORDERS} open orders, {LATENCY_MS} ms per exchange call, warm serve")
    with KrakenServer() as kraken:
        creds = kraken.credentials()
        os.environ["KRAKEN_API_KEY"], os.environ["KRAKEN_API_SECRET"] = (
            creds["apiKey"],
            creds["secret"],
        )
        for label, server in (("3 paper", None), ("2 paper + Kraken server", kraken)):
            runs = [one_run(server) for _ in range(args.runs)]
            times = [s for s, _ in runs]
            print(
                f"{label:26s} POST /risk/killswitch/enable  median {statistics.median(times):.3f} s "
                f"(min {min(times):.3f}, max {max(times):.3f}; {runs[-1][1]} cancelled)"
            )


if __name__ == "__main__":
    main()
