"""`vhc kite login [REQUEST_TOKEN]`: the daily Kite Connect session."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import UsageError
from .output import console, local_time, note, print_json, state

STDIN = "-"  # noqa: S105 - the conventional name of stdin, not a secret
app = typer.Typer(help="Zerodha Kite Connect accounts.", no_args_is_help=True)


def _account(ctx: typer.Context, exchange: str | None) -> str:
    from ..exchanges.kite_session import is_kite, kite_accounts

    ws = state(ctx).workspace
    if exchange:
        if not is_kite(ws, exchange):
            raise UsageError(f"{exchange} is not a Kite account (`id: kite` under exchanges:)")
        return exchange
    names = kite_accounts(ws)
    if len(names) != 1:
        raise UsageError(
            f"{'several' if names else 'no'} Kite accounts in the config "
            f"({', '.join(names) or 'none'}); choose one with --exchange"
        )
    return names[0]


@app.command("login")
def login_cmd(
    ctx: typer.Context,
    request_token: Annotated[
        str | None,
        typer.Argument(help="The request_token of Kite's redirect; - reads it from stdin."),
    ] = None,
    exchange: Annotated[
        str | None, typer.Option("--exchange", help="Kite account (default: the only one).")
    ] = None,
) -> None:
    """Log in for the day: print the login URL, exchange the request token, store the session.

    Open the URL, log in, and copy `request_token=...` from the page Kite redirects to. The
    session is stored in the account's secrets backend and ends at 06:00 IST.

    Example: vhc kite login --exchange zerodha; vhc kite login 4Pq... --exchange zerodha
    """
    from ..exchanges.kite_session import login, login_url
    from ..secrets import resolve_credentials

    st = state(ctx)
    ws = st.workspace
    name = _account(ctx, exchange)
    from_stdin = request_token == STDIN
    token = None if from_stdin else request_token
    if token is None:
        creds = resolve_credentials(ws, name)
        url = login_url(creds.api_key) if creds else "(set the API key first)"
        if from_stdin or not sys.stdin.isatty():
            token = sys.stdin.read().strip()
            if not token:
                raise UsageError(f"no request token on stdin; log in at {url} first")
        else:
            note(f"Log in at {url}")
            token = typer.prompt("request_token", hide_input=True).strip()
    result = login(ws, name, token)
    if st.json:
        print_json(result)
        return
    console.print(
        f"Kite session stored for {name} (user {result.user_id}) in {result.stored_in}; "
        f"it ends {local_time(ws, result.expires_at)}"
    )


def register(root: typer.Typer) -> None:
    """Mount `kite`."""
    root.add_typer(app, name="kite")
