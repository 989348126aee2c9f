"""`logging.immutable`: each finished day's last log hash sealed in the ledger, and checked."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from .ledger.store import Ledger, open_ledger
from .logs import GENESIS, day_files, last_hash, line_hash
from .workspace import Workspace

EVENT = "log.day_sealed"
_LINE = re.compile(r"^([0-9a-f]{64}) (.*)$")


def _base(ws: Workspace) -> Path:
    return ws.path(ws.basics.log_file).absolute()


def sealed(ledger: Ledger) -> dict[date, str]:
    """The last hash of every sealed day, by day."""
    rows = ledger.query("SELECT subject, details FROM control_events WHERE kind = ?", [EVENT])
    out: dict[date, str] = {}
    for subject, details in rows:
        try:
            out[date.fromisoformat(str(subject))] = str(json.loads(details)["last_hash"])
        except (ValueError, KeyError, TypeError):
            continue
    return out


def seal_days(ws: Workspace, wait_seconds: float = 1.0, today: date | None = None) -> list[date]:
    """Record the last hash of each finished, unsealed day file; returns the days sealed."""
    if not ws.basics.log_immutable:
        return []
    today = today or datetime.now(UTC).date()
    done = [(d, p) for d, p in day_files(_base(ws)).items() if d < today]
    if not done:
        return []
    new: list[date] = []
    with open_ledger(ws.ledger_path, wait_seconds=wait_seconds) as ledger:
        have = sealed(ledger)
        for day, path in done:
            if day in have:
                continue
            last = last_hash(path)
            if last is None:
                continue
            lines = sum(1 for _ in path.open("rb"))
            details = {"day": day.isoformat(), "file": path.name, "last_hash": last, "lines": lines}
            ledger.record_event(EVENT, details, subject=day.isoformat())
            new.append(day)
    return new


def verify_days(ws: Workspace, today: date | None = None) -> tuple[int, list[str]]:
    """Check every kept day file's chain and its seal: (files checked, problems)."""
    today = today or datetime.now(UTC).date()
    files = day_files(_base(ws))
    wait = ws.basics.lock_wait_seconds
    with open_ledger(ws.ledger_path, wait_seconds=wait, read_only=True) as ledger:
        seals = sealed(ledger)
    problems: list[str] = []
    keep_from = today - timedelta(days=ws.basics.log_retention_days)
    for day in sorted(seals):
        if day >= keep_from and day not in files:
            problems.append(f"the log of {day} was sealed in the ledger but its file is gone")
    previous: str | None = None
    for day, path in files.items():
        if previous is None:  # the first kept file chains from the last sealed day before it
            earlier = [d for d in seals if d < day]
            previous = seals[max(earlier)] if earlier else GENESIS
        for number, raw in enumerate(path.read_text("utf-8", "replace").splitlines(), 1):
            m = _LINE.match(raw)
            if not m or line_hash(previous, m.group(2)) != m.group(1):
                problems.append(
                    f"{path.name} line {number}: the hash chain is broken "
                    "(a line was edited, inserted or deleted)"
                )
                break
            previous = m.group(1)
        else:
            if day in seals and seals[day] != previous:
                problems.append(
                    f"{path.name}: does not end where the ledger sealed it "
                    "(lines were removed from its end)"
                )
    return len(files), problems
