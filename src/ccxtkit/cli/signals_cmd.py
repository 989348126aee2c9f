"""`vhc signals list|retry|drop|work`: the queue of webhook signals."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import FindingsError, UsageError
from ..money import fmt
from .output import console, local_time, print_json, state, table, time_header

app = typer.Typer(
    help="The queue of trading signals from webhooks: list, retry, drop, work.",
    no_args_is_help=True,
)

IdArg = Annotated[str, typer.Argument(help="The signal's id (or a unique prefix of it).")]


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="queued|working|retry|unknown|executed|refused|dead|dropped (default all).",
        ),
    ] = None,
) -> None:
    """List signals with their current state, oldest first.

    Example: vhc signals list --status dead
    """
    from ..signals.queue import list_signals

    st = state(ctx)
    found = list_signals(st.workspace, status)
    if st.json:
        print_json(found)
        return
    ws = st.workspace
    rows = [
        [
            local_time(ws, r.received_at, seconds=True),
            r.signal_id,
            r.source,
            r.exchange,
            f"{r.side} {fmt(r.amount)} {r.symbol}",
            r.type,
            r.status,
            r.attempt,
            local_time(ws, r.next_attempt_at, seconds=True) if r.next_attempt_at else "",
            r.reason or "",
        ]
        for r in found
    ]
    columns = [time_header(ws, "received"), "signal_id", "source", "exchange", "order", "type"]
    columns += ["status", "attempts", "next attempt", "reason"]
    console.print(table(f"signals ({status or 'all'})", columns, rows))


@app.command("retry")
def retry(ctx: typer.Context, signal_id: IdArg) -> None:
    """Put a dead, refused or waiting signal back in the queue, due now.

    Example: vhc signals retry 1b2c3d4e
    """
    from ..signals.queue import retry as do_retry

    st = state(ctx)
    record = do_retry(st.workspace, signal_id)
    if st.json:
        print_json(record)
    else:
        console.print(f"signal {record.signal_id} queued again ({record.status})")


@app.command("drop")
def drop(
    ctx: typer.Context,
    signal_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded in the ledger.")],
) -> None:
    """Take a signal out of the queue for good (never executed afterwards).

    Example: vhc signals drop 1b2c3d4e --reason "sent by mistake"
    """
    from ..signals.queue import drop as do_drop

    st = state(ctx)
    record = do_drop(st.workspace, signal_id, reason)
    if st.json:
        print_json(record)
    else:
        console.print(f"signal {record.signal_id} dropped: {reason}")


@app.command("work")
def work(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="One pass over the due signals, then exit (cron).")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", help="At most this many signals in the pass.")
    ] = None,
) -> None:
    """Execute the due signals once (for cron; `vhc serve` runs workers all the time).

    Example: vhc signals work --once
    """
    from ..signals.worker import work_pass

    st = state(ctx)
    ws = st.workspace  # no workspace: that error first
    if not once:
        raise UsageError("use `vhc signals work --once` (the workers of `vhc serve` run always)")
    if limit is not None and limit < 1:
        raise UsageError("--limit must be at least 1")
    results = work_pass(ws, limit)
    if st.json:
        print_json(results)
    else:
        for r in results:
            console.print(f"{r.signal_id}: {r.status} (attempt {r.attempt}): {r.message}")
        if not results:
            console.print("no signal is due")
    dead = [r.signal_id for r in results if r.status == "dead"]
    if dead:
        raise FindingsError(
            f"{len(dead)} signal(s) moved to the dead letter: see `vhc signals list --status dead`"
        )


def register(root: typer.Typer) -> None:
    """Mount `signals`."""
    root.add_typer(app, name="signals")
