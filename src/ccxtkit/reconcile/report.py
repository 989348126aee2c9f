"""The reconciliation CSVs (DESIGN.md): balances, and the movement findings beside them.

`reports/reconciliation_<label>.csv` with exactly DESIGN's columns, one row per exchange and
asset; `reports/reconciliation_<label>_findings.csv` with one row per finding (an account that
could not be read, and a balance that does not agree, are findings too). `<label>` is the day, or `<start>_<end>` for a range.
`--output FILE` names the first file; the findings file goes beside it as `<stem>_findings.csv`.
Files are written atomically, readable by their owner only.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from ccxtkit.money import cents, fmt
from ccxtkit.workspace import Workspace, write_private

if TYPE_CHECKING:
    from .service import ReconcileResult

BALANCE_COLUMNS = [
    "exchange",
    "asset",
    "local_balance",
    "exchange_balance",
    "discrepancy",
    "discrepancy_usd",
    "status",
]
FINDING_COLUMNS = [
    "exchange",
    "finding",
    "severity",
    "id",
    "timestamp",
    "subject",
    "amount",
    "value_usd",
    "action",
    "detail",
]


#: Balance statuses that no movement finding explains (they get a finding row of their own).
UNEXPLAINED = ("no opening balance", "fee mismatch", "unexplained difference")


def report_paths(ws: Workspace, label: str, output: Path | None) -> tuple[Path, Path]:
    """Where the balances CSV and the findings CSV go."""
    main = output if output is not None else ws.reports_dir / f"reconciliation_{label}.csv"
    suffix = main.suffix or ".csv"
    return main, main.with_name(f"{main.stem}_findings{suffix}")


def _usd(value: Decimal | None) -> str:
    return "" if value is None else f"{cents(value):.2f}"


def _csv(columns: list[str], rows: Iterable[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def balance_rows(result: ReconcileResult) -> list[list[str]]:
    """The balances CSV's rows, in column order."""
    return [
        [
            c.exchange,
            c.asset,
            fmt(c.local),
            fmt(c.actual),
            fmt(c.difference),
            _usd(c.difference_usd),
            c.status,
        ]  # fmt: skip
        for name in sorted(result.accounts)
        for c in result.accounts[name].checks
    ]


def finding_rows(result: ReconcileResult) -> list[list[str]]:
    """The findings CSV's rows, in column order (unreadable accounts first)."""
    rows = []
    for name in sorted(result.accounts):
        acct = result.accounts[name]
        if acct.error:
            rows.append([name, "exchange_unreadable", "warning", "", "", "", "", "", "reported",
                         acct.error])  # fmt: skip
        for f in acct.findings:
            rows.append([
                f.exchange, f.kind, f.severity, f.ref,
                f.timestamp.isoformat() if f.timestamp else "", f.subject,
                "" if f.amount is None else fmt(f.amount), _usd(f.value_usd), f.action, f.detail,
            ])  # fmt: skip
        for c in acct.checks:  # a difference no movement explains is a finding too
            if not c.ok and any(label in c.status for label in UNEXPLAINED):
                rows.append([c.exchange, "balance_mismatch", "warning", "", "", c.asset,
                             fmt(c.difference), _usd(c.difference_usd), "reported",
                             c.status])  # fmt: skip
    return rows


def write_reports(ws: Workspace, result: ReconcileResult, output: Path | None) -> tuple[Path, Path]:
    """Write both CSVs (mode 0600) and return their paths."""
    main, findings = report_paths(ws, result.period.label, output)
    write_private(main, _csv(BALANCE_COLUMNS, balance_rows(result)))
    write_private(findings, _csv(FINDING_COLUMNS, finding_rows(result)))
    return main, findings
