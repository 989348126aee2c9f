"""The `kite:` block of an account: what it accepts, and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ccxtkit.config import parse_config
from ccxtkit.errors import ConfigError
from ccxtkit.exchanges import kite_hours


def config(account: str) -> str:
    return f"version: '1.0'\nexchanges:\n  zerodha:\n{account}"


def test_kite_block_loads_on_a_kite_account():
    cfg = parse_config(config(
        "    id: kite\n    kite:\n      root: http://127.0.0.1:1\n      product: MIS\n"
        "      holidays: [2026-12-25]\n      inr_per_usd: 83.2\n"
    ))  # fmt: skip
    kite = cfg.exchange("zerodha").kite
    assert kite.root == "http://127.0.0.1:1" and kite.product == "MIS"
    assert kite.holidays == ["2026-12-25"] and str(kite.inr_per_usd) == "83.2"


@pytest.mark.parametrize(
    "account, message",
    [
        ("    id: kraken\n    kite:\n      product: MIS\n", "for `id: kite` accounts"),
        ("    id: kite\n    kite:\n      holidays: [christmas]\n", "is not a date"),
        ("    id: kite\n    kite:\n      product: BO\n", "product"),
        ("    id: kite\n    kite:\n      inr_per_usd: 0\n", "inr_per_usd"),
        ("    id: kite\n    kite:\n      rooot: x\n", "rooot"),
    ],
)
def test_kite_block_refuses_what_would_mislead(account, message):
    with pytest.raises(ConfigError) as err:
        parse_config(config(account))
    assert message in err.value.message


def ist(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=kite_hours.IST)


def test_market_hours_and_the_next_open():
    holidays = kite_hours.holiday_dates(["2026-12-25"])
    assert kite_hours.is_open(ist("2026-12-01 09:15"), holidays)
    assert not kite_hours.is_open(ist("2026-12-01 15:30"), holidays)
    assert not kite_hours.is_open(ist("2026-12-05 11:00"), holidays)  # a Saturday
    # Thursday 24th after the close: Friday 25th is a holiday, then the weekend: Monday 28th.
    assert kite_hours.next_open(ist("2026-12-24 16:00"), holidays) == ist("2026-12-28 09:15")
    assert kite_hours.next_open(ist("2026-12-01 08:00"), holidays) == ist("2026-12-01 09:15")
    # Sessions end 06:00 IST after the login.
    assert kite_hours.session_expiry(ist("2026-12-01 05:00")) == ist("2026-12-01 06:00")
    assert kite_hours.session_expiry(ist("2026-12-01 10:00")).astimezone(UTC) == datetime(
        2026, 12, 2, 0, 30, tzinfo=UTC
    )
