"""`vhc kill-switch --activate | --status | --deactivate | --check`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ccxtkit.errors import UsageError

from .killswitch_run import COLUMNS, STATUS_LEDGER_WAIT_SECONDS, run_activate, run_check
from .killswitch_run import account_rows as _account_rows
from .output import console, print_json, state, table

if TYPE_CHECKING:
    from ccxtkit.risk.killswitch import Effective

__all__ = ["STATUS_LEDGER_WAIT_SECONDS", "kill_switch", "register"]


def kill_switch(
    ctx: typer.Context,
    activate: Annotated[
        bool, typer.Option("--activate", help="Block all orders now, then cancel every open one.")
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (required with --activate).")
    ] = None,
    flatten: Annotated[
        bool,
        typer.Option("--flatten", help="Also sell holdings other than cash down to dust."),
    ] = False,
    status: Annotated[bool, typer.Option("--status", help="Show the state; exit 0.")] = False,
    deactivate: Annotated[
        bool, typer.Option("--deactivate", help="Allow trading again (needs --auth-code).")
    ] = False,
    auth_code: Annotated[
        str | None, typer.Option("--auth-code", help="A fresh 6-digit TOTP code.")
    ] = None,
    approver: Annotated[
        str, typer.Option("--approver", help="Whose TOTP secret the code is from.")
    ] = "admin",
    check: Annotated[
        bool,
        typer.Option("--check", help="Evaluate the automatic triggers; activate if one fires."),
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds each account's sweep may take.", min=0.1)
    ] = 30.0,
) -> None:
    """Halt all trading at once, show the halt, or lift it with a 2FA code.

    --activate writes the switch first (no order passes from then on), then cancels every open
    order on every enabled account concurrently; exit 5 if any account failed. --check exits 0
    when nothing fired, 1 when a trigger fired and the switch was activated (5 if that sweep
    failed), 4 when the switch is already active.

    Example: vhc kill-switch --activate --reason "suspected key leak" --flatten
    Example: vhc kill-switch --deactivate --auth-code 123456
    """
    modes = [activate, status, deactivate, check]
    if sum(modes) != 1:
        raise UsageError("choose one of --activate, --status, --deactivate or --check")
    st = state(ctx)
    ws = st.workspace
    if activate:
        run_activate(st, reason, flatten, timeout)
    elif status:
        from ccxtkit.risk.figures import status_figures
        from ccxtkit.risk.killswitch import effective_state

        # A status must answer during a long reconcile: the ledger's record is skipped (and
        # said so) if it stays busy for a couple of seconds.
        wait = min(float(ws.config.ledger.lock_wait_seconds), STATUS_LEDGER_WAIT_SECONDS)
        _render_state(st.json, effective_state(ws, wait_seconds=wait), status_figures(ws))
    elif deactivate:
        from ccxtkit.risk.killswitch import deactivate as do_deactivate
        from ccxtkit.risk.killswitch import effective_state

        if not auth_code:
            raise UsageError("--deactivate needs --auth-code CODE from your authenticator app")
        was_active = effective_state(ws).active
        after = do_deactivate(ws, auth_code, approver=approver)
        if st.json:
            print_json({"deactivated": was_active, "state": after})
        elif was_active:
            console.print("kill switch deactivated: trading is allowed again")
        else:
            console.print("kill switch is not active: nothing to deactivate")
    else:
        run_check(st, timeout)


def _render_state(as_json: bool, eff: Effective, risk: dict[str, object] | None) -> None:
    """The switch's state; `risk`: the figures the limits and triggers read (None: unread)."""
    if as_json:
        print_json({**eff.to_dict(), "risk": risk})
        return
    s = eff.file
    if eff.active:
        console.print(f"kill switch ACTIVE since {s.since or '(unknown: see below)'}")
        if s.reason:
            console.print(f"  why: {s.reason}  (trigger: {s.trigger}, by {s.actor})")
    else:
        console.print("kill switch inactive: trading allowed")
        if s.since:
            console.print(
                f"  last active since {s.since} ({s.trigger}: {s.reason}); "
                f"deactivated {s.deactivated_at} by {s.deactivated_by}"
            )
    if eff.disagreement:
        console.print(f"  STATE PROBLEM: {eff.disagreement}; the switch fails closed")
    elif eff.file_problem:
        console.print(f"  note: the state file is {eff.file_problem}; the ledger decides")
    if eff.last_event:
        console.print(f"  ledger: last kill-switch event is {eff.last_event.describe()}")
    if eff.ledger_note:
        console.print(f"  ledger not checked: {eff.ledger_note}")
    if risk is not None:
        drawdown = risk["drawdown_pct"]
        console.print(
            f"risk: portfolio {risk['portfolio_usd']} USD, drawdown "
            f"{'unknown' if drawdown is None else str(drawdown) + ' %'}, "
            f"PnL today {risk['pnl_today_usd']} USD, {risk['open_orders']} open order(s)"
        )
    last = s.last_activation
    if last:
        console.print(
            f"last activation: {last.get('started')} status {last.get('status')}"
            + (f", {last['seconds']} s" if "seconds" in last else "")
        )
        accounts = list(last.get("accounts", {}).values())
        if accounts:
            console.print(table(None, COLUMNS, _account_rows(accounts)))


def register(root: typer.Typer) -> None:
    """Mount `kill-switch` on the root app."""
    root.command("kill-switch")(kill_switch)
