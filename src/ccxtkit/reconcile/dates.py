"""`--date yesterday|today|YYYY-MM-DD` and `--start/--end` as calendar days, turned into UTC ranges.

Days are calendar days in the config's `timezone`, or the machine's own zone when it is unset
(DST included: a day may be 23 or 25 hours long). The range is [start midnight, midnight after
the end day). Report files are named after the day, or `<start>_<end>` for a range of days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ccxtkit.errors import UsageError


@dataclass(frozen=True)
class Period:
    """Calendar days [first, last] and the UTC instants [since, until) they cover."""

    first: date
    last: date
    since: datetime  # aware UTC
    until: datetime  # aware UTC, exclusive

    @property
    def label(self) -> str:
        """The report name part: `2025-01-23`, or `2025-01-01_2025-01-23` for a range."""
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()}_{self.last.isoformat()}"


def midnight_utc(day: date, tz: str | None) -> datetime:
    """Local midnight starting `day` in `tz` (None: the machine's zone), as aware UTC."""
    if tz is None:
        # A naive datetime's astimezone() applies the system's own rules, DST included.
        return datetime.combine(day, time(0)).astimezone(UTC)
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(UTC)


def local_today(now: datetime, tz: str | None) -> date:
    """The calendar day `now` falls on in `tz` (None: the machine's zone)."""
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(tz) if tz else None).date()


def parse_day(text: str, option: str, now: datetime, tz: str | None) -> date:
    """`today`, `yesterday` or YYYY-MM-DD."""
    word = text.strip().lower()
    today = local_today(now, tz)
    if word == "today":
        return today
    if word == "yesterday":
        return today - timedelta(days=1)
    try:
        return date.fromisoformat(word)
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a date: use YYYY-MM-DD, today or yesterday"
        ) from None


def resolve_period(
    day: str | None, start: str | None, end: str | None, now: datetime, tz: str | None
) -> Period:
    """The period the options ask for; today when none is given."""
    if day is not None and (start is not None or end is not None):
        raise UsageError("give either --date or --start/--end, not both")
    if (start is None) != (end is None):
        raise UsageError("--start and --end go together (e.g. --start 2025-01-01 --end 2025-01-23)")
    if start is not None and end is not None:
        first, last = parse_day(start, "--start", now, tz), parse_day(end, "--end", now, tz)
        if last < first:
            raise UsageError(f"--end {last} is before --start {first}")
    else:
        first = last = parse_day(day or "today", "--date", now, tz)
    return Period(first, last, midnight_utc(first, tz), midnight_utc(last + timedelta(days=1), tz))
