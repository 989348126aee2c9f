#!/usr/bin/env python3
"""Rebuild tests/data/golden_ledger.duckdb (run once; the committed file pins the format).

Written with vhc 0.1.0's format (migration 0001_initial only, no migration events). Every row
and every recorded_at is fixed, so the chain's head hash is known forever: see
tests/test_ledger_golden.py. Never regenerate it to make a test pass.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from ccxtkit.ledger.store import open_ledger

T = datetime(2025, 3, 4, 5, 6, 7, 890123)


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp) / "g.duckdb")
        shrink(Path(tmp) / "g.duckdb", out)


def shrink(src: Path, out: Path) -> None:
    """Copy into a file with 16 KiB blocks (about 200 KB instead of 2.6 MB)."""
    import duckdb

    out.unlink(missing_ok=True)
    con = duckdb.connect()
    con.execute(f"ATTACH '{src}' AS g (READ_ONLY)")
    con.execute(f"ATTACH '{out}' AS s (BLOCK_SIZE 16384)")
    con.execute("COPY FROM DATABASE g TO s")
    con.execute("CHECKPOINT s")
    con.close()


def build(out: Path) -> None:
    with open_ledger(out, 5) as ledger:
        ledger.append(
            "trades",
            [
                {
                    "timestamp": T,
                    "exchange": "kraken",
                    "symbol": "BTC/USD",
                    "asset": "BTC",
                    "quote": "USD",
                    "side": "buy",
                    "amount": Decimal("0.5"),
                    "price": Decimal("60000.01"),
                    "cost": Decimal("30000.005"),
                    "fee": Decimal("0.000000000000000001"),
                    "fee_currency": "USD",
                    "trade_id": "G-1",
                    "source": "golden",
                    "notes": "Zürich ☃",
                    "total_usd": Decimal("30000.005"),
                },
                {
                    "timestamp": datetime(999, 1, 1),
                    "exchange": "paper",
                    "symbol": "ETH/BTC",
                    "asset": "ETH",
                    "quote": "BTC",
                    "side": "sell",
                    "amount": Decimal("2"),
                    "price": Decimal("0.05"),
                    "cost": Decimal("0.1"),
                    "fee": Decimal(0),
                    "trade_id": "G-2",
                    "source": "golden",
                },
            ],
            recorded_at=T,
        )
        ledger.append(
            "orders",
            [
                {
                    "timestamp": T,
                    "client_order_id": "vhc-g1",
                    "exchange": "kraken",
                    "symbol": "BTC/USD",
                    "side": "buy",
                    "type": "limit",
                    "amount": Decimal("0.5"),
                    "price": Decimal("60000.01"),
                    "source": "golden",
                    "live": True,
                }
            ],
            recorded_at=T,
        )
        ledger.append(
            "order_events",
            [
                {
                    "timestamp": T,
                    "client_order_id": "vhc-g1",
                    "exchange": "kraken",
                    "event": "filled",
                    "status": "closed",
                    "order_id": "O-1",
                    "filled": Decimal("0.5"),
                    "remaining": Decimal(0),
                    "details": "{}",
                }
            ],
            recorded_at=T,
        )
        ledger.append(
            "transfers",
            [
                {
                    "timestamp": T,
                    "exchange": "kraken",
                    "kind": "deposit",
                    "asset": "USD",
                    "amount": Decimal("-12345678901234567890.123456789012345678"),
                    "source": "golden",
                }
            ],
            recorded_at=T,
        )
        ledger.append(
            "balance_snapshots",
            [
                {
                    "timestamp": T,
                    "exchange": "kraken",
                    "asset": "BTC",
                    "free": Decimal("-0"),
                    "total": Decimal("0.5"),
                    "source": "golden",
                }
            ],
            recorded_at=T,
        )
        ledger.append(
            "prices",
            [
                {
                    "timestamp": T,
                    "asset": "BTC",
                    "quote": "USD",
                    "price": Decimal(60000),
                    "source": "golden",
                }
            ],
            recorded_at=T,
        )
        ledger.append(
            "control_events",
            [
                {
                    "timestamp": T,
                    "kind": "golden.event",
                    "actor": "golden",
                    "subject": "s",
                    "details": '{"a": 1}',
                }
            ],
            recorded_at=T,
        )
        ledger.con.execute("CHECKPOINT")
        print(ledger.head())


if __name__ == "__main__":  # fmt: skip
    main(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("golden_ledger.duckdb")
    )
