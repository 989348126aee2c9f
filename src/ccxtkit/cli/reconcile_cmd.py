"""`vhc reconcile`: the ledger against what the exchanges report."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ccxtkit.errors import ExchangeError, FindingsError
from ccxtkit.money import cents, fmt

from ..records import decimal_str
from .output import console, err_console, note, print_json, state, table

if TYPE_CHECKING:
    from ccxtkit.reconcile.service import Progress, ReconcileResult

_STYLE = {"critical": "bold red", "warning": "yellow", "info": "dim"}


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    """A rich progress line per account on stderr, counting pages fetched."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress as Bar
    from rich.progress import SpinnerColumn, TextColumn

    with Bar(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed} pages"),
        console=err_console,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def step(account: str, what: str) -> None:
            if account not in tasks:
                tasks[account] = bar.add_task(f"reading {account}", total=None)
            bar.update(tasks[account], advance=1, description=f"reading {account}: {what}")

        yield step


def _usd(value: Any) -> str:
    return "" if value is None else f"{cents(value):.2f}"


def _usd_json(value: Any) -> str | None:
    """USD to the cent as a normalized decimal string (docs/json.md), null when unpriced."""
    return None if value is None else decimal_str(cents(value))


def _doc(result: ReconcileResult) -> dict[str, Any]:
    accounts = {}
    for name, a in sorted(result.accounts.items()):
        accounts[name] = {
            "error": a.error,
            "clean": a.clean,
            "discrepancy_usd": _usd_json(a.discrepancy_usd),
            "adopted": {k: fmt(v) for k, v in a.adopted.items()},
            "balances": [
                {"asset": c.asset, "local_balance": fmt(c.local), "exchange_balance": fmt(c.actual),
                 "discrepancy": fmt(c.difference), "discrepancy_usd": _usd_json(c.difference_usd),
                 "status": c.status, "ok": c.ok}
                for c in a.checks
            ],
            "findings": [
                {"kind": f.kind, "label": f.label, "severity": f.severity, "id": f.ref,
                 "timestamp": f.timestamp, "subject": f.subject,
                 "amount": None if f.amount is None else fmt(f.amount),
                 "value_usd": _usd_json(f.value_usd), "action": f.action, "detail": f.detail}
                for f in a.findings
            ],
        }  # fmt: skip
    return {
        "period": {
            "first": result.period.first,
            "last": result.period.last,
            "since": result.period.since,
            "until": result.period.until,
        },  # fmt: skip
        "auto_sync": result.auto_sync,
        "ok": result.exit_code == 0,
        "exit_code": result.exit_code,
        "accounts": accounts,
        "report": result.report_path,
        "findings_report": result.findings_path,
        "alerts": result.alerts,
    }


def _render(result: ReconcileResult) -> None:
    rows = [
        [c.exchange, c.asset, fmt(c.local), fmt(c.actual), fmt(c.difference),
         _usd(c.difference_usd), c.status if c.ok else f"!! {c.status}"]
        for _, a in sorted(result.accounts.items()) for c in a.checks
    ]  # fmt: skip
    title = f"Reconciliation {result.period.label}"
    console.print(table(title, ["exchange", "asset", "local", "exchange", "discrepancy",
                                "USD", "status"], rows))  # fmt: skip
    for name, a in sorted(result.accounts.items()):
        if a.error:
            console.print(f"{name}: COULD NOT BE READ: {a.error}", style="bold red", markup=False)
        if a.adopted:
            held = ", ".join(f"{fmt(v)} {k}" for k, v in sorted(a.adopted.items()))
            console.print(f"{name}: adopted opening balances {held} (cost basis unknown)")
        for f in a.findings:
            console.print(
                f"{name}: [{f.severity}] {f.label} {f.ref} ({f.action}): {f.detail}",
                style=_STYLE.get(f.severity), markup=False, highlight=False,
            )  # fmt: skip
    verdict = {0: "clean", 1: "FINDINGS need a person", 5: "an exchange could not be read"}
    console.print(f"{verdict[result.exit_code]}; report {result.report_path}", markup=False)


def reconcile_cmd(
    ctx: typer.Context,
    exchange: Annotated[
        str | None, typer.Option("--exchange", help="One account (default: every enabled one).")
    ] = None,
    date: Annotated[
        str | None, typer.Option("--date", help="yesterday | today | YYYY-MM-DD (default today).")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="First day, YYYY-MM-DD.")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last day (inclusive).")] = None,
    auto_sync: Annotated[
        bool,
        typer.Option("--auto-sync", help="Append missing trades/transfers; adopt a new account."),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Balances CSV (findings CSV goes beside it)."),
    ] = None,
) -> None:
    """Compare the ledger with each exchange's balances, trades, deposits and withdrawals.

    Days are calendar days in the config's timezone. Exit 0 clean, 1 findings, 5 an exchange
    could not be read (the others are still reconciled and reported).

    Example: vhc reconcile --exchange kraken --start 2025-01-01 --end 2025-01-23
    """
    from ccxtkit.reconcile.service import run

    st = state(ctx)
    with _progress(not st.json) as progress:
        result = run(st.workspace, date, start, end, exchange, auto_sync, output, progress)
    if st.json:
        print_json(_doc(result))
    else:
        _render(result)
    for title in result.alerts:
        note(f"alert: {title}")
    where = f"see {result.findings_path} and {result.report_path}"
    if result.exit_code == 5:
        failed = ", ".join(sorted(n for n, a in result.accounts.items() if a.error))
        raise ExchangeError(
            f"could not read {failed} (the other accounts were reconciled); fix the connection "
            f"or keys and run again; {where}"
        )
    if result.exit_code == 1:
        raise FindingsError(f"the ledger and the exchanges disagree: {where}")


def register(root: typer.Typer) -> None:
    """Mount `reconcile`."""
    root.command("reconcile")(reconcile_cmd)
