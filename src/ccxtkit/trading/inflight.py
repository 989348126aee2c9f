"""Which order intents a live vhc process is still sending.

A process holds an exclusive flock on `state/inflight/<client id>` from before it records an
intent until it has recorded the outcome. The kernel drops the lock when the process dies, so
recovery can tell an intent whose sender crashed (safe to declare never sent, once the
exchange confirms it has no such order) from one another process is sending right now.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..filelock import flocked
from ..workspace import Workspace


def _path(ws: Workspace, client_order_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in client_order_id)
    return ws.ensure_private_dir(ws.state_dir / "inflight") / safe


@contextmanager
def claim(ws: Workspace, client_order_id: str) -> Iterator[None]:
    """Mark the order as being sent by this process until the block ends (or the process dies)."""
    path = _path(ws, client_order_id)
    with flocked(path):
        yield
        path.unlink(missing_ok=True)


def is_orphaned(ws: Workspace, client_order_id: str) -> bool:
    """True when no live process is sending this order."""
    try:
        fd = os.open(_path(ws, client_order_id), os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True
