"""The log files (one a day, kept `retention_days`), their hash chain, and secret redaction.

Records go to `logs/trading-YYYY-MM-DD.log` (UTC days); `logs/trading.log` is a symlink to
today's file. Files older than `logging.retention_days` are deleted when vhc starts. With
`logging.immutable: true` every line starts with a SHA-256 chained over the previous line
(across days: a day's first line chains from the previous file's last), files are opened
append-only, and each finished day's last hash is sealed in the ledger (`log.day_sealed`,
`log_chain.seal_days`), so an edited, truncated or deleted day is found by `vhc doctor`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

_SECRETS: set[str] = set()
_MIN_SECRET_LEN = 6  # shorter values would redact ordinary words
GENESIS = "0" * 64

log = logging.getLogger("vhc")
# Until a workspace's log file is set up, records go nowhere: stderr is for one-line errors.
log.addHandler(logging.NullHandler())


def register_secret(value: str | None) -> None:
    """Remember a secret value so that no log line, error or output can carry it."""
    if value and len(value) >= _MIN_SECRET_LEN:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in `text` with `***`."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Renders the message once, redacts it, and keeps the record free of raw args."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


# -- daily files -----------------------------------------------------------------------------
def day_file(base: Path, day: date) -> Path:
    """`logs/trading.log` -> `logs/trading-2026-12-03.log`."""
    return base.with_name(f"{base.stem}-{day.isoformat()}{base.suffix}")


def day_files(base: Path) -> dict[date, Path]:
    """The existing day files of a log, by day."""
    pattern = re.compile(
        rf"^{re.escape(base.stem)}-(\d{{4}}-\d{{2}}-\d{{2}}){re.escape(base.suffix)}$"
    )
    found: dict[date, Path] = {}
    if base.parent.is_dir():
        for path in base.parent.iterdir():
            m = pattern.match(path.name)
            if m:
                try:
                    found[date.fromisoformat(m.group(1))] = path
                except ValueError:
                    continue
    return dict(sorted(found.items()))


def prune(base: Path, retention_days: int, today: date) -> list[Path]:
    """Delete day files older than `retention_days`; returns what was deleted."""
    try:
        cutoff = today - timedelta(days=retention_days)
    except OverflowError:
        return []  # a retention longer than the calendar: nothing is ever old enough
    gone = []
    for day, path in day_files(base).items():
        if day < cutoff:
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone


def line_hash(previous: str, text: str) -> str:
    """The chain: SHA-256 of the previous line's hash and this line's text."""
    return hashlib.sha256(f"{previous}{text}".encode()).hexdigest()


def last_hash(path: Path) -> str | None:
    """The hash that starts the last line of a chained file (None if it has none)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 65536))
            tail = handle.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(tail):
        head = line.split(" ", 1)[0]
        if re.fullmatch(r"[0-9a-f]{64}", head):
            return head
    return None


class DailyFileHandler(logging.Handler):
    """Appends each record, one line, to its UTC day's file; chained when `immutable`."""

    def __init__(self, base: Path, immutable: bool) -> None:
        super().__init__()
        self.base = base
        self.immutable = immutable
        #: The day is the clock's at the moment of writing (under the lock), not the record's:
        #: so days follow each other in the chain even when processes race past midnight.
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # One record is one line, so the chain (and grep) works line by line.
            text = self.format(record).replace("\\", "\\\\").replace("\n", "\\n")
            self._append(text)
        except Exception:  # noqa: BLE001 - logging must never break a command
            self.handleError(record)

    def _append(self, text: str) -> None:
        from .filelock import flocked

        with flocked(self.base.with_name(f".{self.base.name}.lock")):
            day = self.clock().astimezone(UTC).date()
            path = day_file(self.base, day)
            if self.immutable:
                previous = last_hash(path)
                if previous is None:
                    earlier = [p for d, p in day_files(self.base).items() if d < day]
                    previous = (last_hash(earlier[-1]) if earlier else None) or GENESIS
                text = f"{line_hash(previous, text)} {text}"
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (text + "\n").encode("utf-8"))
            finally:
                os.close(fd)
            self._link(path)

    def _link(self, path: Path) -> None:
        """Point `trading.log` at today's file (a regular file left by older vhc is kept aside)."""
        link = self.base
        if link.is_symlink():
            if os.readlink(link) == path.name:
                return
        elif link.exists():
            link.rename(link.with_name(f"{link.name}.before-daily"))
        tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
        tmp.unlink(missing_ok=True)
        os.symlink(path.name, tmp)
        os.replace(tmp, link)


class Rfc3339Formatter(logging.Formatter):
    """Log times as RFC 3339 in UTC with an explicit offset (`2026-12-03T08:31:03.173+00:00`)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        from datetime import UTC, datetime

        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def setup_logging(
    path: Path, level: str, retention_days: int = 2555, immutable: bool = False
) -> None:
    """Send vhc's log records to daily owner-only files; safe to call more than once."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    prune(path.absolute(), retention_days, datetime.now(UTC).date())
    for old in [h for h in log.handlers if getattr(h, "_vhc", False)]:
        if getattr(old, "base", None) == path.absolute():
            return
        log.removeHandler(old)  # another workspace in the same process (tests, scripts)
        old.close()
    handler = DailyFileHandler(path.absolute(), bool(immutable))
    handler._vhc = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(Rfc3339Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
