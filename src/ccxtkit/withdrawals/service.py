"""The flows behind `vhc withdraw`: request, approve (2FA), reject, list.

Approval order: state and approver checks, kill switch, fresh price and policy re-check, and
only then the TOTP code, so a refusal never burns a code. An expired request is refused with
exit 8 (it can no longer be authorised) and its expiry is written to the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from ccxtkit.errors import AuthorizationError, UsageError, VhcError
from ccxtkit.ledger.store import default_actor
from ccxtkit.money import fmt, to_decimal
from ccxtkit.workspace import Workspace

from .allowlist import norm_address, norm_asset, norm_network, recorded_entries, resolve
from .execute import Execution, execute, expired_error, recheck, refuse_if_killed, usd_value
from .policy import (
    Plan,
    Policy,
    approvals_satisfied,
    check_cool_off,
    check_no_unconfirmed,
    plan,
)
from .requests import (
    STATUSES,
    WithdrawalRequest,
    get_request,
    load_requests,
    new_request_id,
    record,
    sent_history,
)


@dataclass(frozen=True)
class RequestOutcome:
    """A new request: its state, how it must be approved, and the send if auto-approved."""

    request: WithdrawalRequest
    note: str
    execution: Execution | None = None


@dataclass(frozen=True)
class ApproveOutcome:
    """One approval: whether the request is now approved, and the send if it was."""

    request: WithdrawalRequest
    approved: bool
    waiting: str = ""
    execution: Execution | None = None


def approve_command(request_id: str) -> str:
    """The exact command an approver runs."""
    return f"vhc withdraw-approve {request_id} --auth-code CODE --approver NAME"


def request_withdrawal(
    ws: Workspace,
    exchange: str,
    asset: str,
    amount: str | Decimal,
    address: str,
    network: str | None = None,
    tag: str | None = None,
    now: datetime | None = None,
) -> RequestOutcome:
    """Record a request (refused at once if the policy forbids it) and notify the approvers."""
    from ccxtkit.trading.accounts import connect

    now = now or datetime.now(UTC)
    ws.config.exchange(exchange)
    asset, address, network = norm_asset(asset), norm_address(address), norm_network(network)
    value = to_decimal(amount, "amount")
    if not value.is_finite() or value <= 0:
        raise UsageError(f"amount must be a positive number, got {amount}")
    policy = Policy.from_config(ws.config.withdrawals)
    what = {"exchange": exchange, "asset": asset, "amount": value, "address": address}
    with ws.open_ledger() as ledger:  # the allowlist first: no exchange call for a refusal
        try:
            entry = resolve(
                recorded_entries(ledger), ws.config.withdrawals, asset, address, network
            )
            check_cool_off(entry, policy, now)
            in_doubt = [
                (r.id, r.exchange, r.asset, r.address)
                for r in load_requests(ledger).values()
                if r.status == "executing"
            ]
            check_no_unconfirmed(in_doubt, exchange, asset, address)
        except VhcError as exc:
            record(ledger, "refused", None, {**what, "error": exc.message}, now)
            raise
    client = connect(ws, exchange)
    try:
        usd = usd_value(client, asset, value)
        with ws.open_ledger() as ledger:
            try:
                p = plan(policy, asset, usd, sent_history(ledger, now), now)
            except VhcError as exc:
                record(ledger, "refused", None, {**what, "error": exc.message}, now)
                raise
            rid = new_request_id()
            details = {
                **what,
                "network": entry.network,
                "tag": tag,
                "label": entry.label,
                "usd": usd,
                "requested_by": default_actor(),
                "approvals_needed": p.approvals,
                "time_lock_until": p.time_lock_until.isoformat() if p.time_lock_until else None,
                "expires_at": p.expires_at.isoformat(),
                "policy": p.note,
            }
            with ledger.transaction():
                record(ledger, "request", rid, details, now)
                if p.auto:
                    record(ledger, "approved", rid, {"auto": True, "via": "auto"}, now, "policy")
            req = get_request(ledger, rid)
        _announce(ws, req, p)
        execution = execute(ws, client, rid, now) if p.auto else None
    finally:
        client.close()
    return RequestOutcome(req, p.note, execution)


def _announce(ws: Workspace, req: WithdrawalRequest, p: Plan) -> None:
    from ccxtkit.alerts import Alert, send_alert

    if p.auto:
        return
    what = (
        f"{fmt(req.amount)} {req.asset} (~{fmt(req.usd) if req.usd is not None else '?'} USD) "
        f"from {req.exchange} to {req.address}"
        + (f" ({req.network})" if req.network else "")
        + f", requested by {req.requested_by}."
    )
    approve = f"Approve: {approve_command(req.id)}"
    reject = f"Reject/veto: vhc withdraw reject {req.id} --reason TEXT"
    expires = f"Expires {req.expires_at:%Y-%m-%d %H:%M} UTC."
    if p.time_lock_until is not None:
        body = (
            f"TIME-LOCKED withdrawal {what} It needs two approvers, or one after "
            f"{p.time_lock_until:%Y-%m-%d %H:%M} UTC; veto it before then if it is not yours. "
            f"{approve}. {reject}. {expires}"
        )
        alert = Alert("critical", f"Withdrawal {req.id} time-locked: veto window open", body)
    else:
        body = f"Withdrawal {what} Needs {p.approvals} approval(s). {approve}. {reject}. {expires}"
        alert = Alert("warning", f"Withdrawal {req.id} awaits approval", body)
    send_alert(ws, Alert(alert.severity, alert.title, alert.body, key=f"withdraw.request.{req.id}"))


def _refuse_state(req: WithdrawalRequest, now: datetime, verb: str) -> None:
    status = req.status_at(now)
    if status == "expired":
        raise expired_error(req)
    if status == "executing":
        raise UsageError(
            f"withdrawal {req.id} is being sent (or its reply was lost): nothing to {verb}; "
            "run `vhc withdraw recover`"
        )
    if status == "approved" and verb == "approve":
        raise UsageError(
            f"withdrawal {req.id} is already approved; `vhc withdraw recover` sends it "
            "(e.g. after the kill switch was lifted)"
        )
    if status not in ("pending", "approved"):
        raise UsageError(f"withdrawal {req.id} is {status}: nothing to {verb}")


def _mark_expired(ws: Workspace, req: WithdrawalRequest, now: datetime) -> None:
    if req.status in ("pending", "approved") and req.status_at(now) == "expired":
        with ws.open_ledger() as ledger:
            record(ledger, "expired", req.id, {"expires_at": req.expires_at.isoformat()}, now)


def approve(
    ws: Workspace,
    request_id: str,
    code: str,
    approver: str = "admin",
    now: datetime | None = None,
) -> ApproveOutcome:
    """Add one approver's 2FA approval; send the withdrawal once the policy is satisfied."""
    from ccxtkit.auth.totp import check_approver, enrolled_approvers, verify_code
    from ccxtkit.trading.accounts import connect

    now = now or datetime.now(UTC)
    check_approver(approver)
    with ws.open_ledger() as ledger:
        req = get_request(ledger, request_id)
    _mark_expired(ws, req, now)
    _refuse_state(req, now, "approve")
    if approver in req.approvers:
        raise AuthorizationError(
            f"approver {approver!r} already approved {request_id}: the next approval must come "
            "from a different enrolled approver (--approver NAME)"
        )
    if approver not in enrolled_approvers(ws):
        raise AuthorizationError(
            f"approver {approver!r} is not enrolled: run `vhc totp setup --approver {approver}`"
        )
    refuse_if_killed(ws, request_id)
    policy = Policy.from_config(ws.config.withdrawals)
    client = connect(ws, req.exchange)
    try:
        usd = usd_value(client, req.asset, req.amount)
        needed, lock = req.approvals_needed, req.time_lock_until
        over = policy.two_approvals_over
        if usd is not None and over is not None and usd > over and needed < 2:
            # The price rose past the two-approver threshold since the request.
            needed = 2
            lock = req.requested_at + policy.time_lock if policy.time_lock else None
        error: VhcError | None = None
        with ws.open_ledger() as ledger:
            try:
                recheck(ledger, ws, req, usd, now)
            except VhcError as exc:
                record(ledger, "refused", None, {"request_id": req.id, "error": exc.message}, now)
                error = exc
        if error is not None:
            raise error
        verify_code(ws, code, approver, purpose=f"withdraw.approve {request_id}", now=now)
        with ws.open_ledger() as ledger, ledger.transaction():
            req = get_request(ledger, request_id)  # again: another approver may have acted
            _refuse_state(req, now, "approve")
            if approver in req.approvers:
                raise AuthorizationError(f"approver {approver!r} already approved {request_id}")
            record(
                ledger,
                "approval",
                req.id,
                {"approver": approver, "usd": usd, "needed": needed},
                now,
            )
            approvers = [*req.approvers, approver]
            done = approvals_satisfied(needed, lock, approvers, now)
            if done:
                via = "approvers" if len(set(approvers)) >= needed else "time_lock"
                record(ledger, "approved", req.id, {"approvers": approvers, "via": via}, now)
            req = get_request(ledger, request_id)
        if not done:
            waiting = f"approval {len(approvers)} of {needed} recorded; needs another approver"
            if lock is not None:
                waiting += (
                    f", or the time lock to end at {lock:%Y-%m-%d %H:%M} UTC "
                    "(then `vhc withdraw recover` sends it)"
                )
            return ApproveOutcome(req, False, waiting)
        execution = execute(ws, client, request_id, now)
    finally:
        client.close()
    with ws.open_ledger() as ledger:
        req = get_request(ledger, request_id)
    return ApproveOutcome(req, True, "", execution)


def reject(
    ws: Workspace, request_id: str, reason: str, now: datetime | None = None
) -> WithdrawalRequest:
    """Reject (veto) a request that has not been sent."""
    from ccxtkit.alerts import Alert, send_alert

    now = now or datetime.now(UTC)
    if not reason.strip():
        raise UsageError("--reason TEXT is required: it is recorded in the ledger")
    with ws.open_ledger() as ledger:
        req = get_request(ledger, request_id)
    if req.status == "rejected":
        return req  # rejecting twice answers the same, like cancelling twice (nothing recorded)
    _mark_expired(ws, req, now)
    if req.status_at(now) == "expired":
        raise UsageError(f"withdrawal {request_id} already expired: nothing to reject")
    _refuse_state(req, now, "reject")
    with ws.open_ledger() as ledger, ledger.transaction():
        req = get_request(ledger, request_id)
        _refuse_state(req, now, "reject")
        record(ledger, "rejected", req.id, {"reason": reason.strip()}, now)
        req = get_request(ledger, request_id)
    send_alert(
        ws,
        Alert(
            "warning",
            f"Withdrawal {req.id} rejected",
            f"{fmt(req.amount)} {req.asset} to {req.address}: rejected by {default_actor()} "
            f"({reason.strip()}).",
            key=f"withdraw.{req.id}.rejected",
        ),
    )
    return req


def list_requests(
    ws: Workspace, status: str = "pending", now: datetime | None = None
) -> list[WithdrawalRequest]:
    """Requests in a status (as of `now`), oldest first; `all` for every one."""
    now = now or datetime.now(UTC)
    if status != "all" and status not in STATUSES:
        raise UsageError(f"--status must be one of {', '.join(STATUSES)}, all; got {status!r}")
    with ws.open_ledger() as ledger:
        found = list(load_requests(ledger).values())
    return [r for r in found if status == "all" or r.status_at(now) == status]
