"""The API's handlers: each calls the core function its `vhc` command calls, and shapes JSON.

Handlers run in a worker thread (see `app.endpoint`) and return `(status, body)`; a success
body is `{"success": true, "data": ...}`. Errors are raised (vhc's own, or `ApiError`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ccxtkit.logs import log
from ccxtkit.records import jsonable, order_record

from .requests import ApiError, Text, field

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .app import Call, Handler, ServeState
    from .tokens import Role


def ok(data: Any, status: int = 200) -> tuple[int, Any]:
    """A success answer."""
    return status, {"success": True, "data": jsonable(data)}


def _flag(doc: dict[str, Any], name: str) -> bool:
    value = doc.get(name, False)
    if not isinstance(value, bool):
        raise ApiError(422, "VALIDATION_ERROR", f"field {name!r} must be true or false")
    return value


def _truthy(text: str | None) -> bool:
    return (text or "").lower() in ("1", "true", "yes")


# -- signals -------------------------------------------------------------------------------
def _signal_record(row: dict[str, Any]) -> dict[str, Any]:
    from ccxtkit.records import nested

    shown = {k: v for k, v in row.items() if k not in ("seq", "base_attempt", "resolved_attempt")}
    return {**shown, "details": nested(row.get("details"))}


def list_signals(c: Call) -> tuple[int, Any]:
    """`vhc signals list [--status S]`: every signal with its current state, oldest first."""
    from ccxtkit.signals import store

    status = c.query("status")
    if status is not None and status not in store.STATUSES:
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            f"unknown status {status!r}: use one of {', '.join(store.STATUSES)}",
        )
    limit = c.query("limit")
    if limit is not None and not (limit.isdigit() and 0 < int(limit) <= 10000):
        raise ApiError(422, "VALIDATION_ERROR", "limit must be a whole number from 1 to 10000")
    with c.ws.open_ledger(read_only=True) as ledger:
        rows = store.states(ledger, status, limit=int(limit) if limit else None)
    return ok([_signal_record(r) for r in rows])


def one_signal(c: Call) -> tuple[int, Any]:
    """One signal (by id or a unique prefix of it) with every step of its life."""
    from ccxtkit.records import nested
    from ccxtkit.signals import store

    ref = c.param("id")
    with c.ws.open_ledger(read_only=True) as ledger:
        row = store.find(ledger, ref)
        steps = store.events(ledger, row["signal_id"]) if row else []
    if row is None:
        raise ApiError(404, "NOT_FOUND", f"no signal {ref!r}", {"signal": ref})
    events = [{**e, "details": nested(e.get("details"))} for e in steps]
    return ok({**_signal_record(row), "events": events})


# -- executions ----------------------------------------------------------------------------
def list_orders(c: Call) -> tuple[int, Any]:
    """`vhc trade orders [--all] [--exchange X]`."""
    from ccxtkit.trading.recording import order_table

    with c.ws.open_ledger(read_only=True) as ledger:
        rows = order_table(ledger, c.query("exchange"), _truthy(c.query("all")))
    return ok([order_record(r) for r in rows])


def _find_order(c: Call, ref: str) -> dict[str, Any]:
    from ccxtkit.trading.recording import order_table

    with c.ws.open_ledger(read_only=True) as ledger:
        rows = order_table(ledger, c.query("exchange"), True)
    found = [r for r in rows if ref in (r["client_order_id"], r["order_id"])]
    if not found:
        raise ApiError(404, "NOT_FOUND", f"no order {ref!r} in the ledger", {"order": ref})
    return found[0]


def one_order(c: Call) -> tuple[int, Any]:
    """One order by client order id (or exchange order id), with its latest known state."""
    return ok(order_record(_find_order(c, c.param("cid"))))


def cancel(c: Call) -> tuple[int, Any]:
    """`vhc trade cancel ID`: cancel on the exchange and record its final state."""
    from ccxtkit.trading.cancel import cancel_order

    ref = c.param("cid")
    row = _find_order(c, ref)
    order = cancel_order(c.ws, ref, row["exchange"])
    return ok(order_record(order, row["exchange"], row["client_order_id"]))


def _default_exchange(c: Call) -> str:
    enabled = list(c.ws.config.enabled_exchanges())
    if len(enabled) != 1:
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            f"several accounts are enabled ({', '.join(enabled) or 'none'}); give `exchange`",
        )
    return enabled[0]


def submit(c: Call) -> tuple[int, Any]:
    """`vhc trade buy|sell`: every risk check, intent on the record, sent once, outcome."""
    from ccxtkit.money import to_decimal
    from ccxtkit.trading.orders import OrderRequest, place_order

    doc = c.body
    side = (field(doc, "side") or "").lower()
    price = field(doc, "price", required=False, number=True)
    request = OrderRequest(
        exchange=field(doc, "exchange", required=False) or _default_exchange(c),
        symbol=(field(doc, "symbol") or "").upper(),
        side=side,
        amount=to_decimal(field(doc, "amount", number=True), "amount"),
        type=(field(doc, "type", required=False) or "market").lower(),
        price=to_decimal(price, "price") if price is not None else None,
        strategy=field(doc, "strategy", required=False) or c.actor,
        client_order_id=field(doc, "client_order_id", required=False),
        dry_run=_flag(doc, "dry_run"),
    )
    result = place_order(c.ws, request)
    log.info("serve: %s placed %s %s on %s", c.actor, side, result.symbol, request.exchange)
    return ok(result, 200 if result.dry_run else 201)


def positions(c: Call) -> tuple[int, Any]:
    """Holdings across accounts valued in USD, from the figures the limits read."""
    from ccxtkit.risk.figures import compute

    with c.ws.open_ledger(read_only=True) as ledger:
        fig = compute(ledger, datetime.now(UTC), c.ws.config.timezone, with_pnl=False)
    e = fig.exposure
    return ok(
        {
            "positions_usd": dict(sorted(e.positions_usd.items())),
            "quantities": dict(sorted(e.quantities.items())),
            "unpriced": sorted(e.unpriced),
            "portfolio_usd": e.portfolio_usd,
            "open_orders": e.open_orders,
            "as_of": e.as_of,
        }
    )


# -- risk ----------------------------------------------------------------------------------
def limits(c: Call) -> tuple[int, Any]:
    """The configured limits (read only) and the figures they are checked against."""
    from ccxtkit.risk.figures import status_figures

    return ok({"limits": c.ws.config.risk.model_dump(mode="json"), "figures": status_figures(c.ws)})


def limits_change(c: Call) -> tuple[int, Any]:
    """Change risk limits (admin): `{"limits": {...}, "auth_code"?, "approver"?}`.

    The same policy rule as `vhc config apply`: loosening needs an approver's 2FA code (else
    403 and nothing changes); only tightening is recorded without one (serve/limits.py).
    """
    from .limits import change_limits

    changes = c.body.get("limits")
    if not isinstance(changes, dict):
        raise ApiError(
            422,
            "VALIDATION_ERROR",
            'field \'limits\' must be an object of risk settings, e.g. {"max_order_value": "5000"}',
            {"field": "limits"},
        )
    code = field(c.body, "auth_code", required=False)
    approver = field(c.body, "approver", required=False)
    done = change_limits(c.ws, changes, code, approver, c.actor)
    log.warning("serve: risk limits changed by %s (%s): %s", c.actor, done.how, done.changes)
    return ok(
        {
            "how": done.how,
            "policy_seq": done.seq,
            "policy_hash": done.policy_hash,
            "changes": done.changes,
            "limits": done.limits,
        }
    )


def killswitch_status(c: Call) -> tuple[int, Any]:
    """`vhc kill-switch --status`."""
    from ccxtkit.risk.figures import status_figures
    from ccxtkit.risk.killswitch import effective_state

    wait = min(float(c.ws.config.ledger.lock_wait_seconds), 2.0)
    return ok({**effective_state(c.ws, wait_seconds=wait).to_dict(), "risk": status_figures(c.ws)})


def killswitch_enable(c: Call) -> tuple[int, Any]:
    """`vhc kill-switch --activate --reason R [--flatten]`: block orders, then sweep."""
    from ccxtkit.risk.killswitch import activate

    reason = field(c.body, "reason")
    if not (reason or "").strip():
        raise ApiError(422, "VALIDATION_ERROR", "give a non-empty `reason`")
    result = activate(c.ws, reason or "", flatten=_flag(c.body, "flatten"), actor=c.actor)
    log.warning("serve: kill switch activated by %s: %s", c.actor, reason)
    return ok(result.to_dict())


def killswitch_disable(c: Call) -> tuple[int, Any]:
    """`vhc kill-switch --deactivate --auth-code CODE [--approver A]` (admin, with 2FA)."""
    from ccxtkit.risk.killswitch import deactivate, effective_state

    code = field(c.body, "auth_code")
    approver = field(c.body, "approver", required=False) or "admin"
    was_active = effective_state(c.ws).active
    after = deactivate(c.ws, code or "", approver=approver, actor=c.actor)
    log.warning("serve: kill switch deactivated by %s (approver %s)", c.actor, approver)
    return ok({"deactivated": was_active, "state": asdict(after)})


# -- system --------------------------------------------------------------------------------
def health(c: Call) -> tuple[int, Any]:
    """Alive, the kill switch's file state, and the workers (no token needed, nothing secret)."""
    from ccxtkit.risk.killswitch import is_active

    workers = c.st.workers
    alive = workers.alive() if workers else 0
    wanted = workers.count if workers else 0
    status = "ok" if alive == wanted else "degraded"
    return ok(
        {
            "status": status,
            "uptime_seconds": round(time.monotonic() - c.st.started, 1),
            "kill_switch_active": is_active(c.ws),
            "workers": {"running": alive, "configured": wanted},
        },
        200 if status == "ok" else 503,
    )


def metrics(c: Call) -> tuple[int, Any]:
    """Prometheus' text exposition, as `vhc metrics show` prints it."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from ccxtkit.metrics import collect

    return 200, Text(generate_latest(collect(c.ws, wait_seconds=2)).decode(), CONTENT_TYPE_LATEST)


def flags(c: Call) -> tuple[int, Any]:
    """The switches that decide whether anything trades, and each account's kind."""
    from ccxtkit.risk.killswitch import is_active
    from ccxtkit.trading.accounts import is_live_account, is_paper

    cfg = c.ws.config
    accounts = {
        name: {
            "enabled": ex.enabled,
            "kind": "paper"
            if is_paper(name, ex)
            else ("live" if is_live_account(name, ex) else "sandbox"),
        }
        for name, ex in sorted(cfg.exchanges.items())
    }
    return ok(
        {
            "kill_switch_active": is_active(c.ws),
            "automatic_triggers": cfg.risk.kill_switch_enabled,
            "circuit_breaker": cfg.risk.circuit_breaker.enabled,
            "accounts": accounts,
        }
    )


#: (method, path under /api/v1, handler, least role (None: no token), reads a JSON body)
ROUTES: list[tuple[str, str, Handler, Role | None, bool]] = [
    ("GET", "/signals", list_signals, "viewer", False),
    ("GET", "/signals/intents", list_signals, "viewer", False),  # the seed's name
    ("GET", "/signals/intents/{id}", one_signal, "viewer", False),
    ("GET", "/signals/{id}", one_signal, "viewer", False),
    ("GET", "/executions/orders", list_orders, "viewer", False),
    ("POST", "/executions/orders", submit, "trader", True),
    ("GET", "/executions/orders/{cid}", one_order, "viewer", False),
    ("POST", "/executions/orders/{cid}/cancel", cancel, "trader", True),
    ("GET", "/executions/positions", positions, "viewer", False),
    ("GET", "/risk/limits", limits, "viewer", False),
    ("PUT", "/risk/limits", limits_change, "admin", True),
    ("GET", "/risk/killswitch/status", killswitch_status, "viewer", False),
    ("POST", "/risk/killswitch/enable", killswitch_enable, "trader", True),
    ("POST", "/risk/killswitch/disable", killswitch_disable, "admin", True),
    ("GET", "/system/health", health, None, False),
    ("GET", "/system/metrics", metrics, "viewer", False),
    ("GET", "/system/flags", flags, "viewer", False),
]


#: Threads for handlers and deliveries (see `lifespan`).
THREADS = 128


def lifespan(st: ServeState) -> Callable[[Starlette], Any]:
    """Start the signal workers with the server; stop them (between signals) when it stops."""

    @asynccontextmanager
    async def span(app: Starlette) -> AsyncIterator[None]:
        del app
        import anyio.to_thread

        # Each delivery waits in a thread for intake's group commit: more threads, bigger
        # batches (anyio's default of 40 caps a burst's batch at 40).
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        if st.workers is not None:
            st.workers.start()
        try:
            yield
        finally:
            if st.workers is not None:
                from starlette.concurrency import run_in_threadpool

                await run_in_threadpool(st.workers.stop)

    return span
