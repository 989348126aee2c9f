"""NSE market hours: 09:15-15:30 Asia/Kolkata on weekdays that are not holidays.

The holidays come from the account's config (`kite: {holidays: [...]}`): NSE publishes them
yearly. The moment judged is the Kite server's own clock where known (the `Date` header of
its latest reply), so a wrong local clock neither opens nor closes the market.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")
OPEN_AT = time(9, 15)
CLOSE_AT = time(15, 30)


def holiday_dates(holidays: Iterable[str]) -> set[date]:
    """The config's `kite.holidays` (YYYY-MM-DD, validated at load) as dates."""
    return {date.fromisoformat(h) for h in holidays}


def is_trading_day(day: date, holidays: Iterable[date]) -> bool:
    """A weekday that is not one of the configured holidays."""
    return day.weekday() < 5 and day not in set(holidays)


def is_open(moment: datetime, holidays: Iterable[date]) -> bool:
    """True during the regular session."""
    local = moment.astimezone(IST)
    return is_trading_day(local.date(), holidays) and OPEN_AT <= local.time() < CLOSE_AT


def next_open(moment: datetime, holidays: Iterable[date]) -> datetime:
    """The start of the next regular session at or after `moment` (aware, Asia/Kolkata)."""
    days = set(holidays)
    local = moment.astimezone(IST)
    day = local.date()
    if local.time() >= OPEN_AT:
        day += timedelta(days=1)
    for _ in range(60):  # a stretch of holidays this long is a config mistake
        if is_trading_day(day, days):
            return datetime.combine(day, OPEN_AT, tzinfo=IST)
        day += timedelta(days=1)
    raise ValueError("no NSE trading day within 60 days: check kite.holidays")


def session_expiry(login: datetime) -> datetime:
    """When a Kite access token obtained at `login` stops working: 06:00 IST after it (UTC)."""
    local = login.astimezone(IST)
    six = local.replace(hour=6, minute=0, second=0, microsecond=0)
    if local >= six:
        six += timedelta(days=1)
    return six.astimezone(UTC)
