"""`vhc withdraw recover`: resolve the fate of withdrawals already sent. It never sends one.

- pending/approved past its expiry -> expired;
- executing (sent, no reply or a crash before the reply was written) -> looked up with
  `fetch_withdrawals`: found -> executed (transfer recorded); not listed LOOKUP_GRACE after the
  send -> failed (nothing left the account; a new request is needed); else left for later.
  `withdraw` is never called again for such a request;
- approved and not yet sent (auto-approved under a kill switch, stopped before the send), or
  pending with its time lock ended -> reported for a person: only `vhc withdraw-approve`, which
  verifies an approver's code in the process that sends, may send it. An approval that is only
  a row in the ledger must never move money by itself (a forged row is a valid chain row).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from ccxtkit.errors import VhcError
from ccxtkit.workspace import Workspace

from .execute import LOOKUP_GRACE, lookup, record_executed, send_hint
from .policy import approvals_satisfied
from .requests import WithdrawalRequest, load_requests, record


@dataclass(frozen=True)
class Resolution:
    """What recover did with one request."""

    request_id: str
    before: str
    after: str
    note: str = ""
    needs_attention: bool = False


def recover(ws: Workspace, now: datetime | None = None) -> list[Resolution]:
    """Resolve expired and unanswered requests; report approved ones that wait to be sent."""
    now = now or datetime.now(UTC)
    out: list[Resolution] = []
    with ws.open_ledger() as ledger:
        for req in load_requests(ledger).values():
            if req.status in ("pending", "approved") and now >= req.expires_at:
                record(ledger, "expired", req.id, {"expires_at": req.expires_at.isoformat()}, now)
                out.append(Resolution(req.id, req.status, "expired", "time to live ran out"))
        requests = load_requests(ledger)
    by_exchange: dict[str, list[WithdrawalRequest]] = defaultdict(list)
    for req in requests.values():
        if req.status == "executing":
            by_exchange[req.exchange].append(req)
    for exchange, group in by_exchange.items():
        out.extend(_resolve_unknown(ws, exchange, group, now))
    for req in requests.values():
        if now >= req.expires_at:
            continue
        if req.status == "approved":
            note = f"approved, not sent: {send_hint(req.id)} (recover never sends)"
            out.append(Resolution(req.id, "approved", "approved", note, True))
        elif req.status == "pending" and req.approvers and _unlocked(req, now):
            note = f"time lock ended: one approver's code now sends it; {send_hint(req.id)}"
            out.append(Resolution(req.id, "pending", "pending", note, True))
    return out


def _unlocked(req: WithdrawalRequest, now: datetime) -> bool:
    return req.time_lock_until is not None and approvals_satisfied(
        req.approvals_needed, req.time_lock_until, req.approvers, now
    )


def _resolve_unknown(
    ws: Workspace, exchange: str, group: list[WithdrawalRequest], now: datetime
) -> list[Resolution]:
    from ccxtkit.trading.accounts import connect

    try:
        client = connect(ws, exchange)
        try:
            found = lookup(ws, client, group)
        finally:
            client.close()
    except VhcError as exc:
        return [
            Resolution(r.id, "executing", "executing", f"lookup failed: {exc.message}", True)
            for r in group
        ]
    out = []
    for req in group:
        hit = found.get(req.id)
        sent_at = req.executing_at or now
        if hit is not None:
            record_executed(ws, req, hit, "lookup", now)
            out.append(Resolution(req.id, "executing", "executed", f"found: exchange id {hit.id}"))
        elif now - sent_at >= LOOKUP_GRACE:
            reason = (
                f"not listed by {exchange} {int((now - sent_at).total_seconds() // 60)} min after "
                "the send: it never arrived; file a new request if it is still wanted"
            )
            with ws.open_ledger() as ledger:
                record(ledger, "failed", req.id, {"reason": reason}, now)
            out.append(Resolution(req.id, "executing", "failed", reason, True))
        else:
            retry = sent_at + LOOKUP_GRACE
            note = f"not listed yet; run recover again after {retry:%H:%M:%S} UTC"
            out.append(Resolution(req.id, "executing", "executing", note, True))
    return out
