"""Kill-switch activation time: 3 accounts x 50 open orders, 100 ms simulated latency per call.

Two set-ups: three paper accounts (`paper.latency_ms: 100`), and two paper accounts plus one
account on the local Kraken-protocol server (real ccxt over HTTP, `latency = 0.1`). Reports the
time of `killswitch.activate` (state write, concurrent sweep, ledger event) and of the whole
`vhc kill-switch --activate` process. Target: under 1 s.

    python bench/bench_killswitch.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from tests.kraken_server import KrakenServer  # noqa: E402

from ccxtkit.exchanges.factory import open_exchange  # noqa: E402
from ccxtkit.risk import killswitch  # noqa: E402
from ccxtkit.secrets import resolve_credentials  # noqa: E402
from ccxtkit.workspace import Workspace, write_private  # noqa: E402

from vhc_bytecode import ensure_bytecode  # noqa: E402

ORDERS = 50
BLOCKED: list[float] = []  # seconds from launching `vhc` until the state file says active
LATENCY_MS = 100


def workspace(home: Path, accounts: dict) -> Workspace:
    cfg = {"exchanges": accounts, "secrets": {"backend": "env"}}
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    return Workspace.locate(str(home))


def place(ws: Workspace, name: str) -> None:
    client = open_exchange(ws, name, resolve_credentials(ws, name))
    for _ in range(ORDERS):
        cid = "b" + uuid.uuid4().hex[:16]
        client.create_order("BTC/USD", "buy", "limit", Decimal("0.001"), Decimal("1000"), cid)
    client.close()


def bench_accounts(server: KrakenServer | None) -> tuple[list[str], dict]:
    """Three paper accounts, or two and one on the Kraken server (emptied, funded)."""
    names = ["paper1", "paper2", "paper3"] if server is None else ["paper1", "paper2"]
    plain: dict = {n: {"id": "paper"} for n in names}
    if server is not None:
        server.orders.clear()
        server.set_balance("USD", "10000000")
        plain["kraken"] = {
            "secrets": "env",
            "rate_limit": 1000,
            "ccxt": {**server.ccxt_config(), "timeout": 10000},
        }
    return names, plain


def one_run(server: KrakenServer | None, via_cli: bool) -> tuple[float, int]:
    """Set up 3 x 50 resting orders, activate, return (seconds, orders cancelled)."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        names, plain = bench_accounts(server)
        ws = workspace(home, plain)
        for name in plain:
            place(ws, name)
        slow = {n: {"id": "paper", "paper": {"latency_ms": LATENCY_MS}} for n in names}
        if server is not None:
            slow["kraken"] = plain["kraken"]
            server.latency = LATENCY_MS / 1000
        ws = workspace(home, slow)
        try:
            if via_cli:
                started = time.perf_counter()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "ccxtkit", "--home", str(home), "kill-switch",
                     "--activate", "--reason", "bench"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy(),
                )  # fmt: skip
                # The state file only: `is_active` would open the ledger every poll and hold
                # its lock against the very process being timed.
                while not killswitch.read_state(ws).active and proc.poll() is None:
                    time.sleep(0.02)  # light polling: the Kraken server shares this process
                BLOCKED.append(time.perf_counter() - started)
                assert proc.wait() == 0
                seconds = time.perf_counter() - started
                state = killswitch.read_state(ws)
                accounts = state.last_activation["accounts"].values()
                cancelled = sum(len(a["canceled"]) for a in accounts)
            else:
                result = killswitch.activate(ws, "bench")
                seconds = result.seconds
                assert result.ok, [a.errors for a in result.accounts]
                cancelled = sum(len(a.cancelled) for a in result.accounts)
        finally:
            if server is not None:
                server.latency = 0.0
        return seconds, cancelled


def main() -> None:
    import logging

    logging.getLogger("vhc").addHandler(logging.NullHandler())  # alerts log; keep the table clean
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(ensure_bytecode())
    with KrakenServer() as server:
        os.environ["KRAKEN_API_KEY"] = server.api_key
        os.environ["KRAKEN_API_SECRET"] = server.api_secret
        print(f"3 accounts x {ORDERS} open orders, {LATENCY_MS} ms per exchange call")
        for label, srv in (("3 paper", None), ("2 paper + Kraken server (ccxt)", server)):
            for via_cli in (False, True):
                runs = [one_run(srv, via_cli) for _ in range(args.runs)]
                times = [r[0] for r in runs]
                assert all(r[1] == 3 * ORDERS for r in runs), runs
                what = "vhc process" if via_cli else "activate()"
                blocked = (
                    f"; orders blocked after {statistics.median(BLOCKED):.3f} s" if via_cli else ""
                )
                BLOCKED.clear()
                print(
                    f"{label:32s} {what:12s} median {statistics.median(times):.3f} s "
                    f"(min {min(times):.3f}, max {max(times):.3f}; {3 * ORDERS} cancelled{blocked})"
                )


if __name__ == "__main__":
    main()
