"""Pure reconciliation rules: dates, matching, fees from the exchange's ledger, balance statuses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from ccxtkit.errors import UsageError
from ccxtkit.exchanges.base import LedgerEntry, Trade, Transfer
from ccxtkit.exchanges.fees import apply_ledger_fees
from ccxtkit.reconcile.dates import resolve_period
from ccxtkit.reconcile.matching import (
    LedgerTrade,
    LedgerTransfer,
    assert_balances,
    match_trades,
    match_transfers,
)

NOW = datetime(2025, 1, 23, 15, 0, tzinfo=UTC)
SINCE, UNTIL = datetime(2025, 1, 23, tzinfo=UTC), datetime(2025, 1, 24, tzinfo=UTC)
T0 = datetime(2025, 1, 23, 12, 0, tzinfo=UTC)


def trade(tid: str, amount: str = "0.1", price: str = "100", fee: str = "0.1",
          cur: str | None = "USD", when: datetime = T0) -> Trade:  # fmt: skip
    a, p = D(amount), D(price)
    return Trade(tid, "O1", "BTC/USD", "buy", a, p, a * p, D(fee), cur, when)


def ltrade(tid: str, amount: str = "0.1", price: str = "100", fee: str = "0.1",
           cur: str | None = "USD", when: datetime = T0) -> LedgerTrade:  # fmt: skip
    a, p = D(amount), D(price)
    return LedgerTrade(tid, when, "BTC/USD", "buy", a, p, a * p, D(fee), cur)


def xfer(tid: str, kind: str, amount: str, status: str = "ok") -> Transfer:
    return Transfer(tid, kind, "BTC", D(amount), D("0.0001"), "BTC", status, T0, txid="tx" + tid)


def lxfer(tid: str, kind: str, amount: str, when: datetime = T0) -> LedgerTransfer:
    return LedgerTransfer(tid, kind, "BTC", D(amount), D("0.0001"), "BTC", "tx" + tid, "ok", when)


# -- dates -------------------------------------------------------------------------------


def test_dates_are_calendar_days_in_the_configured_zone() -> None:
    p = resolve_period("2025-01-23", None, None, NOW, "America/New_York")
    assert p.since == datetime(2025, 1, 23, 5, tzinfo=UTC)
    assert p.until == datetime(2025, 1, 24, 5, tzinfo=UTC)
    assert p.label == "2025-01-23"
    # 03:00 UTC on the 24th is still the 23rd in New York: "today" is the 23rd.
    late = resolve_period(
        "today", None, None, datetime(2025, 1, 24, 3, tzinfo=UTC), "America/New_York"
    )
    assert late.first == date(2025, 1, 23)
    y = resolve_period("yesterday", None, None, NOW, "UTC")
    assert y.first == date(2025, 1, 22) and y.until - y.since == timedelta(days=1)


def test_dst_day_is_23_hours_and_range_label_names_both_ends() -> None:
    p = resolve_period(None, "2025-03-09", "2025-03-09", NOW, "America/New_York")
    assert p.until - p.since == timedelta(hours=23)
    r = resolve_period(None, "2025-01-01", "2025-01-23", NOW, "UTC")
    assert r.label == "2025-01-01_2025-01-23"
    assert r.since == datetime(2025, 1, 1, tzinfo=UTC) and r.until == datetime(
        2025, 1, 24, tzinfo=UTC
    )


def test_machine_zone_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        p = resolve_period("2025-01-23", None, None, NOW, None)
        assert p.since == datetime(2025, 1, 22, 15, tzinfo=UTC)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize(
    ("day", "start", "end", "words"),
    [
        ("2025-13-01", None, None, "not a date"),
        ("today", "2025-01-01", "2025-01-02", "not both"),
        (None, "2025-01-01", None, "go together"),
        (None, "2025-01-05", "2025-01-01", "before"),
    ],
)
def test_bad_dates_are_usage_errors(
    day: str | None, start: str | None, end: str | None, words: str
) -> None:
    with pytest.raises(UsageError, match=words):
        resolve_period(day, start, end, NOW, "UTC")


# -- trades ------------------------------------------------------------------------------


def test_trades_missing_phantom_mismatched_and_fee_mismatch() -> None:
    ex = [trade("T1"), trade("T2"), trade("T3", price="101"), trade("T4", fee="0.2")]
    led = [ltrade("T2"), ltrade("T3"), ltrade("T4"), ltrade("T9")]
    found = {f.ref: f for f in match_trades("k", ex, led, SINCE, UNTIL)}
    assert found["T1"].kind == "missing_trade" and found["T1"].trade == ex[0]
    assert dict(found["T1"].effect) == {"BTC": D("0.1"), "USD": D("-10.1")}
    assert (
        found["T3"].kind == "mismatched_trade" and "price 100 in ledger, 101" in found["T3"].detail
    )
    assert found["T4"].kind == "fee_mismatch" and dict(found["T4"].effect) == {"USD": D("-0.1")}
    assert found["T9"].kind == "phantom_trade"
    assert "T2" not in found


def test_ledger_trade_outside_the_range_satisfies_but_is_never_phantom() -> None:
    before = SINCE - timedelta(hours=1)
    found = match_trades("k", [trade("T1")], [ltrade("T1", when=before), ltrade("T0", when=before)],
                         SINCE, UNTIL)  # fmt: skip
    assert found == []


def test_tiny_float_noise_is_within_tolerance() -> None:
    ex = [trade("T1", amount="0.1000000000001")]
    assert match_trades("k", ex, [ltrade("T1")], SINCE, UNTIL) == []


def test_fee_in_a_third_currency_is_taken_from_the_exchange_ledger() -> None:
    t = trade("T1", fee="0.5", cur="USD")  # kraken labels every fee with the quote
    entries = [
        LedgerEntry("L1", "T1", "trade", "BTC", D("0.1"), D(0), T0),
        LedgerEntry("L2", "T1", "trade", "USD", D("-10"), D(0), T0),
        LedgerEntry("L3", "T1", "trade", "KFEE", D(0), D("0.5"), T0),
    ]
    (fixed,) = apply_ledger_fees([t], entries)
    assert fixed.fee_currency == "KFEE" and fixed.fee == D("0.5")
    # The ledger recorded it in USD: a fee mismatch that moves USD up and KFEE down.
    (f,) = match_trades("k", [fixed], [ltrade("T1", fee="0.5", cur="USD")], SINCE, UNTIL)
    assert f.kind == "fee_mismatch" and dict(f.effect) == {"KFEE": D("-0.5"), "USD": D("0.5")}
    checks = {c.asset: c for c in assert_balances(
        "k", {"USD": D(100), "KFEE": D(10)}, {"USD": D("100.5"), "KFEE": D("9.5")}, {}, D("0.01"),
        [f], True)}  # fmt: skip
    assert checks["USD"].status == "fee mismatch" and checks["KFEE"].status == "fee mismatch"


# -- transfers ---------------------------------------------------------------------------


def test_unknown_withdrawal_is_critical_and_says_so() -> None:
    (f,) = match_transfers("k", [xfer("W1", "withdrawal", "0.5")], [], SINCE, UNTIL)
    assert f.kind == "unknown_withdrawal" and f.severity == "critical"
    assert "UNAUTHORIZED" in f.detail and "most serious" in f.detail
    assert dict(f.effect) == {"BTC": D("-0.5001")}


def test_transfers_unknown_deposit_phantom_mismatch_and_failed() -> None:
    ex = [xfer("D1", "deposit", "1"), xfer("D2", "deposit", "2"), xfer("W3", "withdrawal", "1"),
          xfer("W4", "withdrawal", "1", status="failed"), xfer("D5", "deposit", "1", "pending")]  # fmt: skip
    led = [lxfer("D2", "deposit", "2.5"), lxfer("W3", "withdrawal", "1"),
           lxfer("W4", "withdrawal", "1"), lxfer("D9", "deposit", "3")]  # fmt: skip
    found = {f.ref: f for f in match_transfers("k", ex, led, SINCE, UNTIL)}
    assert found["D1"].kind == "unknown_deposit" and found["D1"].label == "missing deposit"
    assert found["D2"].kind == "mismatched_transfer"
    assert found["W4"].kind == "mismatched_transfer" and "failed" in found["W4"].detail
    assert found["D9"].kind == "phantom_transfer"
    assert "W3" not in found and "D5" not in found  # matched; pending deposit not yet credited


def test_transfer_matched_by_txid_when_ids_differ() -> None:
    t = xfer("W1", "withdrawal", "1")
    row = LedgerTransfer("REQ-7", "withdrawal", "BTC", D(1), D("0.0001"), "BTC", "txW1", "ok", T0)
    assert match_transfers("k", [t], [row], SINCE, UNTIL) == []


# -- balances ----------------------------------------------------------------------------


def test_balance_statuses_name_the_cause() -> None:
    (w,) = match_transfers("k", [xfer("W1", "withdrawal", "0.5")], [], SINCE, UNTIL)
    (d,) = match_transfers("k", [Transfer("D1", "deposit", "USD", D(25), None, None, "ok", T0)],
                           [], SINCE, UNTIL)  # fmt: skip
    checks = {c.asset: c for c in assert_balances(
        "k", {"BTC": D(1), "USD": D(10000), "ETH": D("2.5"), "SOL": D(3)},
        {"BTC": D("0.4999"), "USD": D(10025), "ETH": D("2.5"), "SOL": D(2)},
        {"BTC": D(50000), "SOL": D(100)}, D("0.01"), [w, d], True)}  # fmt: skip
    assert checks["BTC"].status == "unknown withdrawal" and not checks["BTC"].ok
    assert checks["BTC"].difference == D("-0.5001") and checks["BTC"].difference_usd == D("-25005")
    assert checks["USD"].status == "missing deposit" and checks["USD"].difference == D(25)
    assert checks["ETH"].ok and checks["ETH"].status == "OK"
    assert checks["SOL"].status == "unexplained difference"


def test_below_threshold_is_ok_and_unpriced_is_judged_in_units() -> None:
    checks = {c.asset: c for c in assert_balances(
        "k", {"USD": D("100"), "XYZ": D(1)}, {"USD": D("100.004"), "XYZ": D(2)}, {}, D("0.01"),
        [], False)}  # fmt: skip
    assert checks["USD"].ok and checks["USD"].status == "OK (within threshold)"
    assert not checks["XYZ"].ok and checks["XYZ"].difference_usd is None
    assert "no opening balance" in checks["XYZ"].status
