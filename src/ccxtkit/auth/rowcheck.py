"""A quick local check of the ledger rows a control relies on (not a full `ledger verify`).

Each relied-upon `control_events` row must still hash to its `row_hash`, and the rows next to
it must still link to it. An in-place edit of a sealed record's row (say, pointing the control
key's record at another backend) is then caught at once (exit 6), without reading the whole
chain. A rewrite that re-hashes everything after the row is not: that takes `vhc ledger verify
--digest` against a digest kept elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable

from ccxtkit.errors import LedgerIntegrityError
from ccxtkit.ledger.chain import canonical_select, chain_union_sql, row_hash
from ccxtkit.ledger.store import Ledger


def check_rows(ledger: Ledger, seqs: Iterable[int], what: str) -> None:
    """Raise LedgerIntegrityError unless every row `seqs` of control_events is intact."""
    wanted = sorted({int(s) for s in seqs})
    if not wanted:
        return
    marks = ", ".join("?" for _ in wanted)
    own = ledger.query(
        f"SELECT seq, prev_hash, row_hash, canon FROM ({canonical_select('control_events')})"
        f" WHERE seq IN ({marks})",
        wanted,
    )
    hashes: dict[int, str] = {}
    for seq, _, stored, canon in own:
        # Hashed here, not by the file's SQL: nothing inside the file decides what is intact.
        if row_hash(canon or "") != stored:
            raise _edited(what, int(seq), "its content no longer matches its hash")
        hashes[int(seq)] = str(stored)
    around = sorted({s + 1 for s in wanted} | {s - 1 for s in wanted if s > 1})
    marks = ", ".join("?" for _ in around)
    links = ledger.query(
        f"SELECT seq, prev_hash, row_hash FROM ({chain_union_sql()}) WHERE seq IN ({marks})",
        around,
    )
    by_seq = {int(s): (str(p), str(h)) for s, p, h in links}
    prevs = {int(s): str(p) for s, p, _, _ in own}
    for seq, digest in hashes.items():
        after = by_seq.get(seq + 1)
        if after is not None and after[0] != digest:
            raise _edited(what, seq, "the next row does not link to it")
        before = by_seq.get(seq - 1)
        if before is not None and prevs[seq] != before[1]:
            raise _edited(what, seq, "it does not link to the row before it")


def _edited(what: str, seq: int, reason: str) -> LedgerIntegrityError:
    return LedgerIntegrityError(
        f"{what}: ledger row seq {seq} was edited ({reason}); refused — run `vhc ledger "
        "verify` and restore the ledger from a backup"
    )
