"""The ledger's tables. Every table is part of the one hash chain; columns are declared here once."""

from __future__ import annotations

from dataclasses import dataclass

#: Column kinds and their DuckDB types. Money is DECIMAL(38,18), times are UTC TIMESTAMP.
SQL_TYPES = {
    "text": "VARCHAR",
    "decimal": "DECIMAL(38,18)",
    "timestamp": "TIMESTAMP",
    "int": "BIGINT",
    "bool": "BOOLEAN",
}

#: Columns every chained table starts with, in this order. `row_hash` is not hashed.
CHAIN_COLUMNS = ("seq", "prev_hash", "row_hash", "recorded_at")


@dataclass(frozen=True)
class Column:
    """One data column of a chained table."""

    name: str
    kind: str  # a key of SQL_TYPES
    required: bool = False


def _cols(spec: str) -> tuple[Column, ...]:
    """Parse 'name:kind[!]' words; '!' marks NOT NULL."""
    out = []
    for word in spec.split():
        name, kind = word.split(":")
        required = kind.endswith("!")
        out.append(Column(name, kind.rstrip("!"), required))
    return tuple(out)


#: The chained tables, in the order their columns are hashed. Existing tables never change shape
#: (no column is added, renamed or reordered: a file written before would stop verifying under a
#: verifier that expects the new shape). New data goes into a new table, created by a migration
#: and documented in docs/ledger-format.md.
TABLES: dict[str, tuple[Column, ...]] = {
    "trades": _cols(
        "timestamp:timestamp! exchange:text! symbol:text! asset:text! quote:text! side:text! "
        "amount:decimal! price:decimal! cost:decimal! fee:decimal! fee_currency:text "
        "trade_id:text! order_id:text client_order_id:text strategy:text source:text! "
        "notes:text total_usd:decimal"
    ),
    "orders": _cols(
        "timestamp:timestamp! client_order_id:text! exchange:text! symbol:text! side:text! "
        "type:text! amount:decimal! price:decimal strategy:text source:text! live:bool!"
    ),
    "order_events": _cols(
        "timestamp:timestamp! client_order_id:text! exchange:text! event:text! status:text "
        "order_id:text filled:decimal average:decimal remaining:decimal fee:decimal "
        "fee_currency:text details:text"
    ),
    "transfers": _cols(
        "timestamp:timestamp! exchange:text! kind:text! asset:text! amount:decimal! "
        "fee:decimal fee_currency:text transfer_id:text txid:text address:text network:text "
        "tag:text status:text source:text! request_id:text notes:text"
    ),
    "balance_snapshots": _cols(
        "timestamp:timestamp! exchange:text! asset:text! free:decimal used:decimal "
        "total:decimal! source:text!"
    ),
    "control_events": _cols("timestamp:timestamp! kind:text! actor:text subject:text details:text"),
    "prices": _cols("timestamp:timestamp! asset:text! quote:text! price:decimal! source:text!"),
    # Signals (migration 0002): one row per accepted signal, as parsed, and every step of its
    # life in `signal_events` (received, parsed, intent, checked, sent, outcome, retry, ...).
    "signals": _cols(
        "timestamp:timestamp! signal_id:text! source:text! kind:text! external_id:text! "
        "signal_time:timestamp! exchange:text! symbol:text! side:text! type:text! "
        "amount:decimal! price:decimal product:text chat_id:text message_id:text "
        "remote_ip:text answer:text!"
    ),
    "signal_events": _cols(
        "timestamp:timestamp! signal_id:text! event:text! status:text attempt:int "
        "client_order_id:text next_attempt_at:timestamp details:text"
    ),
}


def create_table_sql(table: str) -> str:
    """CREATE TABLE for one chained table."""
    parts = [
        '"seq" BIGINT NOT NULL',
        '"prev_hash" VARCHAR NOT NULL',
        '"row_hash" VARCHAR NOT NULL',
        '"recorded_at" TIMESTAMP NOT NULL',
    ]
    for col in TABLES[table]:
        null = " NOT NULL" if col.required else ""
        parts.append(f'"{col.name}" {SQL_TYPES[col.kind]}{null}')
    return f'CREATE TABLE IF NOT EXISTS "{table}" ({", ".join(parts)})'


def all_columns(table: str) -> tuple[str, ...]:
    """Every column of a chained table, in storage order."""
    return CHAIN_COLUMNS + tuple(c.name for c in TABLES[table])


@dataclass(frozen=True)
class Migration:
    """One schema change: its name (recorded in `schema_migrations`), the vhc version that
    introduced it (a file carrying it needs at least that version to be written), its SQL."""

    name: str
    since: str
    statements: tuple[str, ...]
    tables: tuple[
        str, ...
    ] = ()  # the chained tables it creates (a file that has it must hold them)


#: Applied in order, once each; each is recorded in `schema_migrations` and as a chained
#: `ledger.migration` control event. A new table gets its own migration that creates it.
_INITIAL = (
    "trades",
    "orders",
    "order_events",
    "transfers",
    "balance_snapshots",
    "control_events",
    "prices",
)
_SIGNALS = ("signals", "signal_events")

MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_initial", "0.1.0", tuple(create_table_sql(t) for t in _INITIAL), _INITIAL),
    Migration("0002_signals", "0.1.0", tuple(create_table_sql(t) for t in _SIGNALS), _SIGNALS),
)


def expected_tables(applied: list[str]) -> list[str]:
    """The chained tables a file with these migrations applied must hold (0001 when none)."""
    names = set(applied) or {"0001_initial"}
    return [t for m in MIGRATIONS if m.name in names for t in m.tables]
