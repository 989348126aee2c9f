"""Resolving orders whose fate the ledger does not know (a crash, a timeout, a lost reply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import ExchangeError
from ..exchanges.base import ExchangeClient, Order, Trade
from ..ledger.store import Ledger
from ..workspace import Workspace
from . import emergency, inflight, recording


@dataclass(frozen=True)
class Resolution:
    """What the exchange says about one pending order."""

    exchange: str
    client_order_id: str
    previous: str | None
    order: Order | None  # None: the exchange confirms it has no such order
    fills: tuple[Trade, ...] = ()
    strategy: str | None = None

    @property
    def outcome(self) -> str:
        return "not_found" if self.order is None else recording.event_for(self.order)


@dataclass(frozen=True)
class RecoverReport:
    """Per account: what was resolved, and what could not be asked."""

    resolved: list[Resolution] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    _failures: dict[str, ExchangeError] = field(default_factory=dict)  # not in --json

    def failure(self) -> ExchangeError | None:
        """One error for every account that could not be asked, of their common kind (its
        exit code: 8 when every one needs a new session), else a plain exchange error."""
        if not self.errors:
            return None
        kinds = {type(e) for e in self._failures.values()}
        kind = kinds.pop() if len(kinds) == 1 else ExchangeError
        return kind("could not read " + "; ".join(f"{n}: {m}" for n, m in self.errors.items()))


def look_up(
    ws: Workspace, client: ExchangeClient, exchange: str, pending: list[dict[str, Any]]
) -> list[Resolution]:
    """Ask the exchange about each pending order (network only; the ledger stays closed)."""
    out = []
    for p in pending:
        if not inflight.is_orphaned(ws, p["client_order_id"]):
            continue  # another vhc process is sending it right now
        order = client.find_order_by_client_id(p["client_order_id"], p["symbol"])
        fills = tuple(recording.fills_of(client, order, p["timestamp"])) if order else ()
        out.append(
            Resolution(exchange, p["client_order_id"], p["event"], order, fills, p["strategy"])
        )
    return out


def record(ledger: Ledger, resolutions: list[Resolution]) -> list[Resolution]:
    """Record what changed; returns the resolutions that added something."""
    changed = []
    with ledger.transaction():
        for r in resolutions:
            added = 0
            if r.fills:
                added = recording.record_fills(
                    ledger, r.exchange, r.fills, "recover", r.client_order_id, r.strategy
                )
            if r.outcome != r.previous or added:
                if r.order is None:
                    recording.record_event(
                        ledger,
                        r.exchange,
                        r.client_order_id,
                        "not_found",
                        {"reason": "the exchange has no order with this client id"},
                    )
                else:
                    recording.record_order_state(
                        ledger, r.exchange, r.client_order_id, r.order, {"via": "recover"}
                    )
                changed.append(r)
    return changed


def recover_account(ws: Workspace, client: ExchangeClient, exchange: str) -> list[Resolution]:
    """Resolve this account's pending orders: read the ledger, ask the exchange, record."""
    with ws.open_ledger() as ledger:
        emergency.adopt(ws, ledger)  # the kill switch's orders the ledger was too busy for
        pending = recording.pending_orders(ledger, exchange)
    if not pending:
        return []
    resolutions = look_up(ws, client, exchange, pending)
    with ws.open_ledger() as ledger:
        return record(ledger, resolutions)


def recover_all(ws: Workspace, exchange: str | None = None) -> RecoverReport:
    """`vhc trade recover`: every enabled account (or one), each failure reported, not raised."""
    from .accounts import connect

    names = [exchange] if exchange else list(ws.config.enabled_exchanges())
    report = RecoverReport()
    for name in names:
        try:
            client = connect(ws, name)
            try:
                report.resolved.extend(recover_account(ws, client, name))
            finally:
                client.close()
        except ExchangeError as exc:
            report.errors[name] = exc.message
            report._failures[name] = exc
    return report
