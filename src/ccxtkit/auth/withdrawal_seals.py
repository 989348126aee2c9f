"""Withdrawal approvals sealed with the control key, and the check made right before a send.

An approval's MAC covers the request id, the approver, the step of the approver's accepted
code, what is sent (exchange, asset, amount, address, network, tag) and what the approving
process computed the request needs (approvers, time lock); an auto-approval's covers the
request the same way. `check_before_send` is called just before the exchange call: the
destination's allowlist entry (tag included) and every approval must carry valid seals, each
human approver must be enrolled, and the sealed approvals must meet the sealed requirement
(or its time lock must have ended). A forged row is exit 6 with an alert; nothing is sent.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ccxtkit.errors import AuthorizationError, LedgerIntegrityError
from ccxtkit.workspace import Workspace

from .enrolment import enrolled_in
from .mac import seal, tamper_alert, verify_seal
from .rowcheck import check_rows

if TYPE_CHECKING:
    from ccxtkit.ledger.store import Ledger
    from ccxtkit.withdrawals.requests import WithdrawalRequest

APPROVAL = "withdraw.approval"
AUTO = "withdraw.auto"


def request_fields(req: WithdrawalRequest) -> dict[str, object]:
    """What leaves: the fields every approval of the request is bound to."""
    return {
        "request_id": req.id,
        "exchange": req.exchange,
        "asset": req.asset,
        "amount": str(req.amount),
        "address": req.address,
        "network": req.network,
        "tag": req.tag,
    }


def approval_fields(
    req: WithdrawalRequest, approver: str, step: object, needed: object, lock: object
) -> dict[str, object]:
    """What one approval's MAC covers."""
    extra = {"approver": approver, "step": step, "needed": needed, "lock": lock}
    return {**request_fields(req), **extra}


def approval_seal(
    ws: Workspace,
    ledger: Ledger,
    req: WithdrawalRequest,
    approver: str,
    step: int,
    needed: int,
    lock: str | None,
) -> str:
    """The MAC of one approver's approval: the step of their code, the approvals needed then."""
    return seal(ws, APPROVAL, approval_fields(req, approver, step, needed, lock), ledger)


def auto_seal(ws: Workspace, ledger: Ledger, req: WithdrawalRequest) -> str:
    """The MAC of the policy's auto-approval of a request."""
    return seal(ws, AUTO, request_fields(req), ledger)


def check_before_send(ws: Workspace, req: WithdrawalRequest, now: datetime | None = None) -> None:
    """Refuse unless the entry and the approvals of `req` are sealed (exit 6; exit 8 no key)."""
    try:
        with ws.open_ledger() as ledger:
            _check(ledger, ws, req, now or datetime.now(UTC))
    except LedgerIntegrityError as exc:
        tamper_alert(ws, exc, key=f"withdraw.{req.id}.forged")
        raise


def _check(ledger: Ledger, ws: Workspace, req: WithdrawalRequest, now: datetime) -> None:
    from ccxtkit.withdrawals.allowlist import recorded_entries, resolve

    resolve(
        recorded_entries(ledger, ws),
        ws.config.withdrawals,
        req.asset,
        req.address,
        req.network,
        req.tag,
    )
    rows = ledger.query(
        "SELECT seq, kind, details FROM control_events WHERE subject = ? AND kind IN (?, ?) "
        "ORDER BY seq",
        [req.id, "withdraw.approval", "withdraw.approved"],
    )
    approved: dict[str, Any] | None = None
    valid: set[str] = set()
    needed, lock = 1, None
    enrolled = None
    for seq, kind, text in rows:
        d = json.loads(text or "{}")
        if kind == "withdraw.approved":
            approved = d
            continue
        who = str(d.get("approver"))
        what = f"approval of withdrawal {req.id} by {who!r} (ledger seq {seq})"
        fields = approval_fields(req, who, d.get("step"), d.get("needed"), d.get("lock"))
        verify_seal(ws, APPROVAL, fields, d.get("mac"), ledger, what=what)
        needed = max(needed, int(d.get("needed") or 1))
        lock = d.get("lock") or lock
        enrolled = enrolled if enrolled is not None else enrolled_in(ledger, ws)
        if who not in enrolled:
            raise AuthorizationError(
                f"{what}: approver {who!r} is no longer enrolled; withdrawal not sent"
            )
        valid.add(who)
    check_rows(ledger, [int(r[0]) for r in rows], f"the approvals of withdrawal {req.id}")
    if approved is None:
        raise AuthorizationError(f"withdrawal {req.id} is not approved: not sent")
    if approved.get("auto"):
        what = f"auto-approval of withdrawal {req.id}"
        verify_seal(ws, AUTO, request_fields(req), approved.get("mac"), ledger, what=what)
        return
    named = {str(a) for a in approved.get("approvers") or []}
    unlocked = lock is not None and now >= datetime.fromisoformat(str(lock))
    if not valid or not named <= valid or (len(valid) < needed and not unlocked):
        raise LedgerIntegrityError(
            f"withdrawal {req.id} is recorded as approved by {sorted(named) or 'nobody'} but "
            f"only {sorted(valid) or 'nobody'} approved it with a sealed 2FA code "
            f"({needed} needed): the ledger was edited; not sent"
        )
