"""Hold back a repeated alert: the same key is delivered once per window.

State lives in `state/alerts_dedup.json` ({key: ISO time last claimed}), guarded by a flock so
that two vhc processes raising the same alert at once deliver it once. A key is *claimed*
before the channels are tried and *released* again if every channel failed, so a failed
delivery is retried by the next alert instead of being swallowed for a whole window.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ccxtkit.filelock import flocked
from ccxtkit.workspace import write_private

#: Entries older than this are dropped on each write, so the file stays small.
_KEEP = timedelta(days=7)


@contextmanager
def _locked(path: Path) -> Iterator[dict[str, str]]:
    """Hold the state file's lock and yield its entries; writes them back atomically."""
    with flocked(path.with_name(path.name + ".lock")):
        entries = _read(path)
        before = dict(entries)
        yield entries
        if entries != before:
            write_private(path, json.dumps(entries, indent=1, sort_keys=True) + "\n")


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        # A damaged state file must not stop alerts: start afresh (worst case: one repeat).
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def claim(path: Path, key: str, now: datetime, window_minutes: int) -> bool:
    """True (and record `now`) when `key` was not delivered within the window before `now`."""
    window = timedelta(minutes=window_minutes)
    with _locked(path) as entries:
        last = _parse(entries.get(key))
        if window_minutes > 0 and last is not None and now - last < window and last <= now:
            return False
        entries[key] = now.isoformat()
        horizon = now - max(_KEEP, window)
        for old in [k for k, v in entries.items() if (_parse(v) or now) < horizon]:
            del entries[old]
        return True


def release(path: Path, key: str, claimed_at: datetime) -> None:
    """Forget a claim that delivered nothing, unless a newer claim replaced it."""
    with _locked(path) as entries:
        if entries.get(key) == claimed_at.isoformat():
            del entries[key]


def _parse(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
