"""Unsettled orders from a checkpoint plus later rows equal a full scan, whatever happens."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from ccxtkit.ledger.store import Ledger, open_ledger
from ccxtkit.risk.open_orders import CHECKPOINT_KIND, record_checkpoint_if_due, unsettled
from ccxtkit.trading.recording import pending_orders

T0 = datetime(2025, 6, 1)
EVENTS = ["open", "partially_filled", "unknown", "filled", "canceled", "rejected", "not_found"]
TERMINAL = {"filled", "canceled", "rejected", "failed", "expired", "not_found"}

#: The rule as one query over every row (the query vhc used before the checkpoints).
FULL_SQL = """
WITH latest AS (
    SELECT exchange, client_order_id, arg_max(event, seq) AS event,
           arg_max(status, seq) AS status,
           arg_max(filled, CASE WHEN filled IS NULL THEN 0 ELSE seq END) AS filled,
           arg_max(order_id, CASE WHEN order_id IS NULL THEN 0 ELSE seq END) AS order_id
    FROM order_events GROUP BY exchange, client_order_id
),
o AS (
    SELECT exchange, client_order_id, min(seq) AS seq, arg_min(symbol, seq) AS symbol,
           arg_min(amount, seq) AS amount
    FROM orders GROUP BY exchange, client_order_id
)
SELECT o.exchange, o.client_order_id, o.symbol, o.amount, e.event, e.status, e.filled,
       e.order_id
FROM o LEFT JOIN latest e USING (exchange, client_order_id)
WHERE e.event IS NULL OR lower(e.event) NOT IN
      ('filled', 'canceled', 'rejected', 'failed', 'expired', 'not_found')
ORDER BY o.seq
"""


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(tmp_path / "l.duckdb") as led:
        yield led


def seen(ledger: Ledger) -> list[tuple]:
    return [
        (s.exchange, s.client_order_id, s.symbol, s.amount, s.event, s.status, s.filled, s.order_id)
        for s in unsettled(ledger)
    ]


def _order(cid: str, exchange: str, at: datetime) -> dict:
    return {
        "timestamp": at,
        "client_order_id": cid,
        "exchange": exchange,
        "symbol": "BTC/USD",
        "side": "buy",
        "type": "limit",
        "amount": D("0.5"),
        "price": D("1000"),
        "source": "test",
        "live": False,
    }


def _event(cid: str, exchange: str, at: datetime, event: str, rng: random.Random) -> dict:
    return {
        "timestamp": at,
        "client_order_id": cid,
        "exchange": exchange,
        "event": event,
        "status": rng.choice([None, "open", "closed", "canceled"]),
        "order_id": rng.choice([None, f"X-{cid[:6]}"]),
        "filled": rng.choice([None, D("0.1"), D("0.5")]),
    }


@pytest.mark.parametrize("seed", range(6))
def test_checkpoints_never_change_the_answer(ledger: Ledger, seed: int) -> None:
    rng = random.Random(seed)
    known: list[tuple[str, str]] = []
    at = T0
    for step in range(400):
        at += timedelta(seconds=30)
        roll = rng.random()
        if roll < 0.3 or not known:
            key = (rng.choice(["kraken", "paper"]), str(uuid.UUID(int=rng.getrandbits(128))))
            known.append(key)
            ledger.append("orders", [_order(key[1], key[0], at)])
        elif roll < 0.9:
            # Any order, even one long settled, may get another event (a late recovery).
            exchange, cid = rng.choice(known[-40:] if rng.random() < 0.8 else known)
            ledger.append("order_events", [_event(cid, exchange, at, rng.choice(EVENTS), rng)])
        elif roll < 0.95:
            record_checkpoint_if_due(ledger, every=rng.randint(1, 30))
        else:
            # A repeated intent row (vhc never writes one) for an order still in flight.
            open_now = [(r[0], r[1]) for r in ledger.query(FULL_SQL) if r[4] is None]
            if open_now:
                exchange, cid = rng.choice(open_now)
                ledger.append("orders", [_order(cid, exchange, at)])
        if step % 25 == 0:
            assert seen(ledger) == ledger.query(FULL_SQL), step
    assert seen(ledger) == ledger.query(FULL_SQL)
    marks = ledger.query("SELECT count(*) FROM control_events WHERE kind = ?", [CHECKPOINT_KIND])
    assert marks[0][0] > 0  # the run did go through checkpoints


def test_recover_and_limits_read_the_same_orders(ledger: Ledger) -> None:
    rng = random.Random(1)
    ledger.append("orders", [_order("a", "kraken", T0), _order("b", "paper", T0)])
    record_checkpoint_if_due(ledger, every=1)
    ledger.append("order_events", [_event("a", "kraken", T0, "filled", rng)])
    assert [p["client_order_id"] for p in pending_orders(ledger)] == ["b"]
    assert pending_orders(ledger, "kraken") == []
    assert all(s.event is None or s.event.lower() not in TERMINAL for s in unsettled(ledger))


def test_an_unreadable_checkpoint_is_ignored(ledger: Ledger) -> None:
    ledger.append("orders", [_order("a", "kraken", T0)])
    ledger.record_event(CHECKPOINT_KIND, {"through_seq": 1, "orders": [{"exchange": "x"}]})
    assert [s.client_order_id for s in unsettled(ledger)] == ["a"]


def test_a_second_intent_row_of_a_settled_order_counts_until_settled(ledger: Ledger) -> None:
    """The one case that differs from a full scan, and it errs on the side of counting."""
    rng = random.Random(2)
    ledger.append("orders", [_order("a", "kraken", T0)])
    ledger.append("order_events", [_event("a", "kraken", T0, "filled", rng)])
    record_checkpoint_if_due(ledger, every=1)
    ledger.append("orders", [_order("a", "kraken", T0 + timedelta(minutes=1))])
    assert [s.client_order_id for s in unsettled(ledger)] == ["a"]
    ledger.append("order_events", [_event("a", "kraken", T0, "canceled", rng)])
    assert unsettled(ledger) == []
