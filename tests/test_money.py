"""money.py: the one doorway for numbers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ccxtkit.errors import InputError
from ccxtkit.money import fmt, to_decimal, to_ledger_decimal


def test_floats_go_through_str() -> None:
    # Decimal(0.1) would be 0.1000000000000000055511151231257827...
    assert to_decimal(0.1) == Decimal("0.1")
    assert str(to_decimal(101234.5)) == "101234.5"
    assert to_decimal("  3.12 ") == Decimal("3.12")
    assert to_decimal(7) == Decimal(7)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "NaN", "Infinity"])
def test_non_finite_rejected(bad: object) -> None:
    with pytest.raises(InputError, match="finite"):
        to_decimal(bad, "price")


@pytest.mark.parametrize("bad", [True, False, None, [1], "1,000", "abc", ""])
def test_non_numbers_rejected(bad: object) -> None:
    with pytest.raises(InputError, match="price"):
        to_decimal(bad, "price")


def test_ledger_decimal_limits() -> None:
    assert to_ledger_decimal("0.123456789012345678") == Decimal("0.123456789012345678")
    biggest = "99999999999999999999.999999999999999999"  # 20 + 18 digits: DECIMAL(38,18)
    assert to_ledger_decimal(biggest) == Decimal(biggest)
    assert to_ledger_decimal("-" + biggest) == Decimal("-" + biggest)
    # Beyond the default 28-digit Decimal context: must neither crash nor round.
    assert to_ledger_decimal("12345678901.123") == Decimal("12345678901.123")
    with pytest.raises(InputError, match="more than 18 decimal places"):
        to_ledger_decimal("0.1234567890123456789")
    with pytest.raises(InputError, match="too large"):
        to_ledger_decimal("100000000000000000000")  # 21 integer digits
    with pytest.raises(InputError, match="too large"):
        to_ledger_decimal("-123456789012345678901.5")


def test_fmt_plain() -> None:
    assert fmt(Decimal("1E+3")) == "1000"
    assert fmt(Decimal("0.500000000000000000")) == "0.5"
    assert fmt(Decimal("-0E-18")) == "0"
