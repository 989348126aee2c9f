"""`vhc exchanges`."""

from __future__ import annotations

from typing import Annotated

import typer

from .output import console, print_json, state, table


def exchanges(
    ctx: typer.Context,
    exchange: Annotated[str | None, typer.Option("--exchange", help="Only this account.")] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Reload each account's market list from the exchange.")
    ] = False,
) -> None:
    """Show each account's guarantees and market list; --refresh reloads the markets.

    Exit 5 when an account could not be reached.
    Example: vhc exchanges --refresh
    """
    from ..exchanges.accounts_report import report_accounts

    reports = report_accounts(state(ctx).workspace, exchange, refresh)
    if state(ctx).json:
        print_json({"accounts": reports})
    else:
        rows = [
            [
                r.account,
                r.exchange,
                "yes" if r.enabled else "no",
                r.client_id_lookup,
                "-" if r.markets is None else str(r.markets),
                r.markets_source
                if r.markets_age_seconds is None
                else f"{r.markets_source}, {r.markets_age_seconds} s old",
                r.error or "",
            ]
            for r in reports
        ]
        headers = [
            "account",
            "exchange",
            "enabled",
            "lookup by client id",
            "markets",
            "list",
            "error",
        ]
        console.print(table("vhc exchanges", headers, rows))
    if any(r.error for r in reports):
        raise typer.Exit(5)


def register(root: typer.Typer) -> None:
    """Mount `exchanges` on the root app."""
    root.command("exchanges")(exchanges)
