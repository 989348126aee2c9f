"""Keeping the ledger open between visits, in a long-running process (`vhc serve`).

A visit of `open_ledger` costs a DuckDB connect, the file's checks (migrations, tables,
views), a chain-head read and a close with its checkpoint: 30-60 ms, several times per signal.
A process that keeps a ledger (`keep(path)`) holds its lock file *and* its connection from one
visit to the next, so a visit costs none of that. What the lock guarantees stays true:

- one holder at a time, and the holder of the lock file is the only one with the file open;
- another process is never shut out: while it waits for the lock it holds a shared flock on
  `<ledger>.want` (`store.ledger_lock`). The keeper looks at that file at the end of every
  visit and every `WATCH_SECONDS` between visits, and when someone waits it closes the file
  (DuckDB checkpoints) and lets the lock go: between two visits, never inside one;
- after `IDLE_SECONDS` without a visit the keeper closes too, so an idle server holds nothing;
- within the process, visits take turns (a mutex instead of the lock file's flock);
- a visit that raises closes the file: the next one opens it afresh, with every check;
- a `kill -9` loses nothing: every write of a visit was committed (DuckDB syncs its WAL at
  each commit) before the visit returned; the next opener replays the WAL.

Only vhc writes to the file while it is kept, through `Ledger` (which keeps the chain head),
so the head and the file's tables read by the first visit stay true for the later ones.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..errors import LedgerBusyError
from ..logs import log
from .store import Ledger, close_file, ledger_lock, open_file, visit_file, want_path

#: Close the file after this long without a visit (a signal a minute stays warm; a quiet
#: server's file is checkpointed and let go soon after).
IDLE_SECONDS = 30.0
#: How often the watcher looks for a waiting process (and for idleness) between visits.
WATCH_SECONDS = 0.02


class _Kept:
    """One ledger file kept open by this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mutex = threading.Lock()  # one visit at a time in this process
        self.ledger: Ledger | None = None
        self.held = ExitStack()  # the lock file, while the file is open
        self.last_used = 0.0
        self.opens = 0  # how many times the file was opened (for tests and benchmarks)
        self.released = False  # set by `release`: never kept open again
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._want = os.open(want_path(path), os.O_RDWR | os.O_CREAT, 0o600)

    def idle(self) -> bool:
        """True when no visit has used the open file for IDLE_SECONDS."""
        return time.monotonic() - self.last_used > IDLE_SECONDS

    def wanted(self) -> bool:
        """True while another process waits for the lock (holds `.want` shared)."""
        if self.released:
            return False
        try:
            fcntl.flock(self._want, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._want, fcntl.LOCK_UN)
        return False

    def open(self, wait_seconds: float) -> Ledger:
        """Take the lock and open the file (the mutex is held)."""
        stack = ExitStack()
        stack.enter_context(ledger_lock(self.path, wait_seconds))
        try:
            ledger = open_file(self.path, read_only=False)
        except BaseException:
            stack.close()
            raise
        self.held, self.ledger = stack, ledger
        self.opens += 1
        self.last_used = time.monotonic()
        return ledger

    def close(self, clean: bool) -> None:
        """Close the file and let the lock go (the mutex is held)."""
        ledger, self.ledger = self.ledger, None
        try:
            if ledger is not None:
                close_file(ledger, clean)
        finally:
            self.held.close()


_kept: dict[Path, _Kept] = {}
_kept_lock = threading.Lock()
_watcher: threading.Thread | None = None


def _key(path: Path) -> Path:
    return Path(os.path.abspath(path))


def keep(path: Path) -> None:
    """From now on this process keeps `path` open between its visits (see the module doc)."""
    global _watcher
    with _kept_lock:
        key = _key(path)
        if key not in _kept:
            _kept[key] = _Kept(key)
        if _watcher is None:
            _watcher = threading.Thread(target=_watch, name="vhc-ledger-keeper", daemon=True)
            _watcher.start()
            atexit.register(release_all)


def keeps(path: Path) -> bool:
    """Whether this process keeps `path` open between visits."""
    return bool(_kept) and _key(path) in _kept


def opens(path: Path) -> int:
    """How many times the kept `path` was opened by this process (0 if not kept)."""
    kept = _kept.get(_key(path))
    return kept.opens if kept else 0


def release(path: Path) -> None:
    """Stop keeping `path`: close it (after the visit in progress) and forget it."""
    with _kept_lock:
        kept = _kept.pop(_key(path), None)
    if kept is not None:
        with kept.mutex:
            kept.released = True
            kept.close(clean=True)
            os.close(kept._want)


def release_all() -> None:
    """Close every kept ledger (at shutdown)."""
    for path in list(_kept):
        release(path)


@contextmanager
def visit(path: Path, wait_seconds: float, read_only: bool) -> Iterator[Ledger]:
    """One visit of a kept ledger: the open file, or the file opened now and kept after."""
    kept = _kept.get(_key(path))
    start = time.monotonic()
    if kept is None:  # released meanwhile: an ordinary visit
        with visit_file(path, wait_seconds, read_only) as plain:
            yield plain
        return
    if not kept.mutex.acquire(timeout=max(wait_seconds, 0.001)):
        raise LedgerBusyError(
            f"the ledger {path} is in use by this vhc process (waited {wait_seconds:g} s); "
            "try again when it has finished, or raise ledger.lock_wait_seconds"
        )
    try:
        ledger = kept.ledger
        if kept.released or (ledger is None and read_only):
            # Released (it stays closed), or a read with nothing open: an ordinary visit
            # (a read-only open neither migrates nor writes).
            with visit_file(path, _left(wait_seconds, start), read_only) as once:
                yield once
            return
        if ledger is None:
            ledger = kept.open(_left(wait_seconds, start))
        clean = False
        try:
            if read_only:
                yield _reader(ledger)
            else:
                from . import outbox

                outbox.drain(ledger)  # what the kill switch could not wait to write
                yield ledger
            clean = True
        finally:
            kept.last_used = time.monotonic()
            if not clean or kept.wanted():
                kept.close(clean)
    finally:
        kept.mutex.release()


def _left(wait_seconds: float, start: float) -> float:
    return max(0.0, wait_seconds - (time.monotonic() - start))


def _reader(ledger: Ledger) -> Ledger:
    """A read-only Ledger on the kept connection (it refuses appends, like a read-only open)."""
    reader = Ledger.__new__(Ledger)
    reader.__dict__.update(ledger.__dict__)
    reader.read_only = True
    return reader


def _watch() -> None:
    """Between visits: let the lock go when another process waits, or after IDLE_SECONDS."""
    while True:
        time.sleep(WATCH_SECONDS)
        for kept in list(_kept.values()):
            try:
                _look(kept)
            except Exception:  # the watcher must live on; the next visit opens afresh
                log.exception("ledger keeper: closing %s failed", kept.path)


def _look(kept: _Kept) -> None:
    if kept.ledger is None or not (kept.idle() or kept.wanted()):
        return
    if not kept.mutex.acquire(timeout=0.5):
        return  # in a visit: its end looks at `.want` itself
    try:
        # Looked at again: a visit may have ended (and been the last use) meanwhile.
        if kept.ledger is not None and (kept.idle() or kept.wanted()):
            kept.close(clean=True)
    finally:
        kept.mutex.release()
