"""What "the exchange and the ledger agree" means, checked the same way after every crash."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from ccxtkit.exchanges.paper_store import loads
from tests.kraken_server import KrakenServer, asset_code

ZERO = Decimal(0)


def ledger_rows(home: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on the workspace's ledger (no vhc process may hold it)."""
    con = duckdb.connect(str(home / "ledger" / "vhc.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def control_events(home: Path, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """(kind, details) of the ledger's control events whose kind starts with `prefix`."""
    if not (home / "ledger" / "vhc.duckdb").exists():
        return []  # no vhc command has opened the ledger yet
    rows = ledger_rows(
        home,
        "SELECT kind, details FROM control_events WHERE kind LIKE ? ORDER BY seq",
        [prefix + "%"],
    )
    return [(str(kind), json.loads(details or "{}")) for kind, details in rows]


def latest_events(home: Path, exchange: str) -> dict[str, str]:
    """client order id -> the latest order event the ledger holds for it."""
    rows = ledger_rows(
        home,
        "SELECT client_order_id, arg_max(event, seq) FROM order_events WHERE exchange = ? "
        "GROUP BY 1",
        [exchange],
    )
    return {str(cid): str(event) for cid, event in rows}


def intents(home: Path, exchange: str) -> list[str]:
    """The client order ids of every order intent on `exchange`, oldest first."""
    rows = ledger_rows(
        home, "SELECT client_order_id FROM orders WHERE exchange = ? ORDER BY seq", [exchange]
    )
    return [str(r[0]) for r in rows]


@dataclass(frozen=True)
class ExchangeView:
    """One account as the exchange itself reports it."""

    orders: dict[str, str]  # client order id -> status (open / closed / canceled)
    sends: Counter[str]  # client order id -> how many orders the exchange received with it
    trades: dict[str, tuple[Decimal, Decimal, Decimal]]  # trade id -> (amount, cost, fee)
    balances: dict[str, Decimal]  # asset -> total


def kraken_view(server: KrakenServer) -> ExchangeView:
    """The Kraken look-alike's account, and every AddOrder it received."""
    sends = Counter(r.params.get("cl_ord_id", "") for r in server.requests_to("AddOrder"))
    return ExchangeView(
        orders={o.cl_ord_id or o.txid: o.status for o in server.orders},
        sends=sends,
        trades={t.txid: (t.vol, t.cost, t.fee) for t in server.trades},
        balances={asset_code(a): v for a, v in server.balances.items() if v},
    )


def paper_view(home: Path, account: str = "paper") -> ExchangeView:
    """The paper account's state file (every order it accepted is kept there)."""
    path = home / "state" / f"paper_{account}.json"
    state = loads(path.read_text())
    orders = {o.client_order_id: o.status for o in state.orders.values()}
    return ExchangeView(
        orders=orders,
        sends=Counter(o.client_order_id for o in state.orders.values()),
        trades={t.id: (t.amount, t.cost, t.fee or ZERO) for t in state.trades},
        balances={a: v for a, v in state.balances.items() if v},
    )


#: The ledger's terminal event for an exchange order status.
_EVENT = {"closed": "filled", "canceled": "canceled", "open": "open"}


def assert_orders_agree(
    home: Path, exchange: str, view: ExchangeView, opening: dict[str, Decimal]
) -> None:
    """Orders, fills and balances: the ledger says what the exchange says, nothing sent twice."""
    recorded = intents(home, exchange)
    latest = latest_events(home, exchange)
    assert len(recorded) == len(set(recorded)), "a client order id was recorded twice"
    assert all(n == 1 for n in view.sends.values()), f"sent twice: {view.sends}"
    assert set(view.orders) <= set(recorded), "an order reached the exchange without an intent"
    for cid in recorded:
        if cid in view.orders:
            assert latest.get(cid) == _EVENT[view.orders[cid]], (cid, latest.get(cid))
        else:
            assert latest.get(cid) == "not_found", (cid, latest.get(cid))
    rows = ledger_rows(
        home,
        "SELECT trade_id, amount, cost, fee, side, asset, quote, fee_currency FROM trades "
        "WHERE exchange = ?",
        [exchange],
    )
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "a fill was recorded twice"
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == view.trades
    # Balances: the opening balance plus every recorded fill is what the exchange holds.
    held = {a: Decimal(v) for a, v in opening.items()}
    for _, amount, cost, fee, side, asset, quote, fee_currency in rows:
        sign = 1 if side == "buy" else -1
        held[asset] = held.get(asset, ZERO) + sign * amount
        held[quote] = held.get(quote, ZERO) - sign * cost
        fee_asset = fee_currency or quote
        held[fee_asset] = held.get(fee_asset, ZERO) - fee
    assert {a: v for a, v in held.items() if v} == view.balances
