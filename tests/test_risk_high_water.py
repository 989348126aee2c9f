"""The high-water mark from a chained checkpoint plus the batches after it equals the mark
walked over the whole history, including after a backfill that predates the checkpoint."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from ccxtkit.ledger.store import Ledger, open_ledger
from ccxtkit.ledger.verify import verify_chain
from ccxtkit.risk.high_water import CHECKPOINT_KIND, record_checkpoint_if_due, snapshot_high

T0 = datetime(2024, 3, 1)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(tmp_path / "l.duckdb") as led:
        yield led


def brute_high(ledger: Ledger) -> D | None:
    """The rule, spelled out with no shortcut: for each snapshot time, every exchange's latest
    batch at or before it valued as of its own time, plus the net flows after it."""

    def price(asset: str, at: datetime) -> D | None:
        if asset in ("USD", "USDT", "USDC"):
            return D(1)
        rows = ledger.query(
            "SELECT price FROM prices WHERE asset = ? AND upper(quote) IN ('USD','USDT','USDC') "
            "AND timestamp <= ? ORDER BY timestamp DESC, seq DESC LIMIT 1",
            [asset, at],
        )
        return rows[0][0] if rows else None

    def usd(asset: str, amount: D, at: datetime) -> D:
        p = price(asset, at)
        return amount * p if p is not None else D(0)

    snaps = ledger.query("SELECT timestamp, exchange, asset, total FROM balance_snapshots")
    flows = [
        (ts, usd(a, amt if kind == "deposit" else -amt, ts))
        for ts, kind, a, amt in ledger.query(
            "SELECT timestamp, kind, asset, amount FROM transfers "
            "WHERE kind IN ('deposit', 'withdrawal')"
        )
    ]
    times = sorted({ts for ts, *_ in snaps})
    if not times:
        return None
    marks = []
    for t in times:
        value = D(0)
        for exchange in {e for _, e, *_ in snaps}:
            stamps = [ts for ts, e, *_ in snaps if e == exchange and ts <= t]
            if stamps:
                last = max(stamps)
                value += sum(
                    (usd(a, tot, last) for ts, e, a, tot in snaps if e == exchange and ts == last),
                    D(0),
                )
        marks.append(value + sum((f for ts, f in flows if ts > t), D(0)))
    return max(marks)


def add_history(ledger: Ledger, rng: random.Random, start: datetime, steps: int) -> None:
    for step in range(steps):
        at = start + timedelta(hours=step)
        if rng.random() < 0.5:
            price = D(rng.randint(20_000, 80_000))
            ledger.append("prices", [_price("BTC", at, price)])
        for exchange in rng.sample(["kraken", "paper"], rng.randint(1, 2)):
            btc, usd = D(rng.randint(0, 300)) / 100, D(rng.randint(0, 90_000))
            ledger.append(
                "balance_snapshots",
                [_snap(at, exchange, "BTC", btc), _snap(at, exchange, "USD", usd)],
            )
        if rng.random() < 0.2:
            kind = rng.choice(["deposit", "withdrawal"])
            ledger.append("transfers", [_transfer(at + timedelta(minutes=30), kind)])


def _price(asset: str, at: datetime, price: D) -> dict:
    return {"timestamp": at, "asset": asset, "quote": "USD", "price": price, "source": "test"}


def _snap(at: datetime, exchange: str, asset: str, total: D) -> dict:
    return {
        "timestamp": at,
        "exchange": exchange,
        "asset": asset,
        "free": total,
        "used": D(0),
        "total": total,
        "source": "test",
    }


def _transfer(at: datetime, kind: str) -> dict:
    return {
        "timestamp": at,
        "exchange": "kraken",
        "kind": kind,
        "asset": "USD",
        "amount": D(5_000),
        "source": "test",
        "status": "ok",
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_checkpoint_plus_later_batches_equals_the_whole_walk(ledger: Ledger, seed: int) -> None:
    rng = random.Random(seed)
    add_history(ledger, rng, T0, 40)
    before = snapshot_high(ledger)
    assert before == brute_high(ledger)
    assert record_checkpoint_if_due(ledger, every=10**6) is None  # not due
    assert record_checkpoint_if_due(ledger, every=1) is not None
    assert snapshot_high(ledger) == before  # the checkpoint alone gives the same mark
    add_history(ledger, rng, T0 + timedelta(days=30), 30)  # after the checkpoint's time
    assert snapshot_high(ledger) == brute_high(ledger)
    assert verify_chain(ledger).ok


def test_a_backfill_older_than_the_checkpoint_is_not_missed(ledger: Ledger) -> None:
    rng = random.Random(7)
    add_history(ledger, rng, T0, 30)
    assert record_checkpoint_if_due(ledger, every=1) is not None
    # A huge balance imported afterwards but stamped in the checkpoint's past: a new high.
    ledger.append(
        "balance_snapshots", [_snap(T0 + timedelta(hours=3, minutes=5), "x", "USD", D(10**7))]
    )
    high = snapshot_high(ledger)
    assert high == brute_high(ledger) and high is not None and high > D(10**7)
    # The same for a price and for a withdrawal stamped in the past.
    ledger.append("prices", [_price("BTC", T0 + timedelta(hours=2, minutes=1), D(10**6))])
    assert snapshot_high(ledger) == brute_high(ledger)
    ledger.append("transfers", [_transfer(T0 + timedelta(hours=1, minutes=1), "withdrawal")])
    assert snapshot_high(ledger) == brute_high(ledger)


def test_an_unusable_checkpoint_is_ignored(ledger: Ledger) -> None:
    add_history(ledger, random.Random(3), T0, 20)
    expected = brute_high(ledger)
    ledger.record_event(CHECKPOINT_KIND, {"through_seq": 1, "at": "not a time"})
    assert snapshot_high(ledger) == expected
    ledger.record_event(
        CHECKPOINT_KIND,
        {"through_seq": 10**9, "at": T0.isoformat(), "latest": {}, "best": "1", "upto": "0"},
    )
    assert snapshot_high(ledger) == expected


def test_no_snapshot_no_mark(ledger: Ledger) -> None:
    assert snapshot_high(ledger) is None
    assert record_checkpoint_if_due(ledger, every=0) is None
