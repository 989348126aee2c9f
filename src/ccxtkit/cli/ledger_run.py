"""`vhc ledger verify` and `vhc ledger import --trades`: the work and the rendering, without typer.

`app.main` calls these directly for their plain spellings (the nightly verify, a bulk import:
whole-file commands whose start-up counts against their rows per second); `ledger_cmd` calls
them after typer has parsed anything else.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ccxtkit.errors import LedgerIntegrityError

from .output import State, is_dash, print_json, say, stdin_file


def run_verify(st: State, digest: Path | None) -> None:
    """Check every row's hash and link (and the digest); exit 6 naming the first bad row."""
    from ccxtkit.ledger.verify import (
        alert_failure,
        check_digest,
        read_digest,
        record_outcome,
        verify_chain,
    )

    ws = st.workspace
    expected = read_digest(digest) if digest else None
    # Read-only: checking must not change the evidence (no migration, no outbox, no event).
    try:
        with ws.open_ledger(read_only=True) as ledger:
            result = verify_chain(ledger)
            problem = result.problem
            if problem is None and expected is not None:
                problem = check_digest(ledger, expected)
    except LedgerIntegrityError as exc:
        # A file vhc refuses to read is a failed verify too: the nightly cron must hear of it.
        alert_failure(ws, exc.message)
        record_outcome(ws, False, 0, None)
        raise
    record_outcome(ws, problem is None, result.rows, result.head)
    if st.json:
        print_json(
            {
                "ok": problem is None,
                "rows": result.rows,
                "head": {"seq": result.head.seq, "hash": result.head.hash},
                "digest_checked": expected is not None,
                "problem": problem.describe() if problem else None,
            }
        )
    if problem is not None:
        message = f"ledger verify failed at {problem.describe()}"
        alert_failure(ws, message)
        raise LedgerIntegrityError(message)
    if not st.json:
        extra = f", extends digest seq {expected.seq}" if expected else ""
        say(f"ledger OK: {result.rows} rows, head seq {result.head.seq}{extra}")


def run_import_trades(st: State, trades: Path) -> None:
    """Import vhc's trades CSV (`-`: stdin) in one transaction; known trades are skipped."""
    from ccxtkit.ledger.trades_csv import import_trades

    ws = st.workspace  # no workspace: that is the first thing to say
    with stdin_file(trades) as path, ws.open_ledger() as ledger:
        result = import_trades(ledger, path)
    if is_dash(trades):
        result = replace(result, file=trades)  # `-`, not the private copy's temporary path
    if st.json:
        print_json(result)
    else:
        say(
            f"{result.file}: {result.rows} rows, {result.imported} imported, "
            f"{result.duplicates} already in the ledger"
        )
