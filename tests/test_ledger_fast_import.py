"""The bulk import path agrees row for row with the careful one, and falls back when unsure."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from ccxtkit.ledger import fast_import
from ccxtkit.ledger.store import open_ledger
from ccxtkit.ledger.trades_csv import _import_row_by_row, import_trades
from ccxtkit.ledger.verify import verify_chain

NAMES = (
    "timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id,order_id,strategy,notes"
)


def write_mixed(path: Path, rows: int, seed: int = 7) -> None:
    """Offsets and Z, naive times, case, empty fees and currencies, optional columns, big amounts."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(NAMES.split(","))
        for i in range(rows):
            stamp = f"2025-03-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:07"
            stamp += ["Z", "+02:00", "", ".123456-05:00"][i % 4]
            amount = (
                f"{rng.randint(1, 10**6)}.{rng.randint(0, 10**18 - 1):018d}"
                if i % 13 == 0
                else f"0.{rng.randint(1, 99999):05d}"
            )
            out.writerow([
                stamp, "Kraken" if i % 2 else "coinbase", "btc/usd" if i % 3 else "ETH/BTC",
                "BUY" if i % 2 else "sell", amount, f"{rng.randint(1, 99999)}.25",
                "" if i % 5 == 0 else "1.5", "" if i % 7 == 0 else "usdc", f"T-{i}",
                "" if i % 2 else f"O-{i}", "grid", "a note" if i % 4 == 0 else "",
            ])  # fmt: skip
        out.writerow(["2025-03-01T00:00:07Z", "coinbase", "ETH/BTC", "sell", "1", "2", "", "", "T-0",
                      "", "grid", ""])  # fmt: skip


def rows_of(path: Path) -> list[tuple[object, ...]]:
    with open_ledger(path) as ledger:
        assert verify_chain(ledger).problem is None
        return ledger.query(
            "SELECT * EXCLUDE (seq, prev_hash, row_hash, recorded_at) FROM trades ORDER BY seq"
        )


def test_bulk_and_row_by_row_record_the_same_rows(tmp_path: Path) -> None:
    data = tmp_path / "mixed.csv"
    write_mixed(data, 3000)
    # The last line repeats T-0 with other values: that file must take the careful path...
    with open_ledger(tmp_path / "probe.duckdb") as ledger:
        assert fast_import.fast_import(ledger, data, NAMES.split(","), "import") is None
    # ... so drop it to exercise the bulk path.
    lines = data.read_text().splitlines()[:-1]
    data.write_text("\n".join(lines) + "\n")
    with open_ledger(tmp_path / "bulk.duckdb") as ledger:
        bulk = fast_import.fast_import(ledger, data, NAMES.split(","), "import")
        assert bulk is not None and bulk[:2] == (3000, 3000)
    with open_ledger(tmp_path / "careful.duckdb") as ledger:
        _import_row_by_row(ledger, data, "import")
    assert rows_of(tmp_path / "bulk.duckdb") == rows_of(tmp_path / "careful.duckdb")


def test_reimport_through_the_bulk_path_adds_nothing(tmp_path: Path) -> None:
    data = tmp_path / "mixed.csv"
    write_mixed(data, 500)
    data.write_text("\n".join(data.read_text().splitlines()[:-1]) + "\n")
    with open_ledger(tmp_path / "l.duckdb") as ledger:
        first = import_trades(ledger, data)
        second = import_trades(ledger, data)
        head = ledger.head()
    assert (first.imported, second.imported, second.duplicates) == (500, 0, 500)
    from ccxtkit.ledger.schema import MIGRATIONS

    # The migration events, the trades, one ledger.import per run.
    assert head.seq == len(MIGRATIONS) + 500 + 2
