"""The orders whose fate is not settled yet, read from a checkpoint plus what came after it.

An order is unsettled while its latest `order_events` row (by seq) is not a terminal event,
or while it has no event at all (an intent whose reply is unknown may be live). The risk
limits count them (`risk.pending`, which also treats a terminal ccxt status as settled) and
`trade recover` asks the exchange about them. Finding them meant grouping every order and
every event (80 ms of CPU at 100,000 orders, twice per order). A chained `risk.open_orders`
control event records, through a seq, the unsettled orders with their latest state; a reader
groups only the rows after that seq and merges. An order settled before the checkpoint that
gets a later event (rare) is read again in full, so the answer is what a full scan gives.
One case differs, on the safe side: a second intent row for an order settled before the
checkpoint (vhc writes an intent once: `orders._check_client_id_unused`, `emergency.adopt`)
counts as unsettled until an event settles it. A checkpoint that cannot be read is ignored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from ccxtkit.ledger.store import Ledger

from . import checkpoints
from .pending import TERMINAL_EVENTS, TERMINAL_STATUSES, sql_in

CHECKPOINT_KIND = "risk.open_orders"
#: `orders` plus `order_events` rows after the latest checkpoint before a writer records one.
CHECKPOINT_EVERY = 1_000

_LATEST = """
SELECT exchange, client_order_id, arg_max(event, seq) AS event, arg_max(status, seq) AS status,
       arg_max(filled, CASE WHEN filled IS NULL THEN 0 ELSE seq END) AS filled,
       arg_max(order_id, CASE WHEN order_id IS NULL THEN 0 ELSE seq END) AS order_id
FROM order_events WHERE {where} GROUP BY exchange, client_order_id
"""
_FIRST = """
SELECT exchange, client_order_id, min(seq) AS seq, arg_min(timestamp, seq) AS timestamp,
       arg_min(symbol, seq) AS symbol, arg_min(side, seq) AS side, arg_min(type, seq) AS type,
       arg_min(amount, seq) AS amount, arg_min(price, seq) AS price,
       arg_min(strategy, seq) AS strategy
FROM orders WHERE {where} GROUP BY exchange, client_order_id
"""
_TERMINAL = sql_in(TERMINAL_EVENTS)
#: Orders placed after the seq that are still unsettled (or whose client id, $2, the checkpoint
#: holds), and the latest events after the seq of orders placed before it (o.* NULL): those
#: are merged with the checkpoint.
_SINCE_SQL = f"""
WITH o AS ({_FIRST.format(where="seq > $1")}), e AS ({_LATEST.format(where="seq > $1")})
SELECT coalesce(o.exchange, e.exchange), coalesce(o.client_order_id, e.client_order_id),
       o.seq, o.timestamp, o.symbol, o.side, o.type, o.amount, o.price, o.strategy,
       e.event, e.status, e.filled, e.order_id
FROM o FULL OUTER JOIN e USING (exchange, client_order_id)
WHERE o.client_order_id IS NULL OR e.event IS NULL OR lower(e.event) NOT IN {_TERMINAL}
   OR list_contains($2, o.client_order_id)
"""
#: One order's whole state (every row of it), for the rare order settled before a checkpoint.
_ONE_SQL = f"""
WITH o AS ({_FIRST.format(where="exchange = $1 AND client_order_id = $2")}),
     e AS ({_LATEST.format(where="exchange = $1 AND client_order_id = $2")})
SELECT o.exchange, o.client_order_id, o.seq, o.timestamp, o.symbol, o.side, o.type, o.amount,
       o.price, o.strategy, e.event, e.status, e.filled, e.order_id
FROM o LEFT JOIN e USING (exchange, client_order_id)
"""


@dataclass(frozen=True)
class OrderState:
    """An order as placed (its first `orders` row) and its latest recorded state."""

    exchange: str
    client_order_id: str
    seq: int
    timestamp: datetime
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal | None
    strategy: str | None
    event: str | None
    status: str | None
    filled: Decimal | None
    order_id: str | None

    @property
    def settled(self) -> bool:
        """Its latest event is terminal (filled, canceled, rejected, ...)."""
        return self.event is not None and self.event.lower() in TERMINAL_EVENTS

    @property
    def status_terminal(self) -> bool:
        """Its latest ccxt status says the exchange is done with it."""
        return (self.status or "").lower() in TERMINAL_STATUSES


def unsettled(ledger: Ledger) -> list[OrderState]:
    """Every unsettled order, oldest first (what a full scan of orders and events gives)."""
    # Read once per order's visits: its checks, its recovery scan and its triggers all ask.
    tables = ("orders", "order_events", "control_events")
    return list(ledger.remembered("risk.unsettled", tables, lambda: _unsettled(ledger)))


def _unsettled(ledger: Ledger) -> list[OrderState]:
    through, states = _checkpoint(ledger)
    held = sorted({cid for _, cid in states})  # a second intent row of theirs must be seen
    for row in ledger.query(_SINCE_SQL, [through, held]):
        key = (str(row[0]), str(row[1]))
        base = states.get(key)
        if row[2] is not None and base is None:  # placed after the checkpoint: all in the row
            states[key] = _state(row)
            continue
        if base is None or row[2] is not None:
            # Settled before the checkpoint, yet a later event came; or a second intent row
            # for an order the checkpoint holds: read all of it.
            whole = ledger.query(_ONE_SQL, list(key))
            if whole:
                states[key] = _state(whole[0])
            continue
        # arg_max skips NULL values: each field is its latest non-NULL one, as in a full scan.
        event, status, filled, order_id = row[10:14]
        states[key] = replace(
            base,
            event=base.event if event is None else event,
            status=base.status if status is None else status,
            filled=base.filled if filled is None else filled,
            order_id=base.order_id if order_id is None else order_id,
        )
    return sorted((s for s in states.values() if not s.settled), key=lambda s: s.seq)


def record_checkpoint_if_due(ledger: Ledger, every: int = CHECKPOINT_EVERY) -> int | None:
    """Record the unsettled orders once `every` order rows came after the last checkpoint."""
    through = _checkpoint(ledger)[0]
    since = ledger.query(
        "SELECT (SELECT count(*) FROM orders WHERE seq > $1) "
        "+ (SELECT count(*) FROM order_events WHERE seq > $1)",
        [through],
    )
    if int(since[0][0]) < every:
        return None
    head = ledger.head().seq
    rows = [_plain(s) for s in unsettled(ledger)]
    return ledger.record_event(CHECKPOINT_KIND, {"through_seq": head, "orders": rows})


def _state(row: tuple[Any, ...]) -> OrderState:
    return OrderState(
        exchange=str(row[0]),
        client_order_id=str(row[1]),
        seq=int(row[2]),
        timestamp=row[3],
        symbol=str(row[4]),
        side=str(row[5]),
        type=str(row[6]),
        amount=row[7],
        price=row[8],
        strategy=row[9],
        event=row[10],
        status=row[11],
        filled=row[12],
        order_id=row[13],
    )


def _plain(state: OrderState) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in asdict(state).items():
        if isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        out[key] = value
    return out


def _from_plain(data: dict[str, Any]) -> OrderState:
    def dec(key: str) -> Decimal | None:
        return None if data[key] is None else Decimal(data[key])

    amount = dec("amount")
    if amount is None:
        raise ValueError("an order without an amount")
    return OrderState(
        exchange=str(data["exchange"]),
        client_order_id=str(data["client_order_id"]),
        seq=int(data["seq"]),
        timestamp=datetime.fromisoformat(data["timestamp"]),
        symbol=str(data["symbol"]),
        side=str(data["side"]),
        type=str(data["type"]),
        amount=amount,
        price=dec("price"),
        strategy=data["strategy"],
        event=data["event"],
        status=data["status"],
        filled=dec("filled"),
        order_id=data["order_id"],
    )


def _checkpoint(ledger: Ledger) -> tuple[int, dict[tuple[str, str], OrderState]]:
    found = checkpoints.latest(ledger, CHECKPOINT_KIND, _states_of)
    return found if found is not None else (0, {})


def _states_of(data: dict[str, Any]) -> dict[tuple[str, str], OrderState]:
    states = [_from_plain(d) for d in data["orders"]]
    return {(s.exchange, s.client_order_id): s for s in states}
