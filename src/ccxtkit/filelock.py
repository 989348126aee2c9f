"""One way to hold a lock file: flock on an owner-only file, waiting forever or for a while.

Every small state file of vhc (ledger, paper exchange, kill switch, 2FA, alert dedup) is
guarded this way. The kernel drops the lock when the process dies, so a crash never leaves
a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import VhcError


@contextmanager
def flocked(
    path: Path,
    wait_seconds: float | None = None,
    busy: Callable[[], VhcError] | None = None,
    shared: bool = False,
    poll_seconds: float = 0.01,
    on_wait: Callable[[], None] | None = None,
) -> Iterator[int]:
    """Hold a flock on `path` (created 0600); yields its descriptor.

    With `wait_seconds` None it waits as long as it takes; otherwise it raises `busy()` once
    the wait is over. `on_wait` is called once, when the lock is found taken (before waiting).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        if on_wait is not None:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)  # taken at once: the wait below is a no-op
            except BlockingIOError:
                on_wait()
        if wait_seconds is None:
            fcntl.flock(fd, mode)
        else:
            deadline = time.monotonic() + wait_seconds
            while True:
                try:
                    fcntl.flock(fd, mode | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise (busy or _busy(path))() from None
                    time.sleep(poll_seconds)
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _busy(path: Path) -> Callable[[], VhcError]:
    return lambda: VhcError(f"{path} is locked by another vhc process; try again shortly")
