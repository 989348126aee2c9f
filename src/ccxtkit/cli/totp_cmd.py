"""`vhc totp setup | list`: enrol the TOTP secrets of the approvers."""

from __future__ import annotations

import io
import json
from typing import Annotated

import typer

from ccxtkit.errors import UsageError

from .output import console, note, print_json, state, table

app = typer.Typer(
    help="Enrol the 2FA (TOTP) secrets used by deactivate and approve.", no_args_is_help=True
)


def _qr_text(uri: str) -> str | None:
    """The URI as a terminal QR code, or None when the `qrcode` package is missing."""
    try:
        import qrcode  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    code = qrcode.QRCode(border=1)
    code.add_data(uri)
    out = io.StringIO()
    code.print_ascii(out=out, invert=True)
    return out.getvalue()


@app.command("setup")
def setup(
    ctx: typer.Context,
    approver: Annotated[
        str, typer.Option("--approver", help="Who this secret belongs to (default admin).")
    ] = "admin",
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="keyring | vault | vault-engine (Vault checks the codes) | aws | "
            "env (development only: you export it).",
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace an enrolled secret (needs --auth-code).")
    ] = False,
    auth_code: Annotated[
        str | None,
        typer.Option(
            "--auth-code",
            help="A current code: of the secret replaced, or of an enrolled approver "
            "when adding another.",
        ),
    ] = None,
    by: Annotated[
        str | None, typer.Option("--by", help="Which enrolled approver --auth-code is from.")
    ] = None,
    qr: Annotated[bool, typer.Option("--qr/--no-qr", help="Print a QR code to scan.")] = True,
) -> None:
    """Create an approver's TOTP secret, store it, and show it once to scan into an app.

    The secret is shown only now (as an otpauth:// URI and a QR code): scan it into an
    authenticator app, then clear the terminal. The enrolment is a sealed ledger event.
    With --backend vault-engine the key is made inside Vault's TOTP engine, which checks
    every code: the secret is never stored on this machine.

    Adding a second approver needs a code from the first: vhc totp setup --approver bob
    --auth-code 123456 --by admin. Example: vhc totp setup --approver alice
    """
    from ccxtkit.auth.totp import enrol, enrolled_approvers

    ws = state(ctx).workspace
    if approver in enrolled_approvers(ws) and not replace:
        raise UsageError(
            f"approver {approver!r} is already enrolled; to replace its secret add --replace "
            "--auth-code CODE"
        )
    if replace and not auth_code:
        raise UsageError("--replace needs --auth-code with a current code of the old secret")
    result = enrol(ws, approver, backend=backend, replace_code=auth_code, vouched_by=by)
    exports = [f"{k}={v}" for k, v in result.exports.items()]
    if state(ctx).json:
        # Printed raw on purpose: the one moment the secret is shown; redaction would hide it.
        doc: dict[str, object] = {
            "approver": result.approver,
            "stored_in": result.stored_in,
            "location": result.location,
            "uri": result.uri,
        }
        if exports:
            doc["export"] = exports
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo(f"approver: {result.approver}   secret stored in: {result.location}")
    typer.echo(f"otpauth URI (add it to your authenticator app): {result.uri}")
    if qr:
        text = _qr_text(result.uri)
        if text:
            typer.echo(text)
    for line in exports:
        typer.echo(
            f"no secrets backend stored it: put this in the environment of vhc: export {line}"
        )
    note("this secret is shown once; clear the terminal when the app shows codes")


@app.command("remove")
def remove(
    ctx: typer.Context,
    approver: Annotated[str, typer.Option("--approver", help="The approver to remove.")],
    auth_code: Annotated[str, typer.Option("--auth-code", help="A current code (see --by).")],
    by: Annotated[
        str | None,
        typer.Option("--by", help="Whose code it is (default: the approver removed)."),
    ] = None,
) -> None:
    """Remove an approver (a sealed ledger event); the last one cannot be removed.

    Example: vhc totp remove --approver bob --auth-code 123456 --by admin
    """
    from ccxtkit.auth.totp import remove as do_remove

    do_remove(state(ctx).workspace, approver, auth_code, by)
    if state(ctx).json:
        print_json({"removed": approver})
    else:
        typer.echo(f"approver {approver} removed")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List the enrolled approvers, as the ledger records them (never their secrets).

    Example: vhc totp list
    """
    from ccxtkit.auth.totp import enrolled_approvers

    approvers = enrolled_approvers(state(ctx).workspace)
    if state(ctx).json:
        print_json(approvers)
        return
    rows = [
        [n, a.get("enrolled_at"), a.get("stored_in"), a.get("location")]
        for n, a in sorted(approvers.items())
    ]
    console.print(table("approvers", ["approver", "enrolled at", "backend", "secret in"], rows))


def register(root: typer.Typer) -> None:
    """Mount the `totp` group."""
    root.add_typer(app, name="totp")
