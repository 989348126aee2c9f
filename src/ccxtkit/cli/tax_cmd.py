"""`vhc tax-report`, `vhc tax elect`, `vhc prices fetch`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer

from ccxtkit.errors import UsageError

from ..records import decimal_str
from .output import console, err_console, note, print_json, state, table

tax_app = typer.Typer(help="Tax elections on the record.", no_args_is_help=True)
prices_app = typer.Typer(help="USD prices for valuation.", no_args_is_help=True)


def _money(value: Any) -> str:
    from ccxtkit.money import cents

    return f"{cents(value):.2f}"


def tax_report_cmd(
    ctx: typer.Context,
    year: Annotated[int, typer.Option("--year", help="Tax year, e.g. 2025.")],
    method: Annotated[
        str | None, typer.Option("--method", help="fifo | lifo | hifo (default: the record).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="CSV path (default reports/tax_YEAR.csv).")
    ] = None,
    what_if: Annotated[
        bool,
        typer.Option("--what-if", help="Scenario with --method; never writes the filing form."),
    ] = False,
) -> None:
    """Form 8949 rows and Schedule D totals for one year, from the ledger.

    Example: vhc tax-report --year 2025 --output reports/tax_2025.csv
    """
    from ccxtkit.tax.report import tax_report

    st = state(ctx)
    report = tax_report(st.workspace, year, method, output, what_if)
    sched = report.schedule

    def part(t: Any) -> dict[str, str]:
        # Rounded to the cent as the form is; normalized as every --json amount is.
        return {
            "proceeds": decimal_str(Decimal(_money(t.proceeds))),
            "cost_basis": decimal_str(Decimal(_money(t.cost_basis))),
            "gain": decimal_str(Decimal(_money(t.gain))),
        }

    if st.json:
        doc: dict[str, Any] = {
            "year": report.year,
            "method": report.method,
            "short_term": part(sched.short_term),
            "long_term": part(sched.long_term),
            "basis": report.basis,
            "rows": len(report.rows),
            "unknown_basis_rows": report.unknown_basis_rows,
            "what_if": report.what_if,
            "output": str(report.output) if report.output else None,
            "warnings": report.warnings,
        }
        print_json(doc)
    else:
        if report.what_if:
            console.print(f"WHAT-IF SCENARIO ({report.method}) - NOT FOR FILING", style="bold red")
        title = f"Schedule D {report.year} ({report.method}, {report.basis})"
        body = [
            [name, _money(t.proceeds), _money(t.cost_basis), _money(t.gain), t.rows]
            for name, t in (("short-term", sched.short_term), ("long-term", sched.long_term))
        ]
        body += [
            [f"  box {box}", _money(t.proceeds), _money(t.cost_basis), _money(t.gain), t.rows]
            for box, t in sorted(sched.by_box.items())
        ]
        console.print(table(title, ["", "proceeds", "cost basis", "gain/loss", "rows"], body))
        console.print(f"Form 8949 rows written to {report.output}")
    for warning in report.warnings:
        note(f"warning: {warning}")


def elect_cmd(
    ctx: typer.Context,
    method: Annotated[str, typer.Option("--method", help="fifo | lifo | hifo.")],
    from_: Annotated[
        str | None, typer.Option("--from", help="First day it governs (default today, UTC).")
    ] = None,
) -> None:
    """Record a standing lot-selection order in the ledger (governs later sales).

    Example: vhc tax elect --method hifo --from 2026-01-01
    """
    from ccxtkit.tax.elections import record_election

    st = state(ctx)
    start = _parse_day(from_, "--from") if from_ else None
    result = record_election(st.workspace, method, start, datetime.now(UTC))
    if st.json:
        print_json(result)
    else:
        console.print(
            f"election recorded: {result['method']} from {result['effective_from']} "
            f"(ledger seq {result['seq']})"
        )


def prices_fetch_cmd(
    ctx: typer.Context,
    symbol: Annotated[
        list[str] | None, typer.Option("--symbol", help="e.g. ETH/USD (repeatable).")
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="YYYY-MM-DD (UTC).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="YYYY-MM-DD, inclusive.")] = None,
    exchange: Annotated[
        str | None, typer.Option("--exchange", help="Account to ask (default: first enabled).")
    ] = None,
) -> None:
    """Fetch hourly USD prices through the exchange's OHLCV into the ledger's price table.

    Example: vhc prices fetch --symbol ETH/USD --start 2025-01-01 --end 2025-12-31
    """
    from datetime import timedelta

    from ccxtkit.tax.prices import fetch_prices

    st = state(ctx)
    lo = datetime.combine(_parse_day(start, "--start"), datetime.min.time()) if start else None
    hi = (
        datetime.combine(_parse_day(end, "--end") + timedelta(days=1), datetime.min.time())
        if end
        else None
    )
    if (lo is None) != (hi is None):
        raise UsageError("give both --start and --end, or neither")
    now = datetime.now(UTC).replace(tzinfo=None)
    if st.json or st.quiet or not err_console.is_terminal:
        result = fetch_prices(st.workspace, symbol or None, lo, hi, exchange, now)
    else:  # a progress bar for people; scripts and cron get none
        from rich.progress import Progress

        with Progress(console=err_console, transient=True) as bar:
            tasks: dict[str, Any] = {}

            def advance(name: str, done: float) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=1.0)
                bar.update(tasks[name], completed=done)

            result = fetch_prices(st.workspace, symbol or None, lo, hi, exchange, now, advance)
    if st.json:
        print_json(result)
    else:
        console.print(
            f"{result.exchange}: {result.fetched} hourly prices fetched for "
            f"{', '.join(result.symbols) or 'no symbols'}, {result.recorded} new recorded"
        )


def _parse_day(text: str | None, flag: str) -> date:
    try:
        return date.fromisoformat(str(text))
    except ValueError:
        raise UsageError(f"{flag} {text!r}: use a date like 2025-01-31") from None


def register(root: typer.Typer) -> None:
    """Mount `tax-report`, `tax elect` and `prices fetch` on the root app."""
    root.command("tax-report")(tax_report_cmd)
    tax_app.command("elect")(elect_cmd)
    prices_app.command("fetch")(prices_fetch_cmd)
    root.add_typer(tax_app, name="tax")
    root.add_typer(prices_app, name="prices")
