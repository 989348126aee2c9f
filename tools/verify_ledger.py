#!/usr/bin/env python3
"""Independent verifier of a vhc ledger: plain duckdb + hashlib, no vhc code.

Usage: python tools/verify_ledger.py LEDGER.duckdb [DIGEST.json]
Exit 0 when the chain (and the digest, if given) verifies, 6 otherwise, naming the first bad row.
Every table whose first four columns are `seq, prev_hash, row_hash, recorded_at` is chained;
its columns are hashed in the order stored in the file.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import sys
from decimal import Context, Decimal

import duckdb

CHAIN_PREFIX = ["seq", "prev_hash", "row_hash", "recorded_at"]
GENESIS = "0" * 64
#: DECIMAL(38,18) holds 38 digits: more than Decimal's default precision of 28.
WIDE = Context(prec=80)


def text_of(value: object, sql_type: str) -> str | None:
    """The canonical text of one value (see docs/ledger-format.md, 'Values')."""
    if value is None:
        return None
    if sql_type.startswith("DECIMAL"):
        d = Decimal(value).quantize(Decimal("1E-18"), context=WIDE)  # type: ignore[arg-type]
        return format(d if d else Decimal(0).quantize(Decimal("1E-18")), "f")
    if sql_type.startswith("TIMESTAMP"):
        return value.isoformat(timespec="microseconds") + "Z"  # type: ignore[attr-defined]
    if sql_type == "BOOLEAN":
        return "true" if value else "false"
    return str(value)


def field(text: str | None) -> str:
    return "~" if text is None else f"{len(text.encode('utf-8'))}:{text}"


def rows_of(con: duckdb.DuckDBPyConnection, table: str):  # type: ignore[no-untyped-def]
    cols = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    names = [c[0] for c in cols]
    types = dict(cols)
    cur = con.execute(f'SELECT * FROM "{table}" ORDER BY seq')
    while batch := cur.fetchmany(10_000):
        for row in batch:
            seq, prev, stored = row[0], row[1], row[2]
            canon = "vhc1" + field(table) + field(str(seq)) + field(prev)
            canon += "".join(
                field(text_of(v, types[n])) for n, v in zip(names[3:], row[3:], strict=True)
            )
            yield seq, table, prev, stored, hashlib.sha256(canon.encode("utf-8")).hexdigest()


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    con = duckdb.connect(argv[1], read_only=True)
    # A ledger holds tables only: a macro or view stored in it could change what a query means.
    stored = con.execute(
        "SELECT function_name FROM system.main.duckdb_functions() WHERE NOT internal "
        "UNION ALL SELECT view_name FROM system.main.duckdb_views() "
        "WHERE NOT internal AND NOT temporary "
        "UNION ALL SELECT sequence_name FROM system.main.duckdb_sequences()"
    ).fetchall()
    if stored:
        print(f"FAIL the file holds objects a ledger never has: {sorted(r[0] for r in stored)}")
        return 6
    # Every table whose first columns are the chain columns is part of the chain.
    chained = [
        t
        for (t,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        if [
            c[0]
            for c in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                "ORDER BY ordinal_position LIMIT 4",
                [t],
            ).fetchall()
        ]
        == CHAIN_PREFIX
    ]
    streams = [rows_of(con, t) for t in chained]
    expected_seq, prev_hash, count = 1, GENESIS, 0
    hashes: dict[int, str] = {}
    digest = json.loads(open(argv[2]).read()) if len(argv) == 3 else None
    for seq, table, prev, stored, calc in heapq.merge(*streams, key=lambda r: r[0]):
        count += 1
        problem = None
        if seq != expected_seq:
            problem = f"expected seq {expected_seq}, found {seq}"
        elif prev != prev_hash:
            problem = "does not link to the row before it"
        elif calc != stored:
            problem = "contents do not match the row's hash"
        if problem:
            print(f"FAIL row seq {seq} (table {table}): {problem}")
            return 6
        if digest and seq == digest["seq"]:
            hashes[seq] = stored
        expected_seq, prev_hash = seq + 1, stored
    if digest and digest["seq"] > 0 and hashes.get(digest["seq"]) != digest["hash"]:
        print(f"FAIL digest seq {digest['seq']}: missing or different (truncated or rewritten)")
        return 6
    print(f"OK {count} rows, head seq {expected_seq - 1} hash {prev_hash}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
