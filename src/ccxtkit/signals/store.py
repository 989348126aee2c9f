"""The signal queue's rows in the ledger: `signals` (one per accepted signal) and `signal_events`.

Nothing is updated in place. A signal's state is its latest event's status; every step
(received, parsed, intent, checked, sent, outcome, retry, dead, dropped, requeued, replied)
is one chained `signal_events` row. Statuses:

- queued: accepted, waiting for a worker (or put back by `vhc signals retry`);
- working: a worker recorded an intent (attempt N, client order id) and is placing it; a
  signal left `working` by a crash is resolved by the next worker through its client order id;
- retry: the last attempt failed on the exchange or the network; due at `next_attempt_at`;
- unknown: the order's fate could not be read; resolved (never resent blindly) when due;
- executed: the order reached the exchange (its own state is in `orders`/`order_events`);
- refused: a risk limit or the kill switch refused it (never retried automatically);
- dead: the dead letter: out of attempts, or an error no retry can fix (see its reason);
- dropped: a person dropped it (`vhc signals drop`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..ledger.chain import now_utc, utc_naive
from ..ledger.store import Ledger

STATUSES = (
    "queued",
    "working",
    "retry",
    "unknown",
    "executed",
    "refused",
    "dead",
    "dropped",
)
#: Statuses a worker picks up (when due).
ACTIVE = ("queued", "working", "retry", "unknown")
#: Statuses after which a worker never touches the signal again.
FINAL = ("executed", "refused", "dead", "dropped")

_SIGNAL_NS = uuid.UUID("6f1c1e4e-6d1a-4f57-9a53-3c2b8f0d7a10")
_ORDER_NS = uuid.UUID("0b7e4a52-2f0e-4d0c-8b8e-5d3f6c1a9e21")


def signal_id_for(source: str, external_id: str) -> str:
    """The queue's id of a signal: the same for every delivery of one sender id."""
    return str(uuid.uuid5(_SIGNAL_NS, f"{source}\0{external_id}"))


def client_order_id_for(signal_id: str, attempt: int) -> str:
    """The client order id of attempt N: derived, so a crash never makes a second one."""
    return str(uuid.uuid5(_ORDER_NS, f"{signal_id}#{attempt}"))


def event_row(
    signal_id: str,
    event: str,
    status: str | None = None,
    *,
    attempt: int | None = None,
    client_order_id: str | None = None,
    next_attempt_at: datetime | None = None,
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One `signal_events` row, to append."""
    return {
        "timestamp": now or now_utc(),
        "signal_id": signal_id,
        "event": event,
        "status": status,
        "attempt": attempt,
        "client_order_id": client_order_id,
        "next_attempt_at": next_attempt_at,
        "details": json.dumps(dict(details or {}), sort_keys=True, default=str),
    }


def add_event(
    ledger: Ledger, signal_id: str, event: str, status: str | None = None, **kw: Any
) -> int:
    """Append one `signal_events` row (see `event_row`); returns its seq."""
    return ledger.append("signal_events", [event_row(signal_id, event, status, **kw)])[0]


def first_answers(ledger: Ledger, signal_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The first answer of each of these signals that was accepted before."""
    unique = list(dict.fromkeys(signal_ids))
    if not unique:
        return {}
    marks = ", ".join("?" for _ in unique)
    rows = ledger.query(
        f"SELECT signal_id, arg_min(answer, seq) FROM signals WHERE signal_id IN ({marks}) "
        "GROUP BY signal_id",
        unique,
    )
    return {str(sid): json.loads(answer) for sid, answer in rows}


def first_answer(ledger: Ledger, signal_id: str) -> dict[str, Any] | None:
    """The answer the first (accepted) delivery of this signal got, or None if never seen."""
    rows = ledger.query(
        "SELECT answer FROM signals WHERE signal_id = ? ORDER BY seq LIMIT 1", [signal_id]
    )
    if not rows:
        return None
    answer: dict[str, Any] = json.loads(rows[0][0])
    return answer


#: Per signal: its latest status (and when it is due), from one grouped pass (no sort).
_LAST_SQL = """
SELECT signal_id, arg_max(status, seq) AS status,
       arg_max_null(next_attempt_at, seq) AS next_attempt_at,
       arg_max_null(details, seq) AS details
FROM signal_events WHERE status IS NOT NULL GROUP BY signal_id
"""

#: The attempt numbers that matter, and when the signal last changed.
_EV_SQL = """
SELECT signal_id,
       max(CASE WHEN event = 'intent' THEN attempt END) AS attempt,
       max(CASE WHEN event = 'outcome' THEN attempt END) AS resolved_attempt,
       max(CASE WHEN event = 'requeued' THEN attempt END) AS base_attempt,
       max(CASE WHEN event = 'requeued' THEN timestamp END) AS requeued_at,
       max(timestamp) AS updated_at
FROM signal_events {where} GROUP BY signal_id
"""

_COLUMNS = """
SELECT s.signal_id, s.timestamp, s.source, s.kind, s.external_id, s.signal_time, s.exchange,
       s.symbol, s.side, s.type, s.amount, s.price, s.product, s.chat_id, s.message_id,
       last.status, last.next_attempt_at, coalesce(ev.attempt, 0) AS attempt,
       coalesce(ev.resolved_attempt, 0) AS resolved_attempt,
       coalesce(ev.base_attempt, 0) AS base_attempt, ev.requeued_at, last.details, ev.updated_at,
       s.seq
"""

#: Per signal: the latest status, next_attempt_at and attempt numbers that matter.
_STATE_SQL = f"""
WITH last AS ({_LAST_SQL}), ev AS ({_EV_SQL.format(where="")})
{_COLUMNS}
FROM signals s JOIN ev USING (signal_id) JOIN last USING (signal_id)
"""


def states(
    ledger: Ledger,
    status: str | None = None,
    signal_id: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Every signal with its current state, oldest first (filtered by status or id)."""
    clauses, params = [], []
    if status is not None:
        clauses.append("last.status = ?")
        params.append(status)
    if signal_id is not None:
        clauses.append("s.signal_id = ?")
        params.append(signal_id)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    tail = f" LIMIT {int(limit)}" if limit is not None else ""
    return ledger.rows(_STATE_SQL + where + " ORDER BY s.seq" + tail, params)


def due(ledger: Ledger, now: datetime, limit: int | None = None) -> list[dict[str, Any]]:
    """Active signals whose next attempt is due, oldest first.

    The history of finished signals is read once, grouped (their latest status); only the
    due ones are joined to their rows and attempt numbers.
    """
    marks = ", ".join("?" for _ in ACTIVE)
    sql = f"""
WITH last AS (
    SELECT * FROM ({_LAST_SQL}) WHERE status IN ({marks})
    AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
), ev AS ({_EV_SQL.format(where="WHERE signal_id IN (SELECT signal_id FROM last)")})
{_COLUMNS}
FROM signals s JOIN ev USING (signal_id) JOIN last USING (signal_id) ORDER BY s.seq
""" + (f" LIMIT {int(limit)}" if limit is not None else "")
    return ledger.rows(sql, [*ACTIVE, utc_naive(now)])


def events(ledger: Ledger, signal_id: str) -> list[dict[str, Any]]:
    """One signal's events in order."""
    return ledger.rows(
        "SELECT seq, timestamp, event, status, attempt, client_order_id, next_attempt_at, "
        "details FROM signal_events WHERE signal_id = ? ORDER BY seq",
        [signal_id],
    )


def find(ledger: Ledger, ref: str) -> dict[str, Any] | None:
    """A signal by its queue id, or by a unique prefix of it."""
    rows = states(ledger, signal_id=ref)
    if rows:
        return rows[0]
    if len(ref) < 6:
        return None
    matches = [r for r in states(ledger) if str(r["signal_id"]).startswith(ref)]
    return matches[0] if len(matches) == 1 else None
