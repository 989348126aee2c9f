"""The withdrawal policy's pure rules, each at its boundary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from ccxtkit.errors import AuthorizationError, RiskLimitError
from ccxtkit.withdrawals.policy import (
    AllowedAddress,
    Policy,
    Sent,
    approvals_satisfied,
    check_cool_off,
    check_daily_limit,
    find_entry,
    is_expired,
    plan,
    window_total,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
POLICY = Policy(
    auto_approve_under=D("100"),
    auto_cap_usd=D("250"),
    two_approvals_over=D("1000"),
    time_lock=None,
    daily_limit_usd=D("5000"),
    new_address_delay=24 * H,
    ttl=24 * H,
)
ENTRY = AllowedAddress("USDC", "0xabc", "ERC20", None, T0)


def test_allowlist_matches_asset_address_and_network() -> None:
    entries = [ENTRY, AllowedAddress("USDC", "0xabc", "SOL", None, T0)]
    assert find_entry(entries, "usdc", "0xabc", "erc20") == ENTRY
    assert find_entry(entries, "USDC", "0xabc", "TRC20") is None  # network differs
    assert find_entry(entries, "USDT", "0xabc", "ERC20") is None  # asset differs
    assert find_entry(entries, "USDC", "0xABC", "ERC20") is None  # address is exact
    assert find_entry(entries, "USDC", "0xabc", None) is None  # two networks: must choose
    assert find_entry([ENTRY], "USDC", "0xabc", None) == ENTRY  # one: it is taken


def test_cool_off_ends_exactly_after_the_delay() -> None:
    with pytest.raises(AuthorizationError, match="usable only from 2025-03-02 12:00"):
        check_cool_off(ENTRY, POLICY, T0 + 24 * H - timedelta(microseconds=1))
    check_cool_off(ENTRY, POLICY, T0 + 24 * H)


def test_auto_approve_only_strictly_under_the_threshold() -> None:
    assert plan(POLICY, "USDC", D("99.99"), [], T0).approvals == 0
    assert plan(POLICY, "USDC", D("100"), [], T0).approvals == 1


def test_auto_approve_counts_against_the_rolling_daily_cap() -> None:
    history = [Sent("USDC", D("90"), T0 - H, auto=True), Sent("BTC", D("70"), T0 - H, auto=True)]
    assert plan(POLICY, "USDC", D("99.99"), history, T0).auto is False  # 160 + 99.99 > 250
    assert plan(POLICY, "USDC", D("100") - D("0.01"), history[:1], T0).auto  # 90 + 99.99 <= 250
    at_cap = plan(POLICY, "USDC", D("10"), [*history, Sent("ETH", D("80"), T0, auto=True)], T0)
    assert at_cap.auto  # 240 + 10 == 250: equal to the cap is allowed
    over = plan(POLICY, "USDC", D("10.01"), [*history, Sent("ETH", D("80"), T0, auto=True)], T0)
    assert not over.auto and "headroom 10 USD" in over.note
    # Manual withdrawals do not use the auto cap; a zero cap turns auto-approval off.
    assert plan(POLICY, "USDC", D("99"), [Sent("USDC", D("900"), T0)], T0).auto
    no_cap = Policy(auto_approve_under=D("100"), auto_cap_usd=D("0"))
    assert not plan(no_cap, "USDC", D("1"), [], T0).auto


def test_two_approvals_strictly_over_the_threshold() -> None:
    assert plan(POLICY, "USDC", D("1000"), [], T0).approvals == 1
    two = plan(POLICY, "USDC", D("1000.01"), [], T0)
    assert two.approvals == 2 and two.time_lock_until is None
    assert not approvals_satisfied(2, None, ["alice"], T0)
    assert not approvals_satisfied(2, None, ["alice", "alice"], T0)  # one person twice
    assert approvals_satisfied(2, None, ["alice", "bob"], T0)


def test_time_lock_lets_one_approver_through_after_the_lock() -> None:
    locked = Policy(two_approvals_over=D("1000"), time_lock=12 * H, ttl=24 * H)
    p = plan(locked, "USDC", D("5000"), [], T0)
    assert p.approvals == 2 and p.time_lock_until == T0 + 12 * H
    assert p.expires_at == T0 + 36 * H  # the time to live counts from the end of the lock
    assert not approvals_satisfied(2, p.time_lock_until, ["admin"], T0 + 12 * H - H / 3600)
    assert approvals_satisfied(2, p.time_lock_until, ["admin"], T0 + 12 * H)
    assert not approvals_satisfied(2, p.time_lock_until, [], T0 + 13 * H)  # still one needed


def test_rolling_daily_limit_per_asset_at_its_boundary() -> None:
    history = [
        Sent("USDC", D("3000"), T0 - 23 * H),
        Sent("USDC", D("1000"), T0 - 24 * H),  # exactly 24 h old: out of the window
        Sent("BTC", D("4000"), T0 - H),  # another asset
    ]
    assert window_total(history, T0, "USDC") == D("3000")
    check_daily_limit(POLICY, "USDC", D("2000"), history, T0)  # 5000 == limit: allowed
    with pytest.raises(RiskLimitError) as err:
        check_daily_limit(POLICY, "USDC", D("2000.01"), history, T0)
    msg = err.value.message
    assert "daily_limit_usd" in msg and "limit 5000 USD" in msg and "headroom 2000 USD" in msg
    with pytest.raises(RiskLimitError):
        plan(POLICY, "USDC", D("2000.01"), history, T0)  # the plan checks it too


def test_expiry_and_unpriced_assets() -> None:
    p = plan(POLICY, "USDC", D("500"), [], T0)
    assert p.expires_at == T0 + 24 * H
    assert not is_expired(p.expires_at, T0 + 24 * H - timedelta(seconds=1))
    assert is_expired(p.expires_at, T0 + 24 * H)
    with pytest.raises(RiskLimitError, match="no USD price for XYZ"):
        plan(POLICY, "XYZ", None, [], T0)
    assert plan(Policy(), "XYZ", None, [], T0).approvals == 1  # no USD rule: one approval
