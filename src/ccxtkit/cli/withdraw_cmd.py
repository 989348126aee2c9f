"""`vhc withdraw request|list|reject|recover|allowlist` and `vhc withdraw-approve`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import FindingsError
from ..money import fmt
from ..records import allowlist_record
from .output import console, local_time, print_json, state, table, time_header

if TYPE_CHECKING:
    from ..withdrawals.execute import Execution
    from ..withdrawals.requests import WithdrawalRequest

app = typer.Typer(
    help="Request, list, reject and recover withdrawals; manage the address allowlist.",
    no_args_is_help=True,
)
allowlist_app = typer.Typer(
    help="The addresses withdrawals may go to (changes need a 2FA code).", no_args_is_help=True
)
app.add_typer(allowlist_app, name="allowlist")

ApproverOpt = Annotated[
    str, typer.Option("--approver", help="Whose TOTP secret the code is from (default admin).")
]
CodeOpt = Annotated[str, typer.Option("--auth-code", help="A fresh 6-digit TOTP code.")]
TagOpt = Annotated[
    str | None,
    typer.Option("--tag", help="Destination tag / memo; a request's must equal it exactly."),
]
NetworkOpt = Annotated[
    str | None,
    typer.Option("--network", help="Chain/network, e.g. ERC20 (as the exchange names it)."),
]


def _request_row(r: WithdrawalRequest, now: Any, ws: Any) -> list[Any]:
    return [
        r.id,
        r.status_at(now),
        r.exchange,
        f"{fmt(r.amount)} {r.asset}",
        fmt(r.usd) if r.usd is not None else "-",
        r.address
        + (f" ({r.network})" if r.network else "")
        + (f" tag {r.tag}" if r.tag else "")
        + (f" [{r.label}]" if r.label else ""),
        f"{len(set(r.approvers))}/{r.approvals_needed}" + (" auto" if r.auto else ""),
        local_time(ws, r.requested_at),
        local_time(ws, r.expires_at),
        r.transfer_id or r.reason or "-",
    ]


def _columns(ws: Any) -> list[str]:
    return [
        "id", "status", "exchange", "amount", "USD", "to (network, tag, [label])", "approvals",
        time_header(ws, "requested"), time_header(ws, "expires"), "exchange id / reason",
    ]  # fmt: skip


def _execution_line(e: Execution) -> str:
    t = e.transfer
    if t is None:
        return f"withdrawal {e.request_id}: outcome unknown"
    fee = f", fee {fmt(t.fee)} {t.fee_currency or ''}".rstrip() if t.fee is not None else ""
    txid = f", txid {t.txid}" if t.txid else ""
    return f"withdrawal {e.request_id} SENT: exchange id {t.id}{fee}{txid} (found by {e.found_by})"


@app.command("request")
def request(
    ctx: typer.Context,
    exchange: Annotated[str, typer.Argument(help="Account name in the config.")],
    asset: Annotated[str, typer.Argument(help="Currency code, e.g. BTC.")],
    amount: Annotated[str, typer.Argument(help="Amount of ASSET to send.")],
    address: Annotated[str, typer.Argument(help="Destination; must be on the allowlist.")],
    network: NetworkOpt = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Memo / destination tag.")] = None,
) -> None:
    """Record a withdrawal request and notify the approvers with the command to approve it.

    The address must be allowlisted (exit 8) and past its cool-off; the policy caps refuse
    with exit 3. Amounts under `auto_approve_under` within the daily auto cap are sent at once.

    Example: vhc withdraw request kraken BTC 0.5 bc1qexample...
    """
    from ..withdrawals.service import approve_command, request_withdrawal

    st = state(ctx)
    outcome = request_withdrawal(st.workspace, exchange, asset, amount, address, network, tag)
    req = outcome.request
    if st.json:
        doc = req.to_dict(req.requested_at)
        doc["policy"] = outcome.note
        doc["approve_command"] = None if req.auto else approve_command(req.id)
        doc["notice"] = outcome.notice or None
        if outcome.execution is not None:
            doc["status"] = outcome.execution.status
            t = outcome.execution.transfer
            doc["transfer_id"] = t.id if t else None
        print_json(doc)
        return
    console.print(
        f"withdrawal request {req.id} recorded: {fmt(req.amount)} {req.asset} -> {req.address}"
    )
    console.print(f"policy: {outcome.note}")
    if outcome.execution is not None:
        console.print(_execution_line(outcome.execution))
    else:
        console.print(f"approve with: {approve_command(req.id)}")
        console.print(f"expires {req.expires_at:%Y-%m-%d %H:%M} UTC")
        if outcome.notice:
            console.print(outcome.notice, markup=False)


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[
        str,
        typer.Option(
            "--status",
            help="pending|approved|executed|rejected|expired|executing|failed|all.",
        ),
    ] = "pending",
) -> None:
    """List withdrawal requests (default: those awaiting approval).

    Example: vhc withdraw list --status all
    """

    from ..withdrawals.service import list_requests

    st = state(ctx)
    now = datetime.now(UTC)
    found = list_requests(st.workspace, status, now)
    if st.json:
        print_json([r.to_dict(now) for r in found])
        return
    rows = [_request_row(r, now, st.workspace) for r in found]
    console.print(table(f"withdrawals ({status})", _columns(st.workspace), rows))


@app.command("reject")
def reject(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request id (wr-...).")],
    reason: Annotated[str, typer.Option("--reason", help="Why; recorded in the ledger.")],
) -> None:
    """Reject (veto) a withdrawal request that has not been sent.

    Example: vhc withdraw reject wr-0123456789 --reason "not ours"
    """
    from ..withdrawals.service import reject as do_reject

    st = state(ctx)
    req = do_reject(st.workspace, request_id, reason)
    if st.json:
        print_json(req.to_dict(req.requested_at))
    else:
        console.print(f"withdrawal {req.id} rejected: {reason}")


@app.command("recover")
def recover(ctx: typer.Context) -> None:
    """Resolve withdrawals already sent (lost replies, crashes) and expiries; never sends one.

    A withdrawal whose reply was lost is looked up on the exchange, never sent again. Approved
    requests not yet sent, and ended time locks, are named with the `withdraw-approve` command
    that sends them. Exit 1 when something still needs a person.

    Example: vhc withdraw recover
    """
    from ..withdrawals.recover import recover as do_recover

    st = state(ctx)
    results = do_recover(st.workspace)
    if st.json:
        print_json(results)
    elif not results:
        console.print("nothing to recover")
    else:
        rows = [[r.request_id, f"{r.before} -> {r.after}", r.note] for r in results]
        console.print(table("withdrawals recovered", ["id", "change", "note"], rows))
    open_items = [r.request_id for r in results if r.needs_attention]
    if open_items:
        raise FindingsError(
            f"{len(open_items)} withdrawal(s) still need attention: {', '.join(open_items)}"
        )


def approve(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request id (wr-...).")],
    auth_code: CodeOpt,
    approver: ApproverOpt = "admin",
) -> None:
    """Approve a withdrawal with a fresh 2FA code; it is sent once the policy is satisfied.

    Above `require_two_approvals_over` a second, different approver is needed (or, with
    `time_lock_hours`, the lock must end). An approved request that was not sent (kill switch,
    ended time lock) is sent by this command, with any enrolled approver's code. Bad, reused or same-approver codes: exit 8; an
    expired request: exit 8; kill switch: exit 4; policy caps: exit 3.

    Example: vhc withdraw-approve wr-0123456789 --auth-code 123456 --approver alice
    """
    from ..withdrawals.service import approve as do_approve

    st = state(ctx)
    outcome = do_approve(st.workspace, request_id, auth_code, approver)
    req = outcome.request
    if st.json:
        doc = req.to_dict(req.requested_at)
        doc["approved"] = outcome.approved
        doc["waiting"] = outcome.waiting or None
        print_json(doc)
        return
    if outcome.execution is not None:
        console.print(_execution_line(outcome.execution))
    else:
        console.print(f"withdrawal {req.id}: {outcome.waiting}")


@allowlist_app.command("add")
def allowlist_add(
    ctx: typer.Context,
    asset: Annotated[str, typer.Argument(help="Currency code, e.g. BTC.")],
    address: Annotated[str, typer.Argument(help="The destination address.")],
    auth_code: CodeOpt,
    network: NetworkOpt = None,
    label: Annotated[
        str | None,
        typer.Option("--label", help="The exchange's name for it (Kraken's withdrawal key)."),
    ] = None,
    tag: TagOpt = None,
    approver: ApproverOpt = "admin",
) -> None:
    """Add an address (and its tag/memo) to the allowlist (2FA); usable after the cool-off.

    A request to this address must carry exactly this tag (none if the entry has none).

    Example: vhc withdraw allowlist add XRP rEXAMPLE... --tag 12345 --label desk --auth-code 123456
    """
    from ..withdrawals.allowlist import add_entry
    from ..withdrawals.policy import Policy

    st = state(ctx)
    entry = add_entry(st.workspace, asset, address, network, label, auth_code, approver, tag=tag)
    ready = entry.usable_from(Policy.from_config(st.workspace.config.withdrawals).new_address_delay)
    if st.json:
        waiting = ready > datetime.now(UTC)
        print_json(allowlist_record(entry, "cooling_off" if waiting else "usable", ready))
    else:
        tagged = f" tag {entry.tag}" if entry.tag else ""
        console.print(
            f"added {entry.asset} {entry.address}{tagged}; usable from {ready:%Y-%m-%d %H:%M} UTC"
        )


@allowlist_app.command("remove")
def allowlist_remove(
    ctx: typer.Context,
    asset: Annotated[str, typer.Argument(help="Currency code.")],
    address: Annotated[str, typer.Argument(help="The address to remove.")],
    auth_code: CodeOpt,
    network: NetworkOpt = None,
    tag: TagOpt = None,
    approver: ApproverOpt = "admin",
) -> None:
    """Remove an address (with --tag, that tag's entry) from the allowlist (2FA).

    Example: vhc withdraw allowlist remove BTC bc1qexample... --auth-code 123456
    """
    from ..withdrawals.allowlist import remove_entry

    st = state(ctx)
    entry = remove_entry(st.workspace, asset, address, network, auth_code, approver, tag=tag)
    if st.json:
        print_json(allowlist_record(entry, "removed"))
    else:
        console.print(f"removed {entry.asset} {entry.address}")


@allowlist_app.command("import-config")
def allowlist_import_config(
    ctx: typer.Context, auth_code: CodeOpt, approver: ApproverOpt = "admin"
) -> None:
    """Adopt the config's withdrawals.recipient_allowlist with one 2FA code.

    Each pending entry is recorded as `allowlist add` records one, with its cool-off. Entries
    that name no asset cannot be adopted (exit 1 names them); nothing to adopt: exit 2.

    Example: vhc withdraw allowlist import-config --auth-code 123456
    """
    from ..withdrawals.allowlist_import import import_config

    st = state(ctx)
    outcome = import_config(st.workspace, auth_code, approver)
    skipped = [
        {"address": p.address, "asset": p.asset, "network": p.network, "problem": p.problem}
        for p in outcome.skipped
    ]
    if st.json:
        added = [allowlist_record(e, "cooling_off", outcome.usable_from) for e in outcome.added]
        print_json({"added": added, "skipped": skipped})
    else:
        for e in outcome.added:
            net = f" ({e.network})" if e.network else ""
            console.print(
                f"added {e.asset} {e.address}{net}; usable from "
                f"{outcome.usable_from:%Y-%m-%d %H:%M} UTC",
                markup=False,
            )
        for p in skipped:
            console.print(f"not adopted: {p['address']}: {p['problem']}", markup=False)
    if skipped:
        raise FindingsError(f"{len(skipped)} recipient_allowlist entry(ies) could not be adopted")


@allowlist_app.command("list")
def allowlist_list(ctx: typer.Context) -> None:
    """Show the allowlist: recorded entries and YAML entries that lack a ledger record.

    Example: vhc withdraw allowlist list
    """
    from ..withdrawals.allowlist import list_entries

    st = state(ctx)
    rows = list_entries(st.workspace)
    if st.json:
        print_json([allowlist_record(r) for r in rows])
        return
    cells = [
        [
            r.asset or "any",
            r.address,
            r.network or "-",
            r.tag or "-",
            r.label or "-",
            r.state,
            f"{r.usable_from:%Y-%m-%d %H:%M}" if r.usable_from else "-",
        ]
        for r in rows
    ]
    console.print(
        table(
            "withdrawal allowlist",
            ["asset", "address", "network", "tag", "label", "state", "usable from"],
            cells,
        )
    )


def register(root: typer.Typer) -> None:
    """Mount `withdraw` and `withdraw-approve`."""
    root.add_typer(app, name="withdraw")
    root.command("withdraw-approve")(approve)
