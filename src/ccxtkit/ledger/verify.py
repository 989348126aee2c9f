"""Verifying the hash chain, and digests that catch truncation and rewrites."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .chain import GENESIS_HASH, chain_union_sql
from .store import Head, Ledger

#: Rows checked per SQL batch: keeps memory flat however long the ledger is.
BATCH_ROWS = 250_000


@dataclass(frozen=True)
class Problem:
    """The first row where the chain breaks, and what is wrong with it."""

    seq: int
    table: str
    reason: str

    def describe(self) -> str:
        return f"row seq {self.seq} (table {self.table}): {self.reason}"


@dataclass(frozen=True)
class VerifyResult:
    """What verify checked and the first problem it found, if any."""

    rows: int
    head: Head
    problem: Problem | None
    digest_checked: bool = False

    @property
    def ok(self) -> bool:
        return self.problem is None


def _first_break(ledger: Ledger, lo: int, hi: int, prev_seq: int, prev_hash: str) -> Problem | None:
    """First bad row with lo < seq <= hi, given the row before the batch."""
    sql = f"""
        WITH c AS (SELECT * FROM ({chain_union_sql()}) WHERE seq > ? AND seq <= ?),
        b AS (
            SELECT seq, tbl, prev_hash, row_hash, sha256(canon) AS calc,
                   coalesce(lag(seq) OVER w, ?) AS before_seq,
                   coalesce(lag(row_hash) OVER w, ?) AS before_hash
            FROM c WINDOW w AS (ORDER BY seq, tbl)
        )
        SELECT seq, tbl, prev_hash, row_hash, calc, before_seq, before_hash FROM b
        WHERE seq <> before_seq + 1 OR prev_hash <> before_hash OR calc <> row_hash
        ORDER BY seq, tbl LIMIT 1
    """
    row = ledger.query(sql, [lo, hi, prev_seq, prev_hash])
    if not row:
        return None
    seq, table, prev, stored, calc, before_seq, before_hash = row[0]
    if seq == before_seq:
        reason = "sequence number used twice (a row was inserted)"
    elif seq != before_seq + 1:
        reason = (
            f"expected seq {before_seq + 1} next, found {seq} "
            f"(row(s) {before_seq + 1}..{seq - 1} deleted)"
        )
    elif stored != calc:
        reason = "contents do not match the row's hash (the row was modified)"
    else:
        reason = "does not link to the row before it (rows inserted, deleted or reordered)"
    return Problem(int(seq), str(table), reason)


def verify_chain(ledger: Ledger) -> VerifyResult:
    """Check every row's hash and link, in batches; stop at the first break."""
    stats = ledger.query(
        "SELECT count(*), coalesce(max(seq), 0) FROM ("
        + " UNION ALL ".join(f'SELECT seq FROM "{t}"' for t in _tables())
        + ")"
    )[0]
    count, max_seq = int(stats[0]), int(stats[1])
    prev_seq, prev_hash = 0, GENESIS_HASH
    lo = 0
    while lo < max_seq:
        hi = lo + BATCH_ROWS
        problem = _first_break(ledger, lo, hi, prev_seq, prev_hash)
        if problem is not None:
            return VerifyResult(count, ledger.head(), problem)
        last = ledger.query(
            f"SELECT seq, row_hash FROM ({chain_union_sql()}) WHERE seq > ? AND seq <= ? "
            "ORDER BY seq DESC LIMIT 1",
            [lo, hi],
        )
        if last:
            prev_seq, prev_hash = int(last[0][0]), str(last[0][1])
        lo = hi
    if count != max_seq:
        # Contiguity was checked batch by batch, so a mismatch here means duplicate seqs.
        return VerifyResult(count, ledger.head(), Problem(max_seq, "?", "row count mismatch"))
    return VerifyResult(count, ledger.head(), None)


def _tables() -> list[str]:
    from .schema import TABLES

    return list(TABLES)


def make_digest(ledger: Ledger) -> dict[str, object]:
    """The head as {"seq", "hash"}: keep it somewhere the ledger's owner cannot rewrite."""
    head = ledger.head()
    return {"seq": head.seq, "hash": head.hash}


def read_digest(path: Path) -> Head:
    """Load a digest file written by `vhc ledger digest`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Head(int(data["seq"]), str(data["hash"]))
    except FileNotFoundError:
        raise InputError(f"digest file {path} not found") from None
    except (ValueError, KeyError, TypeError):
        raise InputError(
            f'{path}: not a vhc digest (expected JSON {{"seq": N, "hash": "..."}})'
        ) from None


def check_digest(ledger: Ledger, digest: Head) -> Problem | None:
    """Does the ledger still contain the digest's row with the digest's hash?"""
    if digest.seq == 0:
        return None
    found = ledger.query(
        f"SELECT tbl, row_hash FROM ({chain_union_sql()}) WHERE seq = ?", [digest.seq]
    )
    if not found:
        head = ledger.head()
        return Problem(
            digest.seq,
            "?",
            f"the digest's row is gone: the ledger ends at seq {head.seq} (history was truncated)",
        )
    table, stored = found[0]
    if stored != digest.hash:
        return Problem(
            digest.seq, str(table), "hash differs from the digest (history was rewritten)"
        )
    return None
