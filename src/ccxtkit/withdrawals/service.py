"""The flows behind `vhc withdraw`: request, approve (2FA), reject, list.

Approval order: state and approver checks, kill switch, fresh price and policy re-check, and
only then the TOTP code, so a refusal never burns a code; then, under one ledger lock, the caps
again and the approval recorded. An expired request is refused with exit 8 (it can no longer
be authorised) and its expiry is written to the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from ccxtkit.auth.withdrawal_seals import approval_seal, auto_seal
from ccxtkit.errors import AuthorizationError, UsageError, VhcError
from ccxtkit.ledger.store import Ledger, default_actor
from ccxtkit.money import fmt, to_decimal
from ccxtkit.workspace import Workspace

from .allowlist import norm_address, norm_asset, norm_network, recorded_entries, resolve
from .authority import Authority
from .execute import (
    Execution,
    execute,
    expired_error,
    recheck,
    refuse_if_killed,
    usd_value,
)
from .notify import announce_time_lock, approve_command, send_approval_request
from .policy import (
    Policy,
    approvals_satisfied,
    check_cool_off,
    check_no_unconfirmed,
    plan,
    required_approvals,
)
from .requests import (
    STATUSES,
    WithdrawalRequest,
    committed_history,
    get_request,
    load_requests,
    new_request_id,
    record,
)

if TYPE_CHECKING:
    from ccxtkit.auth.totp import Verified

#: `approve_command` is re-exported for the CLI.
__all__ = ["approve", "approve_command", "list_requests", "reject", "request_withdrawal"]


@dataclass(frozen=True)
class RequestOutcome:
    """A new request: its state, how it must be approved, and the send if auto-approved."""

    request: WithdrawalRequest
    note: str
    execution: Execution | None = None
    notice: str = ""  # what happened to the approval request (approval_method)


@dataclass(frozen=True)
class ApproveOutcome:
    """One approval: whether the request is now approved, and the send if it was."""

    request: WithdrawalRequest
    approved: bool
    waiting: str = ""
    execution: Execution | None = None


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
    from ccxtkit.policy.service import enforce_policy
    from ccxtkit.trading.accounts import connect

    now = now or datetime.now(UTC)
    enforce_policy(ws)  # the withdrawal policy below is the recorded one, or exit 8
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
                recorded_entries(ledger, ws), ws.config.withdrawals, asset, address, network, tag
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
        # One ledger session (its lock held) decides against every committed withdrawal and
        # records the decision, so concurrent requests cannot together pass a cap.
        with ws.open_ledger() as ledger:
            try:
                p = plan(policy, asset, usd, committed_history(ledger, now), now)
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
                    mac = auto_seal(ws, ledger, get_request(ledger, rid))
                    auto = {"auto": True, "via": "auto", "mac": mac}
                    record(ledger, "approved", rid, auto, now, "policy")
            req = get_request(ledger, rid)
        if p.auto:
            execution = execute(ws, client, rid, Authority.auto(rid), now)
            return RequestOutcome(req, p.note, execution)
    finally:
        client.close()
    announce_time_lock(ws, req)
    return RequestOutcome(req, p.note, None, send_approval_request(ws, req, now))


def _refuse_state(req: WithdrawalRequest, now: datetime, verb: str) -> None:
    status = req.status_at(now)
    if status == "expired":
        raise expired_error(req)
    if status == "executing":
        raise UsageError(
            f"withdrawal {req.id} is being sent (or its reply was lost): nothing to {verb}; "
            "run `vhc withdraw recover`"
        )
    if status not in ("pending", "approved"):
        raise UsageError(f"withdrawal {req.id} is {status}: nothing to {verb}")


def _refuse_repeat(
    req: WithdrawalRequest, approver: str, needed: int, lock: datetime | None, now: datetime
) -> None:
    """The same approver again adds nothing, unless the approvals are complete (a release)."""
    if approver in req.approvers and not approvals_satisfied(needed, lock, req.approvers, now):
        raise AuthorizationError(
            f"approver {approver!r} already approved {req.id}: the next approval must come "
            "from a different enrolled approver (--approver NAME)"
        )


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
    """Add one approver's 2FA approval; send the withdrawal once the policy is satisfied.

    An approved request that was not sent (kill switch, auto-approval refused at the send, time
    lock ended) is sent by the code of any enrolled approver: it is checked here, in the
    process that sends, never taken from the ledger alone.
    """
    from ccxtkit.auth.totp import check_approver, enrolled_approvers, verify_code
    from ccxtkit.policy.service import enforce_policy
    from ccxtkit.trading.accounts import connect

    now = now or datetime.now(UTC)
    check_approver(approver)
    enforce_policy(ws)
    with ws.open_ledger() as ledger:
        req = get_request(ledger, request_id)
    _mark_expired(ws, req, now)
    _refuse_state(req, now, "approve")
    if approver not in enrolled_approvers(ws):
        raise AuthorizationError(
            f"approver {approver!r} is not enrolled: run `vhc totp setup --approver {approver}`"
        )
    refuse_if_killed(ws, request_id)
    policy = Policy.from_config(ws.config.withdrawals)
    client = connect(ws, req.exchange)
    try:
        usd = usd_value(client, req.asset, req.amount)
        needed, lock = required_approvals(
            policy, req.approvals_needed, req.time_lock_until, req.requested_at, usd
        )
        _refuse_repeat(req, approver, needed, lock, now)
        _recheck_or_refuse(ws, req, usd, now)  # before the code: a refusal never burns one
        ok = verify_code(ws, code, approver, purpose=f"withdraw.approve {request_id}", now=now)
        with ws.open_ledger() as ledger:
            req, approvers, done, refusal = _record_approval(
                ledger, ws, request_id, approver, ok, needed, lock, usd, now
            )
        if refusal is not None:
            raise refusal
        if not done:
            waiting = f"approval {len(approvers)} of {needed} recorded; needs another approver"
            if lock is not None:
                waiting += (
                    f", or the time lock to end at {lock:%Y-%m-%d %H:%M} UTC "
                    "(then one approver's code sends it)"
                )
            return ApproveOutcome(req, False, waiting)
        execution = execute(ws, client, request_id, Authority.verified(request_id, ok), now)
    finally:
        client.close()
    with ws.open_ledger() as ledger:
        req = get_request(ledger, request_id)
    return ApproveOutcome(req, True, "", execution)


def _record_approval(
    ledger: Ledger,
    ws: Workspace,
    request_id: str,
    approver: str,
    ok: Verified,
    needed: int,
    lock: datetime | None,
    usd: Decimal | None,
    now: datetime,
) -> tuple[WithdrawalRequest, list[str], bool, VhcError | None]:
    """Under the ledger lock: the state again, the caps against every committed withdrawal,
    and the approval recorded (another approver or request may have acted meanwhile)."""
    refusal: VhcError | None = None
    with ledger.transaction():
        req = get_request(ledger, request_id)
        _refuse_state(req, now, "approve")
        _refuse_repeat(req, approver, needed, lock, now)
        approvers = req.approvers if approver in req.approvers else [*req.approvers, approver]
        done = approvals_satisfied(needed, lock, approvers, now)
        try:
            if done:
                recheck(ledger, ws, req, usd, now)
        except VhcError as exc:
            refusal = exc
        else:
            if approver not in req.approvers:
                until = lock.isoformat() if lock else None
                what = {"approver": approver, "usd": usd, "needed": needed, "step": ok.step}
                mac = approval_seal(ws, ledger, req, approver, ok.step, needed, until)
                record(ledger, "approval", req.id, {**what, "lock": until, "mac": mac}, now)
            if done and req.status == "pending":
                via = "approvers" if len(set(approvers)) >= needed else "time_lock"
                record(ledger, "approved", req.id, {"approvers": approvers, "via": via}, now)
    if refusal is not None:
        record(ledger, "refused", None, {"request_id": req.id, "error": refusal.message}, now)
    return get_request(ledger, request_id), approvers, done, refusal


def _recheck_or_refuse(
    ws: Workspace, req: WithdrawalRequest, usd: Decimal | None, now: datetime
) -> None:
    error: VhcError | None = None
    with ws.open_ledger() as ledger:
        try:
            recheck(ledger, ws, req, usd, now)
        except VhcError as exc:
            record(ledger, "refused", None, {"request_id": req.id, "error": exc.message}, now)
            error = exc
    if error is not None:
        raise error


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
