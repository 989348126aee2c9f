"""The log file, and the redaction that keeps secrets out of it."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

_SECRETS: set[str] = set()
_MIN_SECRET_LEN = 6  # shorter values would redact ordinary words

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


class Rfc3339Formatter(logging.Formatter):
    """Log times as RFC 3339 in UTC with an explicit offset (`2026-12-03T08:31:03.173+00:00`)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        from datetime import UTC, datetime

        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def setup_logging(path: Path, level: str, max_bytes: int, backup_count: int) -> None:
    """Send vhc's log records to a rotating, owner-only file; safe to call more than once."""
    for old in [h for h in log.handlers if getattr(h, "_vhc", False)]:
        if getattr(old, "baseFilename", None) == str(path.absolute()):
            return
        log.removeHandler(old)  # another workspace in the same process (tests, scripts)
        old.close()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    handler._vhc = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.setFormatter(Rfc3339Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
