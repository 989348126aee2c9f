"""Executing queued signals: claim, record the intent, place the order once, record the outcome.

`work_once` is one pass (what `vhc signals work --once` runs from cron, and what each of
`vhc serve`'s workers runs in a loop). For each due signal it:

1. claims it: a non-blocking flock on `state/signals/<id>.lock`, taken while the ledger lock
   is held and kept until the outcome is recorded (the kernel drops it if the worker dies, so
   a crashed worker never leaves a signal stuck, and two workers never take the same one);
2. records `intent` (attempt N and its client order id, derived from the signal id and N)
   before anything is sent;
3. places the order with `trading.orders.place_order` under that client order id: the same
   risk checks, kill switch, order intent, send-once and lookup as `vhc trade`;
4. records `checked`, `sent` and `outcome` (or the failure, and when to try again).

A signal found with an intent but no outcome (a crash, a lost reply) is resolved through its
client order id, never resent blindly: no `orders` row means it was never sent (placed again
under the same id); an order the ledger does not know the fate of is looked up on the exchange
(`trading.recover`); only an order the exchange confirms absent gets a new attempt.

Exchange and network failures are retried with exponential backoff
(`signals.retry_base_seconds` doubling) up to `signals.max_attempts`, then the signal goes to
the dead letter (`dead`) with its reason. Risk-limit and kill-switch refusals are final
(`refused`), and so are errors no retry can fix (an unknown market). Telegram signals are
answered in their chat once final.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import (
    InputError,
    KillSwitchActiveError,
    LedgerBusyError,
    OrderOutcomeUnknown,
    RiskLimitError,
    VhcError,
)
from ..logs import log
from ..money import fmt
from ..workspace import Workspace
from . import store

#: Order events meaning the order reached the exchange (whatever became of it there).
_REACHED = frozenset({"sent", "open", "partially_filled", "filled", "canceled", "expired"})
#: Order events meaning it did not: the attempt failed and may be retried.
_NOT_PLACED = frozenset({"rejected", "failed", "not_found"})


@dataclass(frozen=True)
class WorkResult:
    """What one pass did with one signal."""

    signal_id: str
    status: str  # the signal's status after this pass (see signals.store)
    attempt: int
    client_order_id: str | None
    message: str
    order_id: str | None = None
    order_status: str | None = None
    next_attempt_at: datetime | None = None


def worker_count(ws: Workspace) -> int:
    """How many workers `vhc serve` runs (`signals.workers`)."""
    return ws.config.signals.workers


def lock_path(ws: Workspace, signal_id: str) -> Path:
    """The flock that marks a signal as being worked on by a live process."""
    safe = "".join(c if c.isalnum() or c == "-" else "_" for c in signal_id)
    return ws.state_dir / "signals" / f"{safe}.lock"


@contextmanager
def try_claim(ws: Workspace, signal_id: str) -> Iterator[bool]:
    """Hold the signal's flock for the block if no live process holds it; yields whether."""
    path = lock_path(ws, signal_id)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        if not _still_at(path, fd):
            # Locked a file its holder had just removed: a newer one may be held. Not ours.
            yield False
            return
        try:
            yield True
        finally:
            path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def _still_at(path: Path, fd: int) -> bool:
    """True when the locked file is the one now at `path` (not an unlinked predecessor)."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def work_once(
    ws: Workspace, limit: int | None = None, now: datetime | None = None
) -> list[WorkResult]:
    """One pass over the due signals (at most `limit`); returns what happened to each."""
    results: list[WorkResult] = []
    with ExitStack() as held:
        claimed = _claim(ws, held, limit, now or datetime.now(UTC))
        for row, attempt, fresh in claimed:
            try:
                results.append(_work(ws, row, attempt, fresh, now))
            except Exception as exc:  # one signal's trouble must not stop the others
                log.exception("signal %s: the pass failed", row["signal_id"])
                cid = store.client_order_id_for(row["signal_id"], attempt)
                message = exc.message if isinstance(exc, VhcError) else type(exc).__name__
                results.append(WorkResult(row["signal_id"], "working", attempt, cid, message))
    return results


def work_pass(ws: Workspace, limit: int | None = None) -> list[WorkResult]:
    """`vhc signals work --once`: one pass, the ledger kept open from one visit to the next.

    Each signal visits the ledger about six times; kept open (ledger/keeper.py) those visits
    cost no open and close. A `vhc serve` waiting for the ledger meanwhile makes the pass let go
    between two visits, as any waiting vhc process does.
    """
    from ..ledger import keeper

    path = ws.ledger_path
    kept_before = keeper.keeps(path)
    if not kept_before:
        keeper.keep(path)
    try:
        return work_once(ws, limit)
    finally:
        if not kept_before:
            keeper.release(path)


def _claim(
    ws: Workspace, held: ExitStack, limit: int | None, now: datetime
) -> list[tuple[dict[str, Any], int, bool]]:
    """Under the ledger lock: the due signals no live worker holds, each with its attempt.

    A new attempt's intent is recorded here, before the lock is let go. Returns (row, attempt,
    fresh): `fresh` False means the attempt's intent was recorded earlier (resolve it first).
    """
    out: list[tuple[dict[str, Any], int, bool]] = []
    with ws.open_ledger() as ledger, ledger.transaction():
        for row in store.due(ledger, now):
            if limit is not None and len(out) >= limit:
                break
            if not held.enter_context(try_claim(ws, row["signal_id"])):
                continue  # another worker has it
            if row["attempt"] > row["resolved_attempt"]:
                out.append((row, int(row["attempt"]), False))
                continue
            attempt = int(row["attempt"]) + 1
            store.add_event(
                ledger,
                row["signal_id"],
                "intent",
                "working",
                attempt=attempt,
                client_order_id=store.client_order_id_for(row["signal_id"], attempt),
                details={"exchange": row["exchange"]},
            )
            out.append((row, attempt, True))
    return out


def _work(
    ws: Workspace, row: dict[str, Any], attempt: int, fresh: bool, now: datetime | None
) -> WorkResult:
    signal_id = row["signal_id"]
    cid = store.client_order_id_for(signal_id, attempt)
    try:
        if not fresh:
            resumed = _resume(ws, row, attempt, cid)
            if resumed is not None:
                return resumed
        # Nothing was sent under this attempt: too old now, it is never sent.
        expired = _expired(ws, row, now or datetime.now(UTC))
        if expired is not None:
            return _failed(ws, row, attempt, cid, expired, retryable=False, code="expired")
        return _execute(ws, row, attempt, cid)
    except LedgerBusyError as exc:
        # Nothing decided: the intent stays, the next pass resolves it by its client order id.
        log.warning("signal %s: %s; left for the next pass", signal_id, exc.message)
        return WorkResult(signal_id, "working", attempt, cid, exc.message)


def _order_state(ws: Workspace, exchange: str, cid: str) -> tuple[bool, str | None, str | None]:
    """(the order intent exists, its latest event, its order id) from the ledger."""
    from ..ledger.names import ORDER_STATE

    with ws.open_ledger() as ledger:
        intent = ledger.query(
            "SELECT 1 FROM orders WHERE exchange = ? AND client_order_id = ? LIMIT 1",
            [exchange, cid],
        )
        state = ledger.query(
            f"SELECT event, order_id FROM {ORDER_STATE} WHERE exchange = ? AND client_order_id = ?",
            [exchange, cid],
        )
    event, order_id = (state[0][0], state[0][1]) if state else (None, None)
    return bool(intent), event, order_id


def _resume(ws: Workspace, row: dict[str, Any], attempt: int, cid: str) -> WorkResult | None:
    """Resolve an attempt whose intent was recorded before; None: never sent, place it now."""
    exchange = row["exchange"]
    exists, event, order_id = _order_state(ws, exchange, cid)
    if not exists:
        return None  # place_order never recorded it: nothing was sent under this id
    if event is None or event == "unknown":
        from ..trading.accounts import connect
        from ..trading.recover import recover_account

        try:
            client = connect(ws, exchange)
            try:
                recover_account(ws, client, exchange)
            finally:
                client.close()
        except LedgerBusyError:
            raise
        except VhcError as exc:  # the exchange, its keys or its config: ask again later
            return _unknown(ws, row, attempt, cid, f"order lookup failed: {exc.message}")
        exists, event, order_id = _order_state(ws, exchange, cid)
    if event in _REACHED:
        return _executed(ws, row, attempt, cid, order_id, event, None, "resolved after restart")
    if event in _NOT_PLACED:
        return _failed(ws, row, attempt, cid, f"order {cid} was not placed ({event})", True)
    return _unknown(ws, row, attempt, cid, "the order's fate is not known yet")


def _expired(ws: Workspace, row: dict[str, Any], now: datetime) -> str | None:
    """Why the signal is too old to execute now, or None.

    The same rule as at intake (`signals.max_age_seconds`), counted from the signal's own time,
    or from a person's `vhc signals retry` when that came later (their decision is fresh).
    """
    max_age = ws.config.signals.max_age_seconds
    since = _aware(row["signal_time"])
    requeued = row.get("requeued_at")
    if requeued is not None:
        since = max(since, _aware(requeued))
    age = (now - since).total_seconds()
    if age <= max_age:
        return None
    return (
        f"the signal was {int(age)} s old when its turn came; signals older than "
        f"{max_age} s (signals.max_age_seconds) are not executed"
    )


def _aware(moment: datetime) -> datetime:
    """The ledger's naive UTC timestamps as aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _execute(ws: Workspace, row: dict[str, Any], attempt: int, cid: str) -> WorkResult:
    from ..trading.orders import OrderRequest, place_order

    request = OrderRequest(
        exchange=row["exchange"],
        symbol=row["symbol"],
        side=row["side"],
        amount=Decimal(row["amount"]),
        type=row["type"],
        price=Decimal(row["price"]) if row["price"] is not None else None,
        strategy=f"signal:{row['source']}",
        client_order_id=cid,
        source="signal",
    )
    try:
        result = place_order(ws, request)
    except RiskLimitError as exc:
        checks = (exc.details or {}).get("checks") or []
        return _refused(ws, row, attempt, cid, exc.message, "risk", _checks(checks))
    except KillSwitchActiveError as exc:
        return _refused(ws, row, attempt, cid, exc.message, "kill_switch", [])
    except OrderOutcomeUnknown as exc:
        return _unknown(ws, row, attempt, cid, exc.message)
    except InputError as exc:
        return _after_error(ws, row, attempt, cid, exc.message, retryable=False)
    except LedgerBusyError:
        raise
    except VhcError as exc:  # exchange, network, secrets, config: worth another attempt
        return _after_error(ws, row, attempt, cid, exc.message, retryable=True)
    except Exception as exc:  # a bug must not lose the signal, nor make it send twice
        log.exception("signal %s: placing the order failed", row["signal_id"])
        return _after_error(ws, row, attempt, cid, f"internal error: {type(exc).__name__}", True)
    order = result.order
    event = None
    if order is not None:
        from ..trading.recording import event_for

        event = event_for(order)
    return _executed(
        ws,
        row,
        attempt,
        cid,
        order.id if order else None,
        event,
        _checks(result.checks),
        f"{request.side} {fmt(result.amount)} {result.symbol}: {event or 'sent'}",
        order.status if order else None,
    )


def _after_error(
    ws: Workspace, row: dict[str, Any], attempt: int, cid: str, reason: str, retryable: bool
) -> WorkResult:
    """After place_order raised: what the ledger says about the order decides, not the error."""
    exists, event, order_id = _order_state(ws, row["exchange"], cid)
    if exists and event in _REACHED:
        return _executed(ws, row, attempt, cid, order_id, event, None, reason)
    if exists and event not in _NOT_PLACED:
        return _unknown(ws, row, attempt, cid, reason)  # it may be on the exchange: look it up
    return _failed(ws, row, attempt, cid, reason, retryable)


def _checks(checks: list[Any]) -> list[dict[str, Any]]:
    return [{"name": c.name, "ok": c.ok, "message": c.message} for c in checks]


def _backoff(ws: Workspace, used: int) -> timedelta:
    base = ws.config.signals.retry_base_seconds
    return timedelta(seconds=float(base * (2 ** max(0, used - 1))))


def _record(ws: Workspace, signal_id: str, rows: list[dict[str, Any]]) -> None:
    with ws.open_ledger() as ledger, ledger.transaction():
        for r in rows:
            store.add_event(ledger, signal_id, **r)


def _executed(
    ws: Workspace,
    row: dict[str, Any],
    attempt: int,
    cid: str,
    order_id: str | None,
    event: str | None,
    checks: list[dict[str, Any]] | None,
    message: str,
    order_status: str | None = None,
) -> WorkResult:
    signal_id = row["signal_id"]
    common = {"attempt": attempt, "client_order_id": cid}
    rows: list[dict[str, Any]] = []
    if checks is not None:
        rows.append(
            {"event": "checked", "status": "working", **common, "details": {"checks": checks}}
        )
    rows.append({"event": "sent", "status": "working", **common, "details": {"order_id": order_id}})
    rows.append(
        {
            "event": "outcome",
            "status": "executed",
            **common,
            "details": {"order_id": order_id, "order_event": event, "message": message},
        }
    )
    _record(ws, signal_id, rows)
    log.info("signal %s executed: %s", signal_id, message)
    result = WorkResult(
        signal_id, "executed", attempt, cid, message, order_id, order_status or event
    )
    _reply(ws, row, result)
    return result


def _refused(
    ws: Workspace,
    row: dict[str, Any],
    attempt: int,
    cid: str,
    reason: str,
    by: str,
    checks: list[dict[str, Any]],
) -> WorkResult:
    signal_id = row["signal_id"]
    common = {"attempt": attempt, "client_order_id": cid}
    _record(
        ws,
        signal_id,
        [
            {
                "event": "checked",
                "status": "working",
                **common,
                "details": {"checks": checks, "by": by},
            },
            {
                "event": "outcome",
                "status": "refused",
                **common,
                "details": {"reason": reason, "by": by},
            },
        ],
    )
    log.warning("signal %s refused (%s): %s", signal_id, by, reason)
    result = WorkResult(signal_id, "refused", attempt, cid, reason)
    _reply(ws, row, result)
    return result


def _failed(
    ws: Workspace,
    row: dict[str, Any],
    attempt: int,
    cid: str,
    reason: str,
    retryable: bool,
    code: str | None = None,
) -> WorkResult:
    signal_id = row["signal_id"]
    used = attempt - int(row["base_attempt"])
    limit = ws.config.signals.max_attempts
    common = {"attempt": attempt, "client_order_id": cid}
    if retryable and used < limit:
        at = datetime.now(UTC) + _backoff(ws, used)
        details = {"reason": reason, "attempts_used": used, "max_attempts": limit}
        _record(
            ws,
            signal_id,
            [
                {
                    "event": "outcome",
                    "status": "retry",
                    **common,
                    "next_attempt_at": at,
                    "details": details,
                }
            ],
        )
        log.warning("signal %s attempt %d failed, retry at %s: %s", signal_id, used, at, reason)
        return WorkResult(signal_id, "retry", attempt, cid, reason, next_attempt_at=at)
    why = reason if not retryable else f"{reason} (after {used} attempt(s))"
    details = {"reason": code, "message": why} if code else {"reason": why}
    _record(
        ws,
        signal_id,
        [
            {"event": "outcome", "status": "dead", **common, "details": details},
        ],
    )
    log.error("signal %s moved to the dead letter: %s", signal_id, why)
    result = WorkResult(signal_id, "dead", attempt, cid, why)
    _reply(ws, row, result)
    return result


def _unknown(ws: Workspace, row: dict[str, Any], attempt: int, cid: str, reason: str) -> WorkResult:
    """The order may be on the exchange: never resend; look it up again when due."""
    signal_id = row["signal_id"]
    used = attempt - int(row["base_attempt"])
    at = datetime.now(UTC) + _backoff(ws, used)
    _record(
        ws,
        signal_id,
        [
            {
                "event": "unknown",
                "status": "unknown",
                "attempt": attempt,
                "client_order_id": cid,
                "next_attempt_at": at,
                "details": {"reason": reason},
            }
        ],
    )
    log.warning(
        "signal %s: order %s unresolved, looked up again at %s: %s", signal_id, cid, at, reason
    )
    return WorkResult(signal_id, "unknown", attempt, cid, reason, next_attempt_at=at)


# -- Telegram answers -------------------------------------------------------------------------
def reply_text(row: dict[str, Any], result: WorkResult) -> str:
    """The chat answer for a final outcome."""
    what = f"{row['side'].upper()} {fmt(row['amount'])} {row['symbol']} on {row['exchange']}"
    if result.status == "executed":
        return f"Executed: {what} ({result.order_status or 'sent'}, order {result.order_id})"
    if result.status == "refused":
        return f"Refused: {what}: {result.message}"
    return f"Failed: {what}: {result.message}"


def _reply(ws: Workspace, row: dict[str, Any], result: WorkResult) -> None:
    if row.get("kind") != "telegram" or not row.get("chat_id"):
        return
    from .credentials import source_credentials
    from .telegram import ReplyError, send_message

    cfg = ws.config.signals.sources.get(row["source"])
    ok, problem = False, None
    try:
        if cfg is None:
            raise ReplyError(f"source {row['source']!r} is no longer configured")
        token = source_credentials(ws, row["source"], cfg).key
        if not token:
            raise ReplyError("no bot token (the source's key) to answer with")
        send_message(cfg, token, row["chat_id"], reply_text(row, result), row.get("message_id"))
        ok = True
    except (ReplyError, VhcError) as exc:
        problem = str(exc)
        log.warning("signal %s: telegram answer not sent: %s", row["signal_id"], problem)
    try:
        _record(
            ws,
            row["signal_id"],
            [
                {
                    "event": "replied",
                    "details": {"ok": ok, "error": problem, "chat_id": row["chat_id"]},
                }
            ],
        )
    except VhcError as exc:
        log.warning("signal %s: telegram answer not recorded: %s", row["signal_id"], exc.message)


def run_worker(
    ws: Workspace,
    stop: threading.Event,
    poll_seconds: float = 2.0,
    batch: int = 1,
) -> int:
    """A worker of `vhc serve`: passes over the queue until `stop` is set; returns signals done.

    It takes `batch` signals a pass, so a stop (SIGTERM) waits for at most that many orders:
    the in-flight one finishes, the rest stay queued. Idle, it wakes when intake queues a
    signal in this process (`signals.wake`: one worker per signal) or every `poll_seconds`
    (retries falling due, signals queued by another process); `stop` is looked at every 0.1 s. A crash leaves
    nothing worse than what the next pass resolves; a busy ledger or an error is logged.
    """
    from . import wake

    done = 0
    again = True  # pass now (at start, and after a pass that did something)
    last = 0.0
    while not stop.is_set():
        now = time.monotonic()
        if again or now - last >= poll_seconds:
            wake.take(0)  # this pass serves a waiting ticket, if any
        elif not wake.take(timeout=min(0.1, poll_seconds)):
            continue  # look at `stop` again
        last = now
        try:
            results = work_once(ws, limit=batch)
        except LedgerBusyError as exc:
            log.warning("signals worker: %s", exc.message)
            results = []
        except Exception:  # a worker thread must not die on one bad pass
            log.exception("signals worker: a pass failed")
            results = []
        done += len(results)
        again = bool(results)  # more may be due: pass again at once
    return done
