"""Control events that could not wait for the ledger lock, kept on disk until the next writer.

The kill switch must act even while a long reconcile holds the ledger (or while the ledger is
broken). It writes its events here (a small append-only file beside the ledger, fsynced); the
next process that opens the ledger for writing moves them into the hash chain. Each event
carries an id, so a crash between the ledger commit and the file's truncation never records an
event twice. Read-only commands never drain; they may read what is waiting (`pending`).

The lines are not authenticated: anyone who can write the workspace can append one. So only
the kinds in `OUTBOX_KINDS` are accepted, because forging them can only make things safer (an
activation halts trading; a sweep report is never relied on for a decision). A deactivation is
never accepted from here: it needs a code, and the process that checked the code writes it to
the ledger itself. Everything else found in the file (a forged `allowlist.added` or
`withdraw.approved`, a line that is not JSON, a missing field, a line cut short by a crash) is
quarantined: copied to `<ledger>.outbox.rejected` (0600), named by a chained
`outbox.quarantined` event (line number, kind, reason; never the content), alerted, and never
chained. Draining never raises because of a line.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import VhcError
from ..logs import log
from .chain import now_utc

if TYPE_CHECKING:
    from ..workspace import Workspace
    from .store import Ledger

#: The only event kinds that may wait in the outbox (see the module docstring for why).
OUTBOX_KINDS = frozenset({"kill_switch.activate", "kill_switch.sweep"})
#: The chained event that records a quarantined line.
QUARANTINE_KIND = "outbox.quarantined"

_FIELDS = frozenset({"id", "timestamp", "kind", "actor", "subject", "details"})
_ID = re.compile(r"[0-9a-f]{32}")
_EARLIEST = datetime(2009, 1, 3, tzinfo=UTC)
_MAX_TEXT = 200
# Which workspace a ledger path belongs to, so a drain can alert through its channels.
_WORKSPACES: dict[Path, Workspace] = {}


def outbox_path(ledger_path: Path) -> Path:
    """Where the outbox of a ledger file lives."""
    return ledger_path.with_name(ledger_path.name + ".outbox.jsonl")


def rejected_path(ledger_path: Path) -> Path:
    """Where quarantined outbox lines are kept (0600), one JSON record per line."""
    return ledger_path.with_name(ledger_path.name + ".outbox.rejected")


def watch(ledger_path: Path, ws: Workspace) -> None:
    """Remember that `ledger_path` is `ws`'s ledger: a drain alerts through its channels."""
    _WORKSPACES[ledger_path] = ws


@dataclass(frozen=True)
class Entry:
    """One well-formed, allowed event waiting in the outbox."""

    id: str
    timestamp: datetime
    kind: str
    actor: str
    subject: str | None
    details: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    """A line that is not let into the chain, and why."""

    line: int
    kind: str | None
    reason: str
    raw: str

    def summary(self) -> dict[str, Any]:
        """What the chained event and the alert say: never the line's content."""
        return {"line": self.line, "kind": self.kind, "reason": self.reason}


def parse_line(raw: str, now: datetime | None = None) -> Entry:
    """One outbox line as an Entry; ValueError (a short reason) when it must be quarantined."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValueError("not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    missing, extra = _FIELDS - set(data), set(data) - _FIELDS
    if missing:
        raise ValueError(f"missing field(s) {', '.join(sorted(missing))}")
    if extra:
        raise ValueError(f"unexpected field(s) {', '.join(sorted(map(str, extra)))[:_MAX_TEXT]}")
    kind = data["kind"]
    if not isinstance(kind, str) or kind not in OUTBOX_KINDS:
        raise ValueError("this kind of event is not accepted from the outbox")
    if not isinstance(data["id"], str) or not _ID.fullmatch(data["id"]):
        raise ValueError("malformed id")
    actor, subject, details = data["actor"], data["subject"], data["details"]
    if not isinstance(actor, str) or not actor or len(actor) > _MAX_TEXT:
        raise ValueError("malformed actor")
    if subject is not None and (not isinstance(subject, str) or len(subject) > _MAX_TEXT):
        raise ValueError("malformed subject")
    if not isinstance(details, dict):
        raise ValueError("details is not an object")
    return Entry(data["id"], _timestamp(data["timestamp"], now), kind, actor, subject, details)


def _timestamp(value: Any, now: datetime | None) -> datetime:
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise ValueError("malformed timestamp")
    moment = _aware(moment)  # lines written by earlier versions carry naive UTC
    latest = (now or datetime.now(UTC)) + timedelta(days=1)
    if not _EARLIEST <= moment <= latest:
        raise ValueError("timestamp out of range")
    return moment


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _kind_of(raw: str) -> str | None:
    """The line's kind if it names one (for the report), cut short and printable."""
    try:
        kind = json.loads(raw).get("kind")
    except (ValueError, AttributeError):
        return None
    if not isinstance(kind, str):
        return None
    return "".join(c for c in kind[:64] if c.isprintable())


def split(data: bytes, now: datetime | None = None) -> tuple[list[Entry], list[Rejected]]:
    """Sort an outbox's bytes into accepted entries and rejected lines (a pure function)."""
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    complete = len(lines) - 1  # the part after the last newline is a line cut short, if any
    good: list[Entry] = []
    bad: list[Rejected] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        if number > complete:
            bad.append(Rejected(number, _kind_of(raw), "line cut short (no newline)", raw))
            continue
        try:
            good.append(parse_line(raw, now))
        except ValueError as exc:
            bad.append(Rejected(number, _kind_of(raw), str(exc), raw))
    return good, bad


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def queue_event(
    ledger_path: Path,
    kind: str,
    details: Mapping[str, Any],
    actor: str,
    subject: str | None = None,
    timestamp: datetime | None = None,
) -> str:
    """Durably queue a control event for the ledger; returns its outbox id.

    Only `OUTBOX_KINDS` may be queued: anything else must wait for the ledger (or fail).
    """
    if kind not in OUTBOX_KINDS:
        raise VhcError(f"internal: {kind!r} events may not be queued in the outbox")
    entry_id = uuid.uuid4().hex
    entry = {
        "id": entry_id,
        "timestamp": _aware(timestamp or now_utc()).isoformat(),
        "kind": kind,
        "actor": actor,
        "subject": subject,
        "details": dict(details),
    }
    line = json.dumps(entry, sort_keys=True, default=str) + "\n"
    with _locked(outbox_path(ledger_path)) as fd:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line  # a crash cut the last line short: never glue ours onto it
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    return entry_id


def pending(ledger_path: Path) -> list[Entry]:
    """The accepted events waiting in the outbox, read without changing anything."""
    path = outbox_path(ledger_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # writers append under LOCK_EX: never read half a line
        return split(_read_all(fd))[0]
    finally:
        os.close(fd)


def drain(ledger: Ledger) -> int:
    """Move queued events into the chain and quarantine the rest; returns how many moved.

    An outbox that cannot be read at all (not a file, no permission) is alerted and left as
    it is: the command goes on.
    """
    path = outbox_path(ledger.path)
    try:
        if not path.exists() or path.stat().st_size == 0:
            return 0
        return _drain(ledger, path)
    except OSError as exc:
        _alert(
            ledger.path,
            "Outbox unreadable",
            f"{path} cannot be read ({exc}); kill-switch events waiting in it are not in the "
            "ledger, and the kill switch counts it as active until it is repaired.",
            "outbox.unreadable",
        )
        return 0


def _drain(ledger: Ledger, path: Path) -> int:
    with _locked(path) as fd:
        good, bad = split(_read_all(fd))
        kept = _quarantine(ledger.path, bad)
        moved = 0
        with ledger.transaction():
            for entry in good:
                marker = f'%"outbox_id": "{entry.id}"%'  # the id is 32 hex digits: no wildcards
                seen = ledger.query(
                    "SELECT 1 FROM control_events WHERE details LIKE ? LIMIT 1", [marker]
                )
                if seen:
                    continue
                ledger.record_event(
                    entry.kind,
                    {**entry.details, "outbox_id": entry.id},
                    actor=entry.actor,
                    subject=entry.subject,
                    timestamp=entry.timestamp,
                )
                moved += 1
            if kept:
                for rejected in bad:
                    details = {**rejected.summary(), "file": rejected_path(ledger.path).name}
                    ledger.record_event(QUARANTINE_KIND, details, subject=path.name)
        if kept or not bad:
            # Only once the bad lines are safe in .rejected; else they stay for the next drain.
            os.ftruncate(fd, 0)
            os.fsync(fd)
    if bad:
        _alert_quarantine(ledger.path, bad, kept)
    return moved


def _quarantine(ledger_path: Path, bad: list[Rejected]) -> bool:
    """Append the rejected lines to the .rejected file (fsynced); False if that failed."""
    if not bad:
        return True
    stamp = _aware(now_utc()).isoformat()
    text = "".join(
        json.dumps({"quarantined_at": stamp, **r.summary(), "raw": r.raw}, sort_keys=True) + "\n"
        for r in bad
    )
    try:
        fd = os.open(rejected_path(ledger_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        log.critical("outbox lines could not be quarantined (%s); they stay in the outbox", exc)
        return False
    return True


def _alert_quarantine(ledger_path: Path, bad: list[Rejected], kept: bool) -> None:
    listed = "; ".join(
        f"line {r.line}" + (f" ({r.kind})" if r.kind else "") + f": {r.reason}" for r in bad[:10]
    )
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    where = rejected_path(ledger_path) if kept else outbox_path(ledger_path)
    title = "Outbox lines quarantined" if kept else "Outbox lines could not be quarantined"
    body = (
        f"{len(bad)} line(s) of {outbox_path(ledger_path).name} were not let into the ledger: "
        f"{listed}{more}. They are kept in {where}. The outbox only carries kill-switch "
        "events: a line of any other kind may mean someone edited the workspace; find out who."
    )
    _alert(ledger_path, title, body, "outbox.quarantined")


def _alert(ledger_path: Path, title: str, body: str, key: str) -> None:
    """A critical alert through the workspace's channels (logged only if none is known)."""
    ws = _WORKSPACES.get(ledger_path)
    if ws is None:
        log.critical("alert CRITICAL [%s]: %s | %s", key, title, body)
        return
    from ..alerts import Alert, send_alert

    send_alert(ws, Alert("critical", title, body, key=key))
