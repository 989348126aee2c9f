"""Control events that could not wait for the ledger lock, kept on disk until the next open.

The kill switch must act even while a long reconcile holds the ledger. It writes its event here
(a small append-only file beside the ledger, fsynced); the next process that opens the ledger
moves the events into the hash chain. Each event carries an id, so a crash between the ledger
commit and the file's truncation never records an event twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .chain import now_utc

if TYPE_CHECKING:
    from .store import Ledger


def outbox_path(ledger_path: Path) -> Path:
    """Where the outbox of a ledger file lives."""
    return ledger_path.with_name(ledger_path.name + ".outbox.jsonl")


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def queue_event(
    ledger_path: Path,
    kind: str,
    details: Mapping[str, Any],
    actor: str,
    subject: str | None = None,
    timestamp: datetime | None = None,
) -> str:
    """Durably queue a control event for the ledger; returns its outbox id."""
    entry_id = uuid.uuid4().hex
    entry = {
        "id": entry_id,
        "timestamp": (timestamp or now_utc()).isoformat(),
        "kind": kind,
        "actor": actor,
        "subject": subject,
        "details": dict(details),
    }
    line = json.dumps(entry, sort_keys=True, default=str) + "\n"
    with _locked(outbox_path(ledger_path)) as fd:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    return entry_id


def drain(ledger: Ledger) -> int:
    """Move queued events into the chain (skipping any already there); returns how many moved."""
    path = outbox_path(ledger.path)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with _locked(path) as fd:
        with open(path, encoding="utf-8") as handle:
            entries = [json.loads(line) for line in handle if line.strip().endswith("}")]
        moved = 0
        with ledger.transaction():
            for entry in entries:
                marker = f'%"outbox_id": "{entry["id"]}"%'
                seen = ledger.query(
                    "SELECT 1 FROM control_events WHERE details LIKE ? LIMIT 1", [marker]
                )
                if seen:
                    continue
                details = {**entry["details"], "outbox_id": entry["id"]}
                ledger.record_event(
                    entry["kind"],
                    details,
                    actor=entry["actor"],
                    subject=entry["subject"],
                    timestamp=datetime.fromisoformat(entry["timestamp"]),
                )
                moved += 1
        os.ftruncate(fd, 0)
        os.fsync(fd)
    return moved
