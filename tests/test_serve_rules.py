"""The pure parts of `vhc serve`: token buckets, durations, roles, the token record check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccxtkit.errors import TokenError, UsageError
from ccxtkit.serve.ratelimit import RateLimiter
from ccxtkit.serve.requests import ApiError, field, parse_json_object, status_of
from ccxtkit.serve.tokens import TokenRecord, check_recorded, parse_role, parse_ttl, role_allows

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    limiter = RateLimiter(Decimal("2"), 3)
    assert [limiter.take("a", 0.0) for _ in range(3)] == [None, None, None]
    wait = limiter.take("a", 0.0)
    assert wait == pytest.approx(0.5)
    assert limiter.take("a", 0.49) is not None
    assert limiter.take("a", 0.51) is None  # one refilled after half a second
    assert limiter.take("b", 0.51) is None  # another key has its own bucket
    # Never more than the burst, however long it was idle.
    assert [limiter.take("a", 1000.0) for _ in range(4)][-1] is not None


@given(st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=200))
def test_bucket_never_allows_more_than_burst_plus_rate_times_time(gaps: list[float]) -> None:
    limiter = RateLimiter(5, 4)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += limiter.take("k", now) is None
    assert allowed <= 4 + 5 * now + 1e-9


def test_bucket_table_stays_bounded() -> None:
    limiter = RateLimiter(1, 1)
    limiter.MAX_KEYS = 10
    for i in range(100):
        limiter.take(f"k{i}", float(i))
    assert len(limiter._buckets) <= 10


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * 86400), ("12h", 43200), ("90m", 5400), ("2w", 14 * 86400), ("1d12h", 129600)],
)
def test_ttl_spellings(text: str, seconds: int) -> None:
    assert parse_ttl(text, 365) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "30", "d", "30x", "-1d", "30d junk", "30s", "366d"])
def test_bad_ttls_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--ttl"):
        parse_ttl(text, 365)


def test_roles_are_ordered() -> None:
    assert parse_role(" Admin ") == "admin"
    with pytest.raises(UsageError):
        parse_role("root")
    assert role_allows("admin", "trader") and role_allows("trader", "trader")
    assert not role_allows("viewer", "trader") and not role_allows("trader", "admin")
    assert not role_allows("root", "viewer")


def _record(**kw: object) -> TokenRecord:
    base: dict[str, object] = {
        "name": "ci",
        "role": "trader",
        "jti": "j1",
        "created_at": T0,
        "expires_at": T0 + timedelta(days=1),
    }
    return TokenRecord(**{**base, **kw})  # type: ignore[arg-type]


def test_a_token_must_match_its_record_and_be_active() -> None:
    claims = {"jti": "j1", "sub": "ci", "role": "trader"}
    assert check_recorded(claims, [_record()], T0).name == "ci"
    for table, words in [
        ([], "not on this ledger"),
        ([_record(role="viewer")], "not on this ledger"),  # a role changed in the claims
        ([_record(name="other")], "not on this ledger"),
        ([_record(revoked_at=T0)], "revoked"),
        ([_record(expires_at=T0)], "expired"),  # at its expiry it is expired
        ([_record(revoked_at=T0, expires_at=T0)], "revoked"),
    ]:
        with pytest.raises(TokenError, match=words):
            check_recorded(claims, table, T0)


def test_bodies_keep_numbers_as_text_and_refuse_wrong_types() -> None:
    doc = parse_json_object(b'{"amount": 0.1, "n": 10, "s": "x", "b": true}')
    assert field(doc, "amount", number=True) == "0.1"  # never through a float
    assert field(doc, "s") == "x"
    for name, number in [("amount", False), ("b", True), ("b", False)]:
        with pytest.raises(ApiError) as info:
            field(doc, name, number=number)
        assert info.value.status == 422
    with pytest.raises(ApiError) as info:
        parse_json_object(b"{")
    assert info.value.status == 400


def test_error_classes_map_to_statuses() -> None:
    from ccxtkit import errors

    assert status_of(errors.TokenError("x")) == (401, "UNAUTHORIZED")
    assert status_of(errors.RiskLimitError("x"))[0] == 403
    assert status_of(errors.KillSwitchActiveError("x"))[0] == 503
    assert status_of(errors.LedgerBusyError("x"))[0] == 503
    assert status_of(errors.InputError("x"))[0] == 422
    assert status_of(errors.OrderOutcomeUnknown("x"))[0] == 502
