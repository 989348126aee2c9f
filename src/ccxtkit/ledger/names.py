"""The ledger's vocabulary, in one place: order events and states, transfer kinds and statuses,
and the few views ("latest state of each order / transfer") every reader uses.

The views are TEMP views, created on every connection (see store.open_ledger): never stored in
the file, never chained, so they cannot be edited there and a verifier never sees them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

#: Order events vhc records (order_events.event), from the intent's first answer on.
ORDER_EVENTS = frozenset(
    {"sent", "open", "partially_filled", "filled", "canceled", "rejected", "failed", "expired",
     "not_found", "unknown"}
)  # fmt: skip
#: Order events after which nothing more happens to the order.
TERMINAL_ORDER_EVENTS = frozenset(
    {"filled", "canceled", "rejected", "failed", "expired", "not_found"}
)
#: ccxt order statuses after which nothing more happens (order_events.status).
TERMINAL_ORDER_STATUSES = frozenset({"closed", "canceled", "expired", "rejected"})

#: Transfer kinds (transfers.kind) that bring an asset in, and that take it out.
TRANSFER_IN_KINDS = frozenset({"deposit", "internal_in"})
TRANSFER_OUT_KINDS = frozenset({"withdrawal", "internal_out"})
OPENING_BALANCE = "opening_balance"
#: Transfer statuses meaning the money did not move. `pending` is not one of them: it has moved
#: as far as the exchange's balance goes, and a later row (failed, canceled) supersedes it,
#: because readers take each transfer's latest row (TRANSFERS_LATEST).
NOT_MOVED = frozenset({"failed", "canceled", "cancelled", "rejected"})

#: The latest row of each transfer: rows sharing (exchange, kind, transfer_id) are one transfer
#: and the highest seq wins; rows without a transfer_id stand alone.
TRANSFERS_LATEST = "vhc_transfers_latest"
#: Per (exchange, client_order_id): the latest event and status, the latest known order id and
#: filled amount, and the seq of the latest event.
ORDER_STATE = "vhc_order_state"

VIEWS: dict[str, tuple[str, str]] = {
    TRANSFERS_LATEST: (
        "transfers",
        "SELECT * FROM transfers QUALIFY transfer_id IS NULL OR "
        "row_number() OVER (PARTITION BY exchange, kind, transfer_id ORDER BY seq DESC) = 1",
    ),
    ORDER_STATE: (
        "order_events",
        "SELECT exchange, client_order_id, arg_max(event, seq) AS event, "
        "arg_max(status, seq) AS status, "
        "arg_max(order_id, CASE WHEN order_id IS NULL THEN 0 ELSE seq END) AS order_id, "
        "arg_max(filled, CASE WHEN filled IS NULL THEN 0 ELSE seq END) AS filled, "
        "max(seq) AS last_seq FROM order_events GROUP BY exchange, client_order_id",
    ),
}


def sql_list(values: frozenset[str] | tuple[str, ...]) -> str:
    """A SQL IN list of these constants (never user input)."""
    return "(" + ", ".join(f"'{v}'" for v in sorted(values)) + ")"


def create_views(con: duckdb.DuckDBPyConnection, tables: set[str]) -> None:
    """Create the TEMP views over the tables this file has (also on a read-only connection)."""
    for name, (table, sql) in VIEWS.items():
        if table in tables:
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
