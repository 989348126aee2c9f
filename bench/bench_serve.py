"""`vhc serve` under load: accepted signals per second, and webhook-to-order-sent latency.

Starts a real `vhc serve` (paper account, env secrets, rate limits raised out of the way),
posts N signed Google Sheets signals from C client threads over keep-alive connections, and
reports:
- accepted/s: 202 answers per second of wall time, and each POST's latency (p50, p99);
- webhook -> order sent: per signal, from its `received` row to the order's first
  `order_events` row (the exchange's answer to the send, recorded), and to the signal's own
  `sent` row (written after the order's fills and the kill switch's triggers), all stamped by
  the server in the ledger (p50, p99);
- the server's CPU (user + sys over its threads, from /proc) per phase.

Targets: >= 200 accepted signals/s; webhook -> order sent p50 under 100 ms.

Usage: python bench/bench_serve.py [--signals N] [--clients C] [--workers W] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.serve_process import ServeProcess  # noqa: E402

from ccxtkit.workspace import init_workspace, write_private  # noqa: E402

KEY, SECRET = "bench-sheets-key-0123456789", "bench-sheets-secret-0123456789"


def make_home(root: Path, workers: int) -> Path:
    home = root / "ws"
    init_workspace(home)
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["secrets"] = {"backend": "env"}
    data["signals"] = {
        "workers": max(workers, 1),
        "sources": {"sheets": {"kind": "sheets", "exchange": "paper", "secrets": "env"}},
    }
    data["serve"] = {"source_rate_per_second": "100000", "source_burst": 100000}
    # Many small orders: the limits are not what is measured.
    data["risk"] = {**data.get("risk", {}), "max_daily_volume": 10**9, "max_open_orders": 10**6}
    write_private(path, yaml.safe_dump(data))
    os.environ["VHC_SIGNALS_SHEETS_KEY"] = KEY
    os.environ["VHC_SIGNALS_SHEETS_SECRET"] = SECRET
    return home


def signed(i: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {
            "id": f"bench-{i}",
            "timestamp": int(datetime.now(UTC).timestamp()),
            "symbol": "BTC/USD",
            "exchange": "paper",
            "transactionType": "BUY",
            "quantity": "0.0001",
            "price": None,
            "orderType": "MARKET",
            "productType": "CNC",
        }
    ).encode()
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-API-Key": KEY, "X-Signature": sig, "Content-Type": "application/json"}


def blast(port: int, total: int, clients: int) -> tuple[float, list[float], dict[int, int]]:
    """POST `total` signals from `clients` threads; (wall seconds, latencies, status counts)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    counter = iter(range(total))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body, headers = signed(i)
            start = time.perf_counter()
            conn.request("POST", "/api/v1/signals/sheets/webhook", body, headers)
            r = conn.getresponse()
            r.read()
            took = time.perf_counter() - start
            with lock:
                latencies.append(took)
                statuses[r.status] = statuses.get(r.status, 0) + 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies, statuses


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def server_cpu(srv: ServeProcess) -> float:
    """CPU seconds (user + sys, every thread) the server process has used so far."""
    assert srv.proc is not None
    fields = Path(f"/proc/{srv.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def order_latencies(home: Path) -> list[float]:
    """Per signal: seconds from its `received` row to its order's first `order_events` row."""
    from ccxtkit.ledger.store import open_ledger

    with open_ledger(home / "ledger" / "vhc.duckdb", wait_seconds=30, read_only=True) as led:
        rows = led.query(
            "SELECT r.timestamp, min(o.recorded_at) FROM signal_events r "
            "JOIN signal_events i ON i.signal_id = r.signal_id AND i.event = 'intent' "
            "JOIN order_events o ON o.client_order_id = i.client_order_id "
            "WHERE r.event = 'received' GROUP BY r.signal_id, r.timestamp"
        )
    return [(o - r).total_seconds() for r, o in rows]


def final_and_latencies(home: Path) -> tuple[int, list[float]]:
    """(signals in a final state, per signal the seconds from `received` to `sent`)."""
    from ccxtkit.ledger.store import open_ledger
    from ccxtkit.signals.store import FINAL

    marks = ", ".join("?" for _ in FINAL)
    with open_ledger(home / "ledger" / "vhc.duckdb", wait_seconds=30, read_only=True) as led:
        (final,) = led.query(
            "SELECT count(*) FROM (SELECT signal_id, arg_max(status, seq) AS s FROM signal_events "
            f"WHERE status IS NOT NULL GROUP BY signal_id) WHERE s IN ({marks})",
            list(FINAL),
        )[0]
        rows = led.query(
            "SELECT min(CASE WHEN event = 'received' THEN timestamp END), "
            "min(CASE WHEN event = 'sent' THEN timestamp END) FROM signal_events "
            "GROUP BY signal_id"
        )
    return int(final), [(s - r).total_seconds() for r, s in rows if r and s]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--signals", type=int, default=500, help="phase 1: signals posted at once")
    ap.add_argument("--clients", type=int, default=8, help="phase 1: client threads")
    ap.add_argument("--paced", type=int, default=30, help="phase 2: signals, one at a time")
    ap.add_argument("--interval", type=float, default=1.0, help="phase 2: seconds between them")
    ap.add_argument("--workers", type=int, default=2, help="phase 2: signal workers")
    ap.add_argument("--keep", type=Path, default=None)
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-serve-"))
    os.environ.setdefault("VHC_SERVE_JWT_KEY", "bench-serve-jwt-key-0123456789abcdef")

    # Phase 1: intake alone (no workers): how many signals per second are accepted.
    home = make_home(root / "intake", args.workers)
    with ServeProcess(home, workers=0) as srv:
        cpu0 = server_cpu(srv)
        wall, latencies, statuses = blast(srv.port, args.signals, args.clients)
        cpu = server_cpu(srv) - cpu0
        srv.stop()
    accepted = statuses.get(202, 0)
    print(f"phase 1: {args.signals} signals from {args.clients} clients in {wall:.2f} s")
    print(f"  statuses: {statuses}; accepted {accepted / wall:.1f} signals/s")
    print(f"  server CPU {cpu:.2f} s = {cpu / max(accepted, 1) * 1000:.1f} ms per signal")
    print(
        f"  POST latency: p50 {pct(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {pct(latencies, 0.99) * 1000:.0f} ms"
    )

    # Phase 2: paced signals with the workers running: webhook -> order sent.
    home = make_home(root / "paced", args.workers)
    with ServeProcess(home, workers=args.workers) as srv:
        cpu0 = server_cpu(srv)
        posts = []
        for i in range(args.paced):
            start = time.perf_counter()
            wall, lat, st = blast_one(srv.port, i)
            posts.append(lat)
            time.sleep(max(0.0, args.interval - (time.perf_counter() - start)))
        deadline = time.monotonic() + 600
        done, sent = 0, []
        while time.monotonic() < deadline:
            done, sent = final_and_latencies(home)
            if done >= args.paced:
                break
            time.sleep(1)
        cpu = server_cpu(srv) - cpu0
        srv.stop()
    to_order = order_latencies(home)
    print(f"phase 2: {args.paced} signals, one every {args.interval} s, {args.workers} workers")
    print(
        f"  POST latency: p50 {pct(posts, 0.5) * 1000:.0f} ms, p99 {pct(posts, 0.99) * 1000:.0f} ms"
    )
    if to_order:
        print(
            f"  webhook -> order sent, its outcome recorded ({len(to_order)} orders): "
            f"p50 {statistics.median(to_order) * 1000:.0f} ms, p99 {pct(to_order, 0.99) * 1000:.0f} ms"
        )
    if sent:
        print(
            f"  webhook -> the signal's `sent` row ({len(sent)}): "
            f"p50 {statistics.median(sent) * 1000:.0f} ms, p99 {pct(sent, 0.99) * 1000:.0f} ms"
        )
    print(f"  server CPU {cpu:.2f} s = {cpu / max(args.paced, 1) * 1000:.0f} ms per signal")
    print(f"workspaces under {root}")


def blast_one(port: int, i: int) -> tuple[float, float, int]:
    """One signal on a fresh connection: (wall, latency, status)."""
    body, headers = signed(10_000 + i)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    start = time.perf_counter()
    conn.request("POST", "/api/v1/signals/sheets/webhook", body, headers)
    r = conn.getresponse()
    r.read()
    took = time.perf_counter() - start
    conn.close()
    return took, took, r.status


if __name__ == "__main__":
    main()
