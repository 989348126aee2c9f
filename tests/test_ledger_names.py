"""Issue 14, finding 8: one vocabulary and one "latest state" view, used by tax and reconcile."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from ccxtkit.ledger import names
from ccxtkit.ledger.store import open_ledger
from ccxtkit.reconcile import balances, matching
from ccxtkit.tax import events
from ccxtkit.tax.report import TRANSFER_SQL

T0 = datetime(2025, 3, 1)


def transfer(i: int, kind: str, amount: str, tid: str, status: str) -> dict[str, object]:
    return {
        "timestamp": T0 + timedelta(hours=i), "exchange": "kraken", "kind": kind,
        "asset": "BTC", "amount": Decimal(amount), "transfer_id": tid, "status": status,
        "txid": f"tx-{tid}", "source": "test",
    }  # fmt: skip


def test_readers_share_one_vocabulary() -> None:
    assert events.NOT_MOVED is names.NOT_MOVED is matching.NOT_MOVED
    assert events.IN_KINDS is names.TRANSFER_IN_KINDS is matching.IN_KINDS
    assert balances.IN_KINDS == names.TRANSFER_IN_KINDS | {names.OPENING_BALANCE}
    assert "pending" not in names.NOT_MOVED


def test_a_settled_pending_transfer_counts_once_in_tax_and_reconcile(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    with open_ledger(path, 5) as ledger:
        ledger.append(
            "transfers",
            [
                transfer(0, "deposit", "10", "D1", "ok"),
                transfer(1, "withdrawal", "2", "W1", "pending"),
                transfer(2, "withdrawal", "2", "W1", "ok"),  # the same withdrawal, settled
                transfer(3, "withdrawal", "1", "W2", "pending"),  # still pending: moved
                transfer(4, "withdrawal", "4", "W3", "pending"),
                transfer(5, "withdrawal", "4", "W3", "failed"),  # never left
            ],
        )
    with open_ledger(path, 5, read_only=True) as ledger:
        held = balances.ledger_balances(ledger)[("kraken", "BTC")]
        rows = [events.TransferRow(*r) for r in ledger.query(TRANSFER_SQL, [datetime(2030, 1, 1)])]
        views = ledger.query(
            "SELECT count(*) FROM system.main.duckdb_views() WHERE NOT internal AND NOT temporary"
        )
    assert held == Decimal(7)
    live = [r for r in rows if (r.status or "ok").lower() not in events.NOT_MOVED]
    assert sorted((r.kind, r.amount) for r in live) == [
        ("deposit", Decimal(10)), ("withdrawal", Decimal(1)), ("withdrawal", Decimal(2)),
    ]  # fmt: skip
    assert views == [(0,)]  # the views are per connection, never stored in the file
