"""A withdrawal request's life as hash-chained control events, and its state replayed from them.

Every step is one `control_events` row whose `subject` is the request id, so `vhc ledger log`
shows the whole life and `vhc ledger verify` covers it:

    withdraw.request    what, where, USD value, approvals needed, time lock, expiry
    withdraw.approval   one approver's accepted 2FA approval
    withdraw.approved   enough approvals (or the policy's auto-approval)
    withdraw.rejected   rejected or vetoed, with the reason
    withdraw.expired    its time to live ran out before it was sent
    withdraw.executing  written BEFORE `withdraw` is called: from here on it may have left
    withdraw.unknown    the exchange's reply was lost; only a lookup may resolve it
    withdraw.not_sent   the send was stopped before reaching the exchange (back to approved)
    withdraw.executed   the exchange's withdrawal id, fee and txid (a `transfers` row beside)
    withdraw.failed     the exchange refused it, or a lookup proved it never arrived

Refused attempts are `withdraw.refused` events without a request id.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ccxtkit.errors import UsageError
from ccxtkit.ledger.store import Ledger
from ccxtkit.money import to_decimal
from ccxtkit.records import decimal_str, timestamp

from .policy import WINDOW, Sent

#: Statuses a request can be in; the first five are the `--status` filter of DESIGN.md.
STATUSES = ("pending", "approved", "executed", "rejected", "expired", "executing", "failed")
FINAL = frozenset({"executed", "rejected", "expired", "failed"})


@dataclass
class WithdrawalRequest:
    """One request, as its events tell it."""

    id: str
    exchange: str
    asset: str
    amount: Decimal
    address: str
    network: str | None
    tag: str | None
    label: str | None
    usd: Decimal | None
    requested_at: datetime
    requested_by: str | None
    approvals_needed: int
    time_lock_until: datetime | None
    expires_at: datetime
    approvers: list[str] = field(default_factory=list)
    auto: bool = False
    status: str = "pending"
    approved_at: datetime | None = None
    executing_at: datetime | None = None
    executing_usd: Decimal | None = None
    transfer_id: str | None = None
    txid: str | None = None
    fee: Decimal | None = None
    reason: str | None = None
    steps: list[tuple[str, datetime]] = field(default_factory=list)

    def status_at(self, now: datetime) -> str:
        """The status, counting a pending/approved request past its expiry as expired."""
        if self.status in ("pending", "approved") and now >= self.expires_at:
            return "expired"
        return self.status

    def to_dict(self, now: datetime) -> dict[str, Any]:
        """The withdrawal request record of docs/json.md (money as normalized strings)."""
        return {
            "id": self.id,
            "status": self.status_at(now),
            "exchange": self.exchange,
            "asset": self.asset,
            "amount": decimal_str(self.amount),
            "address": self.address,
            "network": self.network,
            "tag": self.tag,
            "label": self.label,
            "usd": None if self.usd is None else decimal_str(self.usd),
            "requested_at": timestamp(self.requested_at),
            "requested_by": self.requested_by,
            "approvals_needed": self.approvals_needed,
            "approvers": list(self.approvers),
            "auto": self.auto,
            "time_lock_until": timestamp(self.time_lock_until) if self.time_lock_until else None,
            "expires_at": timestamp(self.expires_at),
            "transfer_id": self.transfer_id,
            "txid": self.txid,
            "fee": None if self.fee is None else decimal_str(self.fee),
            "reason": self.reason,
        }


def new_request_id() -> str:
    """A fresh request id, short enough to type."""
    return "wr-" + secrets.token_hex(5)


def aware(value: datetime) -> datetime:
    """Ledger timestamps are naive UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _when(text: Any) -> datetime | None:
    return aware(datetime.fromisoformat(text)) if text else None


def _dec(text: Any) -> Decimal | None:
    return None if text is None else to_decimal(text)


def _from_request(subject: str, at: datetime, d: dict[str, Any]) -> WithdrawalRequest:
    expires = _when(d.get("expires_at"))
    assert expires is not None
    return WithdrawalRequest(
        id=subject,
        exchange=d["exchange"],
        asset=d["asset"],
        amount=to_decimal(d["amount"]),
        address=d["address"],
        network=d.get("network"),
        tag=d.get("tag"),
        label=d.get("label"),
        usd=_dec(d.get("usd")),
        requested_at=at,
        requested_by=d.get("requested_by"),
        approvals_needed=int(d["approvals_needed"]),
        time_lock_until=_when(d.get("time_lock_until")),
        expires_at=expires,
    )


def _apply(req: WithdrawalRequest, kind: str, at: datetime, d: dict[str, Any]) -> None:
    step = kind.removeprefix("withdraw.")
    req.steps.append((step, at))
    if step == "approval":
        req.approvers.append(str(d.get("approver")))
    elif step == "approved":
        req.status, req.auto, req.approved_at = "approved", bool(d.get("auto")), at
    elif step in ("rejected", "expired", "failed"):
        req.status, req.reason = step, d.get("reason")
    elif step == "executing":
        req.status, req.executing_at = "executing", at
        req.executing_usd = _dec(d.get("usd"))
    elif step == "not_sent":
        req.status, req.executing_at, req.reason = "approved", None, d.get("reason")
    elif step == "executed":
        req.status = "executed"
        req.transfer_id, req.txid, req.fee = d.get("transfer_id"), d.get("txid"), _dec(d.get("fee"))
    # `unknown` leaves the status at executing: only a lookup can move it on


def load_requests(ledger: Ledger, request_id: str | None = None) -> dict[str, WithdrawalRequest]:
    """Every request (or one) replayed from its events, oldest first."""
    sql = (
        "SELECT kind, subject, timestamp, details FROM control_events WHERE kind LIKE 'withdraw.%'"
    )
    params: list[Any] = []
    if request_id is not None:
        sql += " AND subject = ?"
        params.append(request_id)
    out: dict[str, WithdrawalRequest] = {}
    for kind, subject, ts, text in ledger.query(sql + " ORDER BY seq", params):
        if not subject:
            continue
        details = json.loads(text or "{}")
        at = aware(ts)
        if kind == "withdraw.request":
            out[subject] = _from_request(subject, at, details)
            out[subject].steps.append(("request", at))
        elif subject in out:
            _apply(out[subject], kind, at, details)
    return out


def get_request(ledger: Ledger, request_id: str) -> WithdrawalRequest:
    """One request, or a clear error naming how to list them."""
    found = load_requests(ledger, request_id).get(request_id)
    if found is None:
        raise UsageError(
            f"no withdrawal request {request_id!r} in the ledger (see `vhc withdraw list --status all`)"
        )
    return found


def committed_history(ledger: Ledger, now: datetime, exclude: str | None = None) -> list[Sent]:
    """Withdrawals that count against the rolling caps, every request but `exclude`.

    Sent (or possibly sent) within 24 h count from their send; failed ones are left out, one
    whose outcome is unknown counts, because it may have left. Approved and not yet sent (nor
    expired) count as of `now`: they may leave at any moment, so the cap is taken at approval.
    """
    history = []
    for req in load_requests(ledger).values():
        if req.id == exclude:
            continue
        if req.status == "approved" and req.status_at(now) == "approved":
            at = now
        elif req.executing_at is not None and req.status in ("executing", "executed"):
            at = req.executing_at
        else:
            continue
        if at <= now - WINDOW:
            continue
        usd = req.executing_usd if req.executing_usd is not None else req.usd
        history.append(Sent(req.asset, usd if usd is not None else Decimal(0), at, req.auto))
    return history


def record(
    ledger: Ledger,
    kind: str,
    request_id: str | None,
    details: dict[str, Any],
    now: datetime,
    actor: str | None = None,
) -> int:
    """Append one step of a request's life (`kind` without the `withdraw.` prefix)."""
    return ledger.record_event(
        f"withdraw.{kind}", details, actor=actor, subject=request_id, timestamp=now
    )
