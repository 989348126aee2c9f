"""`vhc doctor`."""

from __future__ import annotations

import typer

from .output import console, print_json, state, table


def doctor(ctx: typer.Context) -> None:
    """Check config, file permissions, the ledger chain, secrets, exchanges and the kill switch.

    Exit 0 when all is well, 1 when something needs a look, else the first failure's code.
    Example: vhc doctor
    """
    from ..doctor import exit_code, run_doctor
    from ..ledger.chain import now_utc

    checks = run_doctor(state(ctx).workspace, now_utc())
    if state(ctx).json:
        print_json({"checks": checks, "exit_code": exit_code(checks)})
    else:
        marks = {"ok": "ok", "info": "info", "warn": "WARN", "fail": "FAIL"}
        rows = [[c.area, marks.get(c.status, c.status), c.detail] for c in checks]
        console.print(table("vhc doctor", ["area", "status", "detail"], rows))
    code = exit_code(checks)
    if code:
        raise typer.Exit(code)


def register(root: typer.Typer) -> None:
    """Mount `doctor` on the root app."""
    root.command("doctor")(doctor)
