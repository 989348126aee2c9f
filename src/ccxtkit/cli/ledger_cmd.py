"""`vhc ledger verify | digest | import | sync | export | log | backup | restore`."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ..records import ledger_event_record
from ..workspace import write_output
from .output import (
    console,
    err_console,
    is_dash,
    local_time,
    note,
    print_json,
    state,
    stdout_file,
    table,
    time_header,
)

app = typer.Typer(
    help="Verify, digest, import, export, read, back up and restore the ledger.",
    no_args_is_help=True,
)


@app.command("verify")
def verify(
    ctx: typer.Context,
    digest: Annotated[
        Path | None, typer.Option("--digest", help="Also prove the ledger extends this digest.")
    ] = None,
) -> None:
    """Check every row's hash and link; exit 6 naming the first bad row.

    Example: vhc ledger verify --digest /mnt/offsite/vhc-digest.json
    """
    from .ledger_run import run_verify

    run_verify(state(ctx), digest)


@app.command("digest")
def digest(
    ctx: typer.Context,
    output: Annotated[Path | None, typer.Option("--output", help="Write the digest here.")] = None,
) -> None:
    """Print the head sequence number and hash; keep it where the ledger cannot rewrite it.

    Example: vhc ledger digest --output /mnt/offsite/vhc-digest.json
    """
    from ..ledger.verify import make_digest
    from ..workspace import output_path

    if output is not None and not is_dash(output):
        output_path(output)  # before the ledger is even opened
    with state(ctx).workspace.open_ledger(read_only=True) as ledger:
        data = make_digest(ledger)
    if output is not None and not is_dash(output):
        write_output(output, json.dumps(data) + "\n")
    if state(ctx).json:
        print_json(data)
    else:
        typer.echo(json.dumps(data))


@app.command("import")
def import_(
    ctx: typer.Context,
    trades: Annotated[
        Path | None, typer.Option("--trades", help="Trades CSV (docs/csv.md); - reads stdin.")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option("--from", help="An exchange's own export: coinbase, kraken or binanceus."),
    ] = None,
    file: Annotated[Path | None, typer.Argument(help="The export file (with --from).")] = None,
    exchange: Annotated[
        str | None,
        typer.Option(
            "--exchange", help="With --from: the account it belongs to (default: its name)."
        ),
    ] = None,
) -> None:
    """Import trades (--trades, vhc's CSV: all rows or none) or an exchange's own history
    export (--from); anything already recorded is skipped.

    Example: vhc ledger import --trades kraken_2025.csv (or: --from coinbase coinbase.csv)
    """
    from ..errors import UsageError

    state(ctx).workspace  # noqa: B018 - no workspace: that is the first thing to say
    if source is not None or file is not None:
        if trades is not None or source is None or file is None:
            raise UsageError("use either --trades FILE or --from EXCHANGE FILE")
        _import_export(ctx, source, file, exchange)
        return
    if trades is None:
        raise UsageError("give --trades FILE or --from coinbase|kraken|binanceus FILE")
    from .ledger_run import run_import_trades

    run_import_trades(state(ctx), trades)


def _import_export(ctx: typer.Context, source: str, file: Path, exchange: str | None) -> None:
    from ..errors import FindingsError
    from ..ledger.exchange_csv import import_export

    ws = state(ctx).workspace
    result = import_export(ws, source, file, exchange)
    if state(ctx).json:
        print_json(result)
    else:
        console.print(
            f"{result.file}: {result.rows} rows from {result.source} into account "
            f"{result.exchange}: {result.added} recorded, {result.known} already in the ledger"
        )
        for what, count in sorted(result.skipped.items()):
            note(f"skipped {count} row(s) of type {what}")
    problems = []
    if result.unknown:
        listed = "; ".join(
            f"{kind} (line {', '.join(str(n) for n in lines[:5])}{', ...' if len(lines) > 5 else ''})"
            for kind, lines in sorted(result.unknown.items())
        )
        problems.append(f"{file}: row types vhc does not know, not imported: {listed}")
    if result.conflicts:
        problems.append(
            f"{len(result.conflicts)} row(s) conflict with the ledger "
            f"({', '.join(result.conflicts[:5])}): kept out and recorded as conflict events; "
            "`vhc ledger log` shows them"
        )
    if problems:
        raise FindingsError("; ".join(problems))


@app.command("sync")
def sync(
    ctx: typer.Context,
    exchange: Annotated[str, typer.Option("--exchange", help="The account to backfill.")],
    since: Annotated[
        str, typer.Option("--since", help="Start of the history: YYYY-MM-DD (UTC) or ISO time.")
    ],
) -> None:
    """Backfill fills, deposits and withdrawals from the exchange; resumable, each once.

    Example: vhc ledger sync --exchange kraken --since 2021-01-01
    """
    from ..errors import FindingsError
    from ..ledger.sync import parse_since, sync_account

    st = state(ctx)
    ws = st.workspace  # no workspace: that is the first thing to say
    start = parse_since(since)
    with _sync_progress(not st.json and err_console.is_terminal, exchange) as progress:
        result = sync_account(ws, exchange, start, progress=progress)
    if st.json:
        print_json(result)
    else:
        added = ", ".join(f"{n} {k}" for k, n in result.added.items())
        console.print(
            f"{exchange}: {added} recorded ({sum(result.known.values())} already in the "
            f"ledger) in {result.batches} batches, {result.pages} pages"
        )
        if result.pending:
            note(
                f"{len(result.pending)} transfer(s) still pending: run sync again once they complete"
            )
    if result.conflicts:
        raise FindingsError(
            f"{len(result.conflicts)} exchange record(s) conflict with the ledger "
            f"({', '.join(result.conflicts[:5])}): kept out; `vhc ledger log` shows them"
        )


@contextmanager
def _sync_progress(
    enabled: bool, exchange: str
) -> Iterator[Callable[[str, int, int], None] | None]:
    """A rich progress line on stderr (a terminal only): kind, pages, rows."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err_console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"syncing {exchange}", total=None)

        def step(kind: str, pages: int, rows: int) -> None:
            bar.update(task, description=f"syncing {exchange}: {kind}, {pages} pages, {rows} rows")

        yield step


@app.command("export")
def export(
    ctx: typer.Context,
    table_name: Annotated[str, typer.Option("--table", help="Ledger table.")] = "trades",
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or json.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", help="Output file; - writes to stdout.")
    ] = None,
) -> None:
    """Export a ledger table (default: trades as CSV into reports/).

    Example: vhc ledger export --table transfers --format parquet
    """
    from ..ledger.export import export_table

    ws = state(ctx).workspace
    target = output or ws.reports_dir / f"{table_name}.{fmt}"
    with stdout_file(target) as path, ws.open_ledger(read_only=True) as ledger:
        result = export_table(ledger, table_name, fmt, path)
    if is_dash(target):  # stdout holds the data: the summary goes to stderr
        note(f"wrote {result.rows} {result.table} rows to stdout")
    elif state(ctx).json:
        print_json(result)
    else:
        console.print(f"wrote {result.rows} {result.table} rows to {result.path}")


@app.command("log")
def log_(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many events.")] = 50,
) -> None:
    """Show the audit trail of control actions, newest first.

    Example: vhc ledger log --limit 20
    """
    from ..ledger.export import audit_log

    ws = state(ctx).workspace
    with ws.open_ledger(read_only=True) as ledger:
        events = audit_log(ledger, limit)
    if state(ctx).json:
        print_json([ledger_event_record(e) for e in events])
        return
    rows = [
        [
            e["seq"],
            local_time(ws, e["timestamp"], seconds=True),
            e["kind"],
            e["actor"],
            e["subject"],
            e["details"],
        ]
        for e in events
    ]
    columns = ["seq", time_header(ws), "event", "actor", "subject", "details"]
    console.print(table("Audit trail", columns, rows))


@app.command("backup")
def backup(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Backup file (default backups/vhc-<UTC time>.vhcbak)."),
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option("--keep", min=1, help="Then keep only the newest N vhc-*.vhcbak there."),
    ] = None,
) -> None:
    """Write an encrypted, verified copy of the ledger (key: the `backup_key` secret).

    Example: vhc ledger backup --output /mnt/offsite/vhc-2025-06-01.vhcbak
    """
    from ..ledger.backup import take_backup

    result = take_backup(state(ctx).workspace, output, keep)
    if state(ctx).json:
        print_json(
            {
                "path": str(result.path),
                "digest": str(result.digest_path),
                "rows": result.rows,
                "head": {"seq": result.head.seq, "hash": result.head.hash},
                "removed": [str(p) for p in result.removed],
            }
        )
    else:
        console.print(
            f"backup of {result.rows} rows (head seq {result.head.seq}) written to "
            f"{result.path}, digest beside it"
        )


@app.command("restore")
def restore(
    ctx: typer.Context,
    backup_file: Annotated[Path, typer.Argument(help="A file written by `vhc ledger backup`.")],
    to: Annotated[Path, typer.Option("--to", help="An empty folder for vhc.duckdb.")],
) -> None:
    """Decrypt a backup into a folder; refused (exit 6) unless it verifies against its digest.

    Example: vhc ledger restore /mnt/offsite/vhc-2025-06-01.vhcbak --to /srv/vhc-restored
    """
    from ..ledger.backup import restore_backup

    result = restore_backup(state(ctx).workspace, backup_file, to)
    if state(ctx).json:
        print_json(
            {
                "path": str(result.path),
                "rows": result.rows,
                "head": {"seq": result.head.seq, "hash": result.head.hash},
            }
        )
    else:
        console.print(
            f"restored {result.rows} rows (head seq {result.head.seq}, verified) to {result.path}"
        )


def register(root: typer.Typer) -> None:
    """Mount the `ledger` group."""
    root.add_typer(app, name="ledger")
