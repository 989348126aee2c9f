"""The approval request, sent as `withdrawals.approval_method` says: email, sms, or nothing.

The message carries what an approver must see to decide (amount, exchange, address, network,
tag, label, expiry) and the exact command to approve; never a secret, a code or a token.
It goes straight to that one channel (not held back by `min_severity` or de-duplication: each
request is asked once). `manual` sends nothing: approvers find it with `vhc withdraw list`. A
time-locked
request also raises the critical veto-window alert on every alert channel, whatever the method,
because the time lock relies on someone being able to veto it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ccxtkit.logs import log, redact
from ccxtkit.money import fmt

if TYPE_CHECKING:
    from ccxtkit.workspace import Workspace

    from .requests import WithdrawalRequest


def approve_command(request_id: str) -> str:
    """The exact command an approver runs."""
    return f"vhc withdraw-approve {request_id} --auth-code CODE --approver NAME"


def request_lines(req: WithdrawalRequest) -> list[str]:
    """The facts of a request an approver decides on, one per line."""
    usd = fmt(req.usd) if req.usd is not None else "?"
    lock = (
        f", or one after the time lock ends {req.time_lock_until:%Y-%m-%d %H:%M} UTC"
        if req.time_lock_until
        else ""
    )
    return [
        f"Amount: {fmt(req.amount)} {req.asset} (~{usd} USD) from {req.exchange}",
        f"Address: {req.address}",
        f"Network: {req.network or '-'}",
        f"Tag/memo: {req.tag or 'none'}",
        f"Label: {req.label or '-'}",
        f"Requested by: {req.requested_by or '?'}",
        f"Needs: {req.approvals_needed} approval(s){lock}",
        f"Expires: {req.expires_at:%Y-%m-%d %H:%M} UTC",
        f"Approve: {approve_command(req.id)}",
        f"Reject: vhc withdraw reject {req.id} --reason TEXT",
    ]


def send_approval_request(
    ws: Workspace, req: WithdrawalRequest, now: datetime | None = None
) -> str:
    """Send the approval request through the configured method; returns what happened."""
    from ccxtkit.alerts import Alert
    from ccxtkit.alerts.channels import SENDERS

    now = now or datetime.now(UTC)
    method = ws.config.withdrawals.approval_method
    if method == "manual":
        return "approval_method manual: no approval request sent (see `vhc withdraw list`)"
    channel = getattr(ws.config.monitoring.alerts, method, None)
    if channel is None:
        note = (
            f"approval request NOT sent: approval_method is {method} but "
            f"monitoring.alerts.{method} is not configured"
        )
        log.warning("withdrawal %s: %s", req.id, note)
        return note
    alert = Alert(
        "warning",
        f"Withdrawal {req.id} awaits approval",
        "\n".join(request_lines(req)),
        key=f"withdraw.request.{req.id}",
    )
    try:
        SENDERS[method](ws, channel, alert, now)
    except Exception as exc:  # noqa: BLE001 - a failed notice must not lose the recorded request
        note = f"approval request NOT sent by {method}: {redact(str(exc)) or type(exc).__name__}"
        log.warning("withdrawal %s: %s", req.id, note)
        return note
    log.info("withdrawal %s: approval request sent by %s", req.id, method)
    return f"approval request sent by {method}"


def announce_time_lock(ws: Workspace, req: WithdrawalRequest) -> None:
    """The critical veto-window alert of a time-locked request, on every alert channel."""
    from ccxtkit.alerts import Alert, send_alert

    if req.time_lock_until is None:
        return
    body = (
        f"TIME-LOCKED withdrawal: it needs two approvers, or one after "
        f"{req.time_lock_until:%Y-%m-%d %H:%M} UTC; veto it before then if it is not yours.\n"
        + "\n".join(request_lines(req))
    )
    title = f"Withdrawal {req.id} time-locked: veto window open"
    send_alert(ws, Alert("critical", title, body, key=f"withdraw.request.{req.id}"))
