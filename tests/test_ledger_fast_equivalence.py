"""The fast paths give the careful path's bytes: bulk import's hashes and costs equal Python's
encoding on random rows (18-decimal, huge and tiny values, NULLs, unicode falls back); verify's
threaded scan finds an edit across batch boundaries."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from ccxtkit.ledger import fast_import, verify
from ccxtkit.ledger.chain import canonical_of, row_hash
from ccxtkit.ledger.store import open_ledger
from ccxtkit.ledger.trades_csv import _import_row_by_row, import_trades
from ccxtkit.money import LEDGER_CONTEXT, SCALE

REPO = Path(__file__).resolve().parents[1]
NAMES = "timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id,order_id,notes"


def number(rng: random.Random, int_digits: int, frac_digits: int) -> str:
    """A positive decimal text with up to these many digits each side (never zero)."""
    whole = str(rng.randint(0, 10**int_digits - 1)) if int_digits else "0"
    frac = f"{rng.randint(0, 10**frac_digits - 1):0{frac_digits}d}" if frac_digits else ""
    text = f"{whole}.{frac}" if frac else whole
    return text if Decimal(text) > 0 else "0." + "0" * 17 + "1"


def write_random(path: Path, rows: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(NAMES.split(","))
        for i in range(rows):
            # Integer digits summing to at most 19 keep amount * price below 1E20 (the ledger's
            # range); fraction digits 0..18 each, so some pairs need more than 18 together
            # (Python computes those) and some values are below 1E-6 or above 1E10.
            ia = rng.randint(0, 12)
            amount = number(rng, ia, rng.randint(0, 18))
            price = number(rng, rng.randint(0, 19 - ia), rng.randint(0, 18))
            if i % 17 == 0:
                amount = "0.000000000000000001"
            if i % 19 == 0:
                amount, price = "9999999999.999999999", "9999999999"
            fee = rng.choice(["", "0", number(rng, 3, 18), number(rng, 0, 8)])
            out.writerow([
                f"2025-0{1 + i % 9}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}Z",
                rng.choice(["kraken", "Coinbase"]),
                rng.choice(["BTC/USD", "eth/usdt", "ETH/BTC", "SOL/EUR", "XRP/USDC"]),
                rng.choice(["buy", "SELL"]), amount, price, fee,
                rng.choice(["", "usd", "BTC"]), f"T-{seed}-{i}",
                rng.choice(["", f"O-{i}"]), rng.choice(["", "a note"]),
            ])  # fmt: skip


def careful_check(path: Path) -> None:
    """Every trade's hash is Python's encoding of its stored values; cost is the exact product."""
    with open_ledger(path, read_only=True) as ledger:
        kinds = ledger.kinds("trades")
        rows = ledger.rows("SELECT * FROM trades ORDER BY seq")
        prev = None
        for row in rows:
            assert row_hash(canonical_of("trades", kinds, row)) == row["row_hash"], row["seq"]
            exact = LEDGER_CONTEXT.multiply(row["amount"], row["price"]).quantize(
                SCALE, context=LEDGER_CONTEXT
            )
            assert row["cost"] == exact, (row["amount"], row["price"])
            usd = row["quote"] in ("USD", "USDT", "USDC")
            assert row["total_usd"] == (exact if usd else None)
            if prev is not None:
                assert row["prev_hash"] == prev
            prev = row["row_hash"]
        assert verify.verify_chain(ledger).ok


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bulk_import_hashes_equal_python_encoding_on_random_rows(tmp_path: Path, seed: int) -> None:
    data = tmp_path / "random.csv"
    write_random(data, 1500, seed)
    bulk_path = tmp_path / "bulk.duckdb"
    with open_ledger(bulk_path) as ledger:
        bulk = fast_import.fast_import(ledger, data, NAMES.split(","), "import")
        assert bulk is not None and bulk[:2] == (1500, 1500)  # the bulk path took the file
    careful_check(bulk_path)
    with open_ledger(tmp_path / "careful.duckdb") as ledger:
        _import_row_by_row(ledger, data, "import")
    query = "SELECT * EXCLUDE (seq, prev_hash, row_hash, recorded_at) FROM trades ORDER BY seq"
    with open_ledger(bulk_path, read_only=True) as a:
        with open_ledger(tmp_path / "careful.duckdb", read_only=True) as b:
            assert a.query(query) == b.query(query)
    # The independent verifier agrees with the bytes the bulk path wrote.
    tool = subprocess.run(
        [sys.executable, str(REPO / "tools" / "verify_ledger.py"), str(bulk_path)],
        capture_output=True,
        text=True,
    )
    assert tool.returncode == 0, tool.stdout + tool.stderr


def test_unicode_falls_back_and_still_chains(tmp_path: Path) -> None:
    data = tmp_path / "u.csv"
    write_random(data, 50, 9)
    lines = data.read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",café ☕ 注"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open_ledger(tmp_path / "probe.duckdb") as ledger:
        assert fast_import.fast_import(ledger, data, NAMES.split(","), "import") is None
    with open_ledger(tmp_path / "l.duckdb") as ledger:
        assert import_trades(ledger, data).imported == 50
    careful_check(tmp_path / "l.duckdb")


def test_verify_batches_across_boundaries_find_the_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small batches make the scan thread hand over many batches; an edit in one is found."""
    data = tmp_path / "r.csv"
    write_random(data, 300, 4)
    path = tmp_path / "l.duckdb"
    with open_ledger(path) as ledger:
        import_trades(ledger, data)
    monkeypatch.setattr(verify, "BATCH_ROWS", 7)
    with open_ledger(path, read_only=True) as ledger:
        result = verify.verify_chain(ledger)
        from ccxtkit.ledger.schema import MIGRATIONS

        assert result.ok and result.rows == len(MIGRATIONS) + 301
    con = duckdb.connect(str(path))
    con.execute("UPDATE trades SET notes = 'x' WHERE seq = 150")
    con.close()
    with open_ledger(path, read_only=True) as ledger:
        problem = verify.verify_chain(ledger).problem
    assert problem is not None and problem.seq == 150 and "modified" in problem.reason


def test_bulk_import_keeps_the_first_of_repeated_identical_lines(tmp_path: Path) -> None:
    """A file repeating a trade exactly still takes the bulk path, and records it once."""
    data = tmp_path / "rep.csv"
    write_random(data, 200, 6)
    lines = data.read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join([*lines, lines[3], lines[150], lines[3]]) + "\n", encoding="utf-8")
    path = tmp_path / "l.duckdb"
    with open_ledger(path) as ledger:
        bulk = fast_import.fast_import(ledger, data, NAMES.split(","), "import")
        assert bulk is not None and bulk[:2] == (203, 200)
        ids = [r[0] for r in ledger.query("SELECT trade_id FROM trades ORDER BY seq")]
    assert ids == [line.split(",")[8] for line in lines[1:]]  # file order, each once
    careful_check(path)
