"""`vhc serve [--host H] [--port P]` and `vhc serve token create | list | revoke`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from .output import console, local_time, print_json, state, table, time_header

if TYPE_CHECKING:
    from ccxtkit.serve.tokens import TokenRecord

app = typer.Typer(
    help="Serve the HTTP API and the signal webhooks; manage its API tokens.",
    invoke_without_command=True,
)
token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (default 127.0.0.1: this host only).")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=1, max=65535, help="Port to listen on (default 8787).")
    ] = 8787,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=0, help="Signal workers (default signals.workers; 0: none)."),
    ] = None,
) -> None:
    """Serve the API under /api/v1 in the foreground, with the signal workers; SIGTERM stops.

    In-flight requests finish and each worker stops between signals; the exit is 0.
    Example: vhc --home /srv/vhc serve --port 8787
    """
    if ctx.invoked_subcommand is not None:
        return
    from ccxtkit.serve.server import serve as run

    run(state(ctx).workspace, host, port, workers)


def _record(r: TokenRecord, now: Any) -> dict[str, Any]:
    return {
        "name": r.name,
        "role": r.role,
        "jti": r.jti,
        "status": r.status(now),
        "created_at": r.created_at,
        "expires_at": r.expires_at,
        "created_by": r.created_by,
        "revoked_at": r.revoked_at,
        "revoked_by": r.revoked_by,
    }


@token_app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="A name for whoever holds it.")],
    role: Annotated[str, typer.Option("--role", help="admin, trader or viewer.")],
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime, e.g. 30d, 12h, 2w.")] = "30d",
) -> None:
    """Create an API token and print it once (only its name, role and expiry are recorded).

    viewer reads; trader also submits and cancels orders and activates the kill switch;
    admin also lifts the kill switch (with a 2FA code).
    Example: vhc serve token create --name grafana --role viewer --ttl 90d
    """
    from datetime import UTC, datetime

    from ccxtkit.serve.tokens import create_token, parse_role, parse_ttl

    ws = state(ctx).workspace
    chosen = parse_role(role)
    lifetime = parse_ttl(ttl, ws.config.serve.max_token_ttl_days)
    issued = create_token(ws, name, chosen, lifetime)
    if state(ctx).json:
        print_json({**_record(issued.record, datetime.now(UTC)), "token": issued.token})
        return
    r = issued.record
    console.print(
        f"token {r.name!r} ({r.role}) valid until {r.expires_at:%Y-%m-%d %H:%M} UTC; "
        "it is shown only now:",
        markup=False,
        highlight=False,
    )
    typer.echo(issued.token)


@token_app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """List every token on the record: active, expired and revoked (never the tokens).

    Example: vhc serve token list --json
    """
    from datetime import UTC, datetime

    from ccxtkit.serve.tokens import list_tokens

    ws = state(ctx).workspace
    now = datetime.now(UTC)
    records = list_tokens(ws)
    if state(ctx).json:
        print_json([_record(r, now) for r in records])
        return
    rows = [
        [r.name, r.role, r.status(now), local_time(ws, r.created_at), local_time(ws, r.expires_at)]
        for r in records
    ]
    header = ["name", "role", "status", time_header(ws, "created"), time_header(ws, "expires")]
    console.print(table("API tokens", header, rows))


@token_app.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name.")],
) -> None:
    """Revoke a token now; a running `vhc serve` refuses it (401) from its next request.

    Example: vhc serve token revoke grafana
    """
    from datetime import UTC, datetime

    from ccxtkit.serve.tokens import revoke_token

    ws = state(ctx).workspace
    done = revoke_token(ws, name)
    if state(ctx).json:
        now = datetime.now(UTC)
        print_json({"revoked": [_record(r, now) for r in done]})
    elif done:
        console.print(f"revoked token {name!r}", markup=False, highlight=False)
    else:
        console.print(f"token {name!r} was already revoked", markup=False, highlight=False)


def register(root: typer.Typer) -> None:
    """Mount `vhc serve` on the root app."""
    root.add_typer(app, name="serve")
