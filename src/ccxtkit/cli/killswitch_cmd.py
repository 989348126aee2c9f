"""`vhc kill-switch --activate | --status | --deactivate | --check`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ccxtkit.errors import ExchangeError, FindingsError, KillSwitchActiveError, UsageError

from .output import console, note, print_json, state, table

if TYPE_CHECKING:
    from ccxtkit.risk.killswitch import Activation, KillSwitchState


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
        from ccxtkit.risk.killswitch import activate as do_activate

        if not reason or not reason.strip():
            raise UsageError("--activate needs --reason TEXT (it is recorded and shown)")
        result = do_activate(ws, reason, flatten=flatten, timeout=timeout)
        _render_activation(st.json, result)
        _fail_if_needed(result)
    elif status:
        from ccxtkit.risk.killswitch import read_state

        _render_state(st.json, read_state(ws))
    elif deactivate:
        from ccxtkit.risk.killswitch import deactivate as do_deactivate
        from ccxtkit.risk.killswitch import read_state

        if not auth_code:
            raise UsageError("--deactivate needs --auth-code CODE from your authenticator app")
        was_active = read_state(ws).active
        after = do_deactivate(ws, auth_code, approver=approver)
        if st.json:
            print_json({"deactivated": was_active, "state": after})
        elif was_active:
            console.print("kill switch deactivated: trading is allowed again")
        else:
            console.print("kill switch is not active: nothing to deactivate")
    else:
        _check(ctx, timeout)


def _check(ctx: typer.Context, timeout: float) -> None:
    from ccxtkit.risk.autocheck import check as do_check
    from ccxtkit.risk.killswitch import read_state

    st = state(ctx)
    outcome = do_check(st.workspace, timeout=timeout)
    if st.json:
        doc: dict[str, Any] = {
            "already_active": outcome.already_active,
            "fired": [{"trigger": t.name, "reason": t.reason} for t in outcome.fired],
            "notes": outcome.notes,
            "activation": _activation_doc(outcome.activation) if outcome.activation else None,
        }
        print_json(doc)
    else:
        for line in outcome.notes:
            note(f"note: {line}")
        if not outcome.already_active and not outcome.fired:
            console.print("no trigger fired")
        else:
            for t in outcome.fired:
                console.print(f"FIRED {t.name}: {t.reason}")
            if outcome.activation:
                _render_activation(False, outcome.activation)
    if outcome.already_active:
        s = read_state(st.workspace)
        raise KillSwitchActiveError(
            f"the kill switch is already active since {s.since} ({s.trigger}); trading is halted "
            "until someone runs `vhc kill-switch --deactivate --auth-code CODE`"
        )
    if outcome.activation is not None:
        _fail_if_needed(outcome.activation)
        names = ", ".join(t.name for t in outcome.fired)
        raise FindingsError(
            f"trigger fired ({names}): the kill switch is now active; see `vhc kill-switch "
            "--status`, and deactivate with a 2FA code once the cause is dealt with"
        )


def _activation_doc(result: Activation) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "seconds": round(result.seconds, 3),
        "recorded_in": result.recorded_in,
        "state": result.state,
        "accounts": [a.to_dict() for a in result.accounts],
    }


def _account_rows(accounts: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for a in accounts:
        closed = ", ".join(f"{c['asset']} {c['amount']} ({c['status']})" for c in a["closed"])
        rows.append(
            [
                a["account"],
                "ok" if a["ok"] else "FAILED",
                len(a.get("canceled", a.get("cancelled", []))),  # older state files
                len(a["still_open"]),
                closed or "-",
                "; ".join(a["errors"]) or "-",
                f"{a['seconds']:.2f}",
            ]
        )
    return rows


_COLUMNS = ["account", "result", "canceled", "still open", "closed", "errors", "seconds"]


def _render_activation(as_json: bool, result: Activation) -> None:
    if as_json:
        print_json(_activation_doc(result))
        return
    s = result.state
    console.print(f"KILL SWITCH ACTIVE since {s.since} ({s.trigger}: {s.reason})")
    rows = _account_rows([a.to_dict() for a in result.accounts])
    console.print(table("accounts swept", _COLUMNS, rows))
    where = "ledger" if result.recorded_in == "ledger" else "outbox (ledger busy; drained later)"
    console.print(f"done in {result.seconds:.2f} s; recorded in the {where}")


def _fail_if_needed(result: Activation) -> None:
    failed = result.failed()
    if failed:
        names = ", ".join(
            f"{a.account} ({'; '.join(a.errors) or 'orders left open'})" for a in failed
        )
        raise ExchangeError(
            f"the kill switch is active, but the sweep failed on {names}: "
            "check those accounts by hand, then run --activate again to retry the sweep"
        )


def _render_state(as_json: bool, s: KillSwitchState) -> None:
    if as_json:
        print_json(s)
        return
    if s.active:
        console.print(f"kill switch ACTIVE since {s.since}")
        console.print(f"  why: {s.reason}  (trigger: {s.trigger}, by {s.actor})")
    else:
        console.print("kill switch inactive: trading allowed")
        if s.since:
            console.print(
                f"  last active since {s.since} ({s.trigger}: {s.reason}); "
                f"deactivated {s.deactivated_at} by {s.deactivated_by}"
            )
    last = s.last_activation
    if last:
        console.print(
            f"last activation: {last.get('started')} status {last.get('status')}"
            + (f", {last['seconds']} s" if "seconds" in last else "")
        )
        accounts = list(last.get("accounts", {}).values())
        if accounts:
            console.print(table(None, _COLUMNS, _account_rows(accounts)))


def register(root: typer.Typer) -> None:
    """Mount `kill-switch` on the root app."""
    root.command("kill-switch")(kill_switch)
