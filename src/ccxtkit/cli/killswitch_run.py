"""`vhc kill-switch --check` and `--activate`: the work and the rendering, without typer.

`app.main` calls these directly for the plain spellings (cron every minute, an emergency);
`killswitch_cmd` calls them after typer has parsed anything else. rich is loaded only when
something is printed that needs it (a table, a terminal), never for "no trigger fired" in a
pipe or for `--json`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ccxtkit.errors import ExchangeError, FindingsError, KillSwitchActiveError, UsageError

from .output import State, note, print_json, say, table

if TYPE_CHECKING:
    from ccxtkit.risk.killswitch import Activation

#: How long `--status` waits for the ledger before showing the file and outbox alone.
STATUS_LEDGER_WAIT_SECONDS = 2.0

COLUMNS = ["account", "result", "canceled", "still open", "closed", "errors", "seconds"]


def run_activate(st: State, reason: str | None, flatten: bool, timeout: float) -> None:
    """`--activate`: the state file first (before any exchange library loads), then the sweep."""
    ws = st.workspace
    from ccxtkit.risk.killswitch import activate as do_activate

    if not reason or not reason.strip():
        raise UsageError("--activate needs --reason TEXT (it is recorded and shown)")
    result = do_activate(ws, reason, flatten=flatten, timeout=timeout)
    render_activation(st.json, result)
    fail_if_needed(result)


def run_check(st: State, timeout: float) -> None:
    """`--check`: evaluate the automatic triggers; exit 0, 1 (fired), 4 (active) or 5."""
    from ccxtkit.risk.autocheck import check as do_check

    outcome = do_check(st.workspace, timeout=timeout)
    if st.json:
        doc: dict[str, Any] = {
            "already_active": outcome.already_active,
            "fired": [{"trigger": t.name, "reason": t.reason} for t in outcome.fired],
            "notes": outcome.notes,
            "activation": activation_doc(outcome.activation) if outcome.activation else None,
        }
        print_json(doc)
    else:
        for line in outcome.notes:
            note(f"note: {line}")
        if not outcome.already_active and not outcome.fired:
            say("no trigger fired")
        else:
            from .output import console

            for t in outcome.fired:
                console.print(f"FIRED {t.name}: {t.reason}")
            if outcome.activation:
                render_activation(False, outcome.activation)
    if outcome.already_active:
        from ccxtkit.risk.switch_state import effective_state

        eff = effective_state(st.workspace)
        s = eff.file
        since = f"since {s.since} ({s.trigger})" if s.active else f"({eff.disagreement})"
        raise KillSwitchActiveError(
            f"the kill switch is already active {since}; trading is halted "
            "until someone runs `vhc kill-switch --deactivate --auth-code CODE`"
        )
    if outcome.activation is not None:
        fail_if_needed(outcome.activation)
        names = ", ".join(t.name for t in outcome.fired)
        raise FindingsError(
            f"trigger fired ({names}): the kill switch is now active; see `vhc kill-switch "
            "--status`, and deactivate with a 2FA code once the cause is dealt with"
        )


def activation_doc(result: Activation) -> dict[str, Any]:
    """An activation as --json shows it."""
    return result.to_dict()


def account_rows(accounts: list[dict[str, Any]]) -> list[list[Any]]:
    """One table row per swept account (from `AccountResult.to_dict()` or a state file)."""
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


def render_activation(as_json: bool, result: Activation) -> None:
    """The activation's outcome: the held JSON document, or the state line and account table."""
    if as_json:
        print_json(activation_doc(result))
        return
    from .output import console

    s = result.state
    console.print(f"KILL SWITCH ACTIVE since {s.since} ({s.trigger}: {s.reason})")
    rows = account_rows([a.to_dict() for a in result.accounts])
    console.print(table("accounts swept", COLUMNS, rows))
    where = {
        "ledger": "ledger",
        "outbox": "outbox (the ledger could not be written; moved into it later)",
    }.get(result.recorded_in, "NOWHERE: neither the ledger nor the outbox could be written")
    console.print(f"done in {result.seconds:.2f} s; recorded in the {where}")


def fail_if_needed(result: Activation) -> None:
    """Exit 5 (ExchangeError) when any account's sweep failed."""
    if result.unrecorded_accounts:
        raise ExchangeError(f"the kill switch is active, but {result.unrecorded_accounts}")
    failed = result.failed()
    if failed:
        names = ", ".join(
            f"{a.account} ({'; '.join(a.errors) or 'orders left open'})" for a in failed
        )
        raise ExchangeError(
            f"the kill switch is active, but the sweep failed on {names}: "
            "check those accounts by hand, then run --activate again to retry the sweep"
        )
