"""`vhc kill-switch --activate | --status | --deactivate | --check`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ccxtkit.errors import ExchangeError, FindingsError, KillSwitchActiveError, UsageError

from .output import console, note, print_json, state, table

if TYPE_CHECKING:
    from ccxtkit.risk.killswitch import Activation, Effective


#: How long `--status` waits for the ledger before showing the file and outbox alone.
STATUS_LEDGER_WAIT_SECONDS = 2.0


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
    where = {
        "ledger": "ledger",
        "outbox": "outbox (the ledger could not be written; moved into it later)",
    }.get(result.recorded_in, "NOWHERE: neither the ledger nor the outbox could be written")
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
            console.print(table(None, _COLUMNS, _account_rows(accounts)))


def register(root: typer.Typer) -> None:
    """Mount `kill-switch` on the root app."""
    root.command("kill-switch")(kill_switch)
