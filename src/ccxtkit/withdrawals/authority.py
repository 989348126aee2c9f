"""Who may send a withdrawal: only the process that itself decided its approval.

`withdraw-approve` verifies an approver's code and `withdraw request` auto-approves under the
ledger lock; each hands `execute` an `Authority` for that one request, and the claim checks it
against the request's recorded approvals and the caps, in the session that writes the claim.
Nothing else (`withdraw recover`, a forged `withdraw.approved` row) can produce a send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from ccxtkit.errors import AuthorizationError, RiskLimitError
from ccxtkit.ledger.store import Ledger

from .policy import Policy, approvals_satisfied, auto_refusal, required_approvals
from .requests import WithdrawalRequest, committed_history

if TYPE_CHECKING:
    from ccxtkit.auth.totp import Verified


@dataclass(frozen=True)
class Authority:
    """What lets this process send one request: a code it verified, or its own auto-approval.

    `approver` is the approver whose code this process verified for the request (the
    `totp.Verified` proves it); None means this process auto-approved it moments ago.
    """

    request_id: str
    approver: str | None = None

    @classmethod
    def auto(cls, request_id: str) -> Authority:
        """This process auto-approved the request under the ledger lock."""
        return cls(request_id, None)

    @classmethod
    def verified(cls, request_id: str, verified: Verified) -> Authority:
        """This process verified `verified.approver`'s code for the request."""
        return cls(request_id, verified.approver)


def check_authority(
    ledger: Ledger,
    policy: Policy,
    req: WithdrawalRequest,
    authority: Authority,
    usd: Decimal | None,
    now: datetime,
) -> None:
    """Refuse (exit 8, or 3 for the auto cap) a send this process has not itself approved."""
    if authority.request_id != req.id:
        raise AuthorizationError(f"withdrawal {req.id} was not approved by this command: not sent")
    if authority.approver is None:
        if not req.auto or req.approvals_needed != 0:
            raise AuthorizationError(
                f"withdrawal {req.id} was not auto-approved by the policy: not sent; approve it "
                f"with `vhc withdraw-approve {req.id} --auth-code CODE`"
            )
        why = auto_refusal(policy, usd, committed_history(ledger, now, req.id), now)
        if why:
            raise RiskLimitError(
                f"withdrawal {req.id} not sent: no longer within auto-approval ({why}); an "
                f"approver can send it with `vhc withdraw-approve {req.id} --auth-code CODE`"
            )
        return
    needed, lock = required_approvals(
        policy, req.approvals_needed, req.time_lock_until, req.requested_at, usd
    )
    if authority.approver not in req.approvers or not approvals_satisfied(
        needed, lock, req.approvers, now
    ):
        raise AuthorizationError(
            f"withdrawal {req.id} lacks its approvals ({len(set(req.approvers))} of {needed} "
            "recorded): not sent"
        )
