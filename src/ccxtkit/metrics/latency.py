"""Exchange API call timings, kept in a small JSON-lines file for the latency histogram.

The exchange gateway calls `record_latency` after each call; `read_latency` feeds
`trading_api_latency_seconds` and `vhc_exchange_up`. The file is bounded: past `MAX_BYTES` the
oldest half is dropped, so the histogram's counts can go down (Prometheus treats that as a
counter reset, which `rate()` and `increase()` handle).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ccxtkit.logs import log
from ccxtkit.workspace import write_private

if TYPE_CHECKING:
    from ccxtkit.workspace import Workspace

MAX_BYTES = 512 * 1024
FILE_NAME = "api_latency.jsonl"


@dataclass(frozen=True)
class LatencySample:
    """One timed exchange API call."""

    timestamp: float  # unix seconds
    exchange: str
    method: str
    ms: float
    ok: bool


def latency_path(ws: Workspace) -> Path:
    """The latency file of a workspace."""
    return ws.state_dir / FILE_NAME


def record_latency(
    ws: Workspace,
    exchange: str,
    method: str,
    ms: float,
    ok: bool = True,
    now: float | None = None,
) -> None:
    """Append one call's duration (ms); `ok=False` for a call that failed. Never raises."""
    line = json.dumps(
        {
            "t": round(time.time() if now is None else now, 3),
            "exchange": exchange,
            "method": method,
            "ms": round(float(ms), 3),
            "ok": bool(ok),
        },
        sort_keys=True,
    )
    path = latency_path(ws)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # A separate lock file: trimming replaces the data file, so it cannot carry the lock.
        lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8"))
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if size > MAX_BYTES:
                _trim(path)
        finally:
            os.close(lock)
    except OSError as exc:  # timing data is never worth failing a trade for
        log.warning("could not record API latency in %s: %s", path, exc)


def _trim(path: Path) -> None:
    """Keep the newest half of the file (called with the file's lock held)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    write_private(path, "".join(f"{x}\n" for x in lines[len(lines) // 2 :]))


def read_latency(ws: Workspace) -> list[LatencySample]:
    """Every well-formed sample in the latency file (oldest first); bad lines are skipped."""
    try:
        text = latency_path(ws).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    samples = []
    for line in text.splitlines():
        try:
            d = json.loads(line)
            samples.append(
                LatencySample(
                    float(d["t"]), str(d["exchange"]), str(d["method"]), float(d["ms"]),
                    d.get("ok", True) is True,
                )
            )  # fmt: skip
        except (ValueError, KeyError, TypeError):
            continue
    return samples
