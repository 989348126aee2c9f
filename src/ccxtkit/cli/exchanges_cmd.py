"""`vhc exchanges`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .output import console, print_json, state, table

if TYPE_CHECKING:
    from ..exchanges.accounts_report import AccountReport


def exchanges(
    ctx: typer.Context,
    exchange: Annotated[str | None, typer.Option("--exchange", help="Only this account.")] = None,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Reload each account's market list from the exchange.")
    ] = False,
) -> None:
    """Show each account's guarantees and market list; --refresh reloads the markets.

    Guarantees: order lookup by client id (proven: a lost reply is resolved without a second
    send; unproven: live trading refused unless allow_unproven_lookup), fills and transfer
    history, exchange ledger, cancel-all, sandbox, withdrawals by address or named key.

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
        for r in reports:
            console.print(table(f"{r.account}: guarantees", ["guarantee", "holds"], _rows(r)))
    if any(r.error for r in reports):
        raise typer.Exit(5)


def _rows(r: AccountReport) -> list[list[str]]:
    g = r.guarantees
    if g is None:
        return [["everything", f"unknown: {r.exchange!r} is not a ccxt exchange id"]]
    rows = [
        ["order lookup by client id", f"{g.order_lookup}: {g.order_lookup_how}"],
        ["live trading", r.live_trading],
        ["protocol", g.protocol],
        ["fills history", g.fills_history],
        ["deposits/withdrawals history", g.transfers_history],
        ["exchange ledger (fee currency)", g.exchange_ledger],
        ["cancel-all", g.cancel_all],
        ["sandbox", g.sandbox],
        ["withdrawals", g.withdrawals],
    ]
    if g.notes:
        rows.append(["notes", g.notes])
    return rows


def register(root: typer.Typer) -> None:
    """Mount `exchanges` on the root app."""
    root.command("exchanges")(exchanges)
