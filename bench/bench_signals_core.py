"""Signals in-process, without HTTP: accepted signals per second and queue-to-order latency.

A paper workspace with a `sheets` source (env secrets). Measures `intake.receive` of N signed
signals delivered by `--threads` concurrent callers (group-committed: each answer comes after
its batch's ledger commit), then
`worker.work_once` executing them on the paper exchange. The HTTP layer (`vhc serve`) adds
its own cost on top; its bench is `bench/bench_serve.py` if present.

    python bench/bench_signals_core.py [--signals 200]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from ccxtkit.signals.intake import receive  # noqa: E402
from ccxtkit.signals.worker import work_once  # noqa: E402
from ccxtkit.workspace import Workspace, init_workspace, write_private  # noqa: E402

KEY, SECRET = "bench-key-0123456789", "bench-secret-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--signals", type=int, default=200)
    parser.add_argument("--threads", type=int, default=16, help="concurrent deliveries")
    parser.add_argument("--latency-signals", type=int, default=20)
    parser.add_argument(
        "--no-keep",
        action="store_true",
        help="open the ledger afresh on every visit (as before ledger/keeper.py)",
    )
    args = parser.parse_args()
    os.environ["VHC_SIGNALS_SHEETS_KEY"] = KEY
    os.environ["VHC_SIGNALS_SHEETS_SECRET"] = SECRET
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "ws"
        init_workspace(home)
        path = home / "config" / "trading_config.yaml"
        data = yaml.safe_load(path.read_text())
        data["signals"] = {
            "sources": {"sheets": {"kind": "sheets", "exchange": "paper", "secrets": "env"}}
        }
        data["risk"]["max_daily_volume"] = 10**9
        write_private(path, yaml.safe_dump(data))
        ws = Workspace.locate(str(home))
        if not args.no_keep:
            from ccxtkit.ledger import keeper

            keeper.keep(ws.ledger_path)  # as `vhc serve` does
        cpu0 = _cpu()
        bodies = []
        for i in range(args.signals):
            body = json.dumps(
                {
                    "id": f"bench-{i}",
                    "timestamp": int(datetime.now(UTC).timestamp()),
                    "symbol": "BTC/USD",
                    "exchange": "paper",
                    "transactionType": "BUY" if i % 2 == 0 else "SELL",
                    "quantity": "0.001",
                    "orderType": "MARKET",
                }
            ).encode()
            sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            bodies.append((body, {"X-API-Key": KEY, "X-Signature": sig}))
        took: list[float] = []

        def deliver(item: tuple[bytes, dict[str, str]]) -> None:
            t0 = time.perf_counter()
            answer = receive(ws, "sheets", item[1], item[0])
            took.append(time.perf_counter() - t0)
            assert answer.status == 202, answer.body

        start = time.perf_counter()
        with ThreadPoolExecutor(args.threads) as pool:
            list(pool.map(deliver, bodies))
        intake_s = time.perf_counter() - start
        ms = sorted(t * 1000 for t in took)
        cpu1 = _cpu()
        print(f"intake: {args.signals} signals, {args.threads} at a time, in {intake_s:.2f} s = "
              f"{args.signals / intake_s:.0f}/s (CPU {cpu1 - cpu0:.2f} s); answer p50 "
              f"{statistics.median(ms):.1f} ms, p99 {ms[int(len(ms) * 0.99) - 1]:.1f} ms")  # fmt: skip
        start = time.perf_counter()
        done = 0
        while done < args.signals:
            batch = work_once(ws, limit=20)
            if not batch:
                break
            done += sum(1 for r in batch if r.status == "executed")
        work_s = time.perf_counter() - start
        cpu2 = _cpu()
        print(f"worker: {done} orders executed in {work_s:.2f} s = {done / work_s:.0f}/s "
              f"({work_s / max(done, 1) * 1000:.1f} ms per signal, one worker; CPU "
              f"{(cpu2 - cpu1) / max(done, 1) * 1000:.1f} ms per signal)")  # fmt: skip

        latency(ws, args.latency_signals)


def _cpu() -> float:
    """This process's CPU seconds (user + sys, every thread)."""
    import resource

    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def latency(ws: Workspace, count: int) -> None:
    """Webhook to order sent: signals one at a time, `signals.workers` workers running."""
    import threading

    from ccxtkit.signals.worker import run_worker, worker_count

    stop = threading.Event()
    threads = [
        threading.Thread(target=run_worker, args=(ws, stop), daemon=True)
        for _ in range(worker_count(ws))
    ]
    for t in threads:
        t.start()
    for i in range(count):
        body = json.dumps(
            {"id": f"lat-{i}", "timestamp": int(datetime.now(UTC).timestamp()),
             "symbol": "BTC/USD", "exchange": "paper", "transactionType": "BUY",
             "quantity": "0.001", "orderType": "MARKET"}
        ).encode()  # fmt: skip
        sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert receive(ws, "sheets", {"X-API-Key": KEY, "X-Signature": sig}, body).status == 202
        time.sleep(0.5)
    deadline = time.monotonic() + 120
    sql = (
        "SELECT s.timestamp, min(e.timestamp) FROM signals s JOIN signal_events e "
        "USING (signal_id) WHERE e.event = 'sent' AND s.external_id LIKE 'lat-%' GROUP BY 1"
    )
    while time.monotonic() < deadline:
        with ws.open_ledger() as ledger:
            found = ledger.query(sql)
        if len(found) == count:
            break
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    ms = sorted((sent - received).total_seconds() * 1000 for received, sent in found)
    print(f"latency: {len(ms)} signals, accepted -> order sent and recorded: "
          f"p50 {statistics.median(ms):.0f} ms, p99 {ms[max(0, int(len(ms) * 0.99) - 1)]:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
