"""Sending an approved withdrawal exactly once, and resolving the ones left in between.

Only a process that itself decided the approval may send: `withdraw-approve` after verifying
an approver's code, or `withdraw request` after auto-approving under the ledger lock. Either
hands `execute` an `Authority` for that one request; `vhc withdraw recover` never has one, so
an approval that is only a row in the ledger (forged, or left from an earlier process) can
never send money by itself.

The order of things is what makes it safe:
1. the kill switch and the policy are checked again;
2. `withdraw.executing` is written (the claim: from here on the money may have left), in the
   same ledger session that saw the request approved and not yet claimed, and that re-checked
   the approvals, the daily caps and the auto-approval cap against every other committed
   withdrawal, so two processes can never both send it nor together exceed a cap;
3. `withdraw` is called once. A lost reply (`WithdrawalOutcomeUnknown`) is written down as
   `withdraw.unknown` and looked up with `fetch_withdrawals`; `withdraw` is never called again
   for that request. `vhc withdraw recover` repeats the lookup later, and only when the
   exchange still shows nothing LOOKUP_GRACE after the send does it call the request failed
   (a new request, with new approvals, is then needed);
4. `withdraw.executed` and the `transfers` row (kind withdrawal, source withdraw, request_id,
   the exchange's id, fee and txid) are written in one transaction, for reconciliation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from ccxtkit import crashpoints
from ccxtkit.errors import (
    AuthorizationError,
    ExchangeError,
    KillSwitchActiveError,
    UsageError,
    VhcError,
    WithdrawalOutcomeUnknown,
)
from ccxtkit.exchanges.base import ExchangeClient, Transfer
from ccxtkit.ledger.store import Ledger
from ccxtkit.logs import log
from ccxtkit.money import fmt, is_usd_like
from ccxtkit.workspace import Workspace

from .allowlist import recorded_entries, resolve
from .authority import Authority, check_authority
from .policy import Policy, check_cool_off, check_daily_limit, unpriced
from .requests import WithdrawalRequest, committed_history, get_request, record

if TYPE_CHECKING:
    from ccxtkit.alerts import Severity

#: How long after a send with no answer the exchange may take to list the withdrawal.
LOOKUP_GRACE = timedelta(minutes=15)
#: Look from a little before the send: exchange clocks and whole-second timestamps differ.
LOOKUP_SLACK = timedelta(minutes=2)


@dataclass(frozen=True)
class Execution:
    """The outcome of sending one request."""

    request_id: str
    status: str  # executed | unknown
    transfer: Transfer | None
    found_by: str | None = None  # reply | lookup


def usd_value(client: ExchangeClient, asset: str, amount: Decimal) -> Decimal | None:
    """The USD value of `amount` of `asset` now (stablecoins at 1), or None without a price."""
    if is_usd_like(asset):
        return amount
    from ccxtkit.trading.pricing import usd_prices

    price = usd_prices(client, client.load_markets(), [asset]).get(asset.upper())
    return None if price is None else amount * price


def recheck(
    ledger: Ledger, ws: Workspace, req: WithdrawalRequest, usd: Decimal | None, now: datetime
) -> None:
    """The policy again: allowlist, cool-off, daily cap (counting every other committed one)."""
    policy = Policy.from_config(ws.config.withdrawals)
    entry = resolve(
        recorded_entries(ledger, ws),
        ws.config.withdrawals,
        req.asset,
        req.address,
        req.network,
        req.tag,
    )
    check_cool_off(entry, policy, now)
    if usd is None and policy.needs_usd:
        raise unpriced(req.asset)
    check_daily_limit(policy, req.asset, usd, committed_history(ledger, now, req.id), now)


def send_hint(request_id: str) -> str:
    """How an approved request that was not sent is sent (recover never sends)."""
    return f"`vhc withdraw-approve {request_id} --auth-code CODE` sends it"


def refuse_if_killed(ws: Workspace, request_id: str) -> None:
    """Exit 4 while the kill switch is active: no withdrawal leaves."""
    from ccxtkit.risk.killswitch import is_active

    if is_active(ws):
        raise KillSwitchActiveError(
            f"the kill switch is active: withdrawal {request_id} is not sent; once it is "
            f"deactivated, {send_hint(request_id)}"
        )


def execute(
    ws: Workspace,
    client: ExchangeClient,
    request_id: str,
    authority: Authority,
    now: datetime | None = None,
) -> Execution:
    """Send one approved request exactly once (see the module docstring)."""
    now = now or datetime.now(UTC)
    if authority.request_id != request_id:
        raise AuthorizationError(f"withdrawal {request_id} was not approved by this command")
    refuse_if_killed(ws, request_id)
    with ws.open_ledger() as ledger:
        req = get_request(ledger, request_id)
        if req.status != "approved":
            raise UsageError(f"withdrawal {request_id} is {req.status}, not approved: not sent")
    usd = usd_value(client, req.asset, req.amount)
    error: VhcError | None = None
    # One ledger session (its lock held throughout) sees the request approved and claims it.
    with ws.open_ledger() as ledger:
        req = get_request(ledger, request_id)
        if req.status != "approved":
            error = UsageError(f"withdrawal {request_id} is {req.status}, not approved: not sent")
        elif now >= req.expires_at:
            record(ledger, "expired", req.id, {"reason": "expired before it was sent"}, now)
            error = expired_error(req)
        else:
            try:
                recheck(ledger, ws, req, usd, now)
                policy = Policy.from_config(ws.config.withdrawals)
                check_authority(ledger, policy, req, authority, usd, now)
            except VhcError as exc:
                record(ledger, "refused", None, {"request_id": req.id, "error": exc.message}, now)
                error = exc
            else:
                details = {
                    "usd": usd,
                    "exchange": req.exchange,
                    "authorised_by": authority.approver or "policy",
                }
                record(ledger, "executing", req.id, details, now)
                req = get_request(ledger, request_id)
    if error is not None:
        raise error
    crashpoints.reach("withdraw.claimed")
    return _send(ws, client, req, now)


def _send(
    ws: Workspace, client: ExchangeClient, req: WithdrawalRequest, now: datetime
) -> Execution:
    from ccxtkit.risk.killswitch import order_send_guard

    try:
        from ccxtkit.auth.withdrawal_seals import check_before_send

        check_before_send(ws, req, now)  # seals of the entry and approvals, right before sending
        with order_send_guard(ws):
            transfer = client.withdraw(
                req.asset, req.amount, req.address, req.tag, req.network, req.label
            )
    except KillSwitchActiveError as exc:
        _write(ws, "not_sent", req.id, {"reason": "kill switch activated before the send"}, now)
        raise KillSwitchActiveError(
            f"{exc.message}; withdrawal {req.id} was not sent (once the switch is deactivated, "
            f"{send_hint(req.id)})"
        ) from None
    except WithdrawalOutcomeUnknown as exc:
        _write(ws, "unknown", req.id, {"error": exc.message}, now)
        found = _lookup_quietly(ws, client, [req])
        if req.id in found:
            done = record_executed(ws, req, found[req.id], "lookup", now)
            _alert_done(ws, req, done.transfer)
            return done
        _alert(
            ws,
            "critical",
            f"Withdrawal {req.id}: outcome unknown",
            f"{fmt(req.amount)} {req.asset} to {req.address} on {req.exchange}: the reply was "
            "lost and the exchange does not list it yet. It is NOT sent again. Run "
            "`vhc withdraw recover` to resolve it.",
            req.id,
        )
        detail = exc.message.split("; the withdrawal may")[0]  # drop the gateway's trade hint
        raise WithdrawalOutcomeUnknown(
            f"withdrawal {req.id}: {detail}; it may have left: it is recorded as executing and "
            "will not be sent again: run `vhc withdraw recover` to look it up"
        ) from None
    except ExchangeError as exc:
        # The exchange answered with a refusal (OutcomeUnknown was handled above): not sent.
        _write(ws, "failed", req.id, {"reason": exc.message}, now)
        _alert(ws, "warning", f"Withdrawal {req.id} failed", exc.message, req.id)
        raise
    except VhcError as exc:  # refused by the gateway before anything was sent
        _write(ws, "failed", req.id, {"reason": exc.message}, now)
        raise
    crashpoints.reach("withdraw.sent")
    if transfer.fee is None or not transfer.txid:
        transfer = _enrich(client, transfer, now)
    done = record_executed(ws, req, transfer, "reply", now)
    crashpoints.reach("withdraw.recorded")
    _alert_done(ws, req, transfer)
    return done


def _write(
    ws: Workspace, kind: str, request_id: str, details: dict[str, object], now: datetime
) -> None:
    with ws.open_ledger() as ledger:
        record(ledger, kind, request_id, dict(details), now)


def _enrich(client: ExchangeClient, sent: Transfer, now: datetime) -> Transfer:
    """The exchange's own listing of a withdrawal we just sent (fee, net amount), if it has one."""
    try:
        listed = client.fetch_withdrawals(now - LOOKUP_SLACK)
    except ExchangeError as exc:
        log.info("withdrawal %s sent; its fee is not listed yet: %s", sent.id, exc.message)
        return sent
    return next((t for t in listed if t.id == sent.id), sent)


def record_executed(
    ws: Workspace, req: WithdrawalRequest, t: Transfer, found_by: str, now: datetime
) -> Execution:
    """Write `withdraw.executed` and the `transfers` row in one transaction."""
    details = {
        "transfer_id": t.id,
        "amount": t.amount,
        "fee": t.fee,
        "fee_currency": t.fee_currency,
        "txid": t.txid,
        "status": t.status,
        "found_by": found_by,
    }
    row = {
        "timestamp": t.timestamp,
        "exchange": req.exchange,
        "kind": "withdrawal",
        "asset": req.asset,
        "amount": t.amount,
        "fee": t.fee,
        "fee_currency": t.fee_currency or (req.asset if t.fee is not None else None),
        "transfer_id": t.id,
        "txid": t.txid,
        "address": t.address or req.address,
        "network": t.network or req.network,
        "tag": t.tag or req.tag,
        "status": t.status,
        "source": "withdraw",
        "request_id": req.id,
    }
    with ws.open_ledger() as ledger, ledger.transaction():
        current = get_request(ledger, req.id)
        if current.status == "executed":  # a concurrent recover got there first
            return Execution(req.id, "executed", t, found_by)
        record(ledger, "executed", req.id, details, now)
        ledger.append("transfers", [row])
    return Execution(req.id, "executed", t, found_by)


def _claimed_ids(ws: Workspace, exchange: str) -> set[str]:
    with ws.open_ledger() as ledger:
        rows = ledger.query(
            "SELECT transfer_id FROM transfers WHERE exchange = ? AND kind = 'withdrawal' "
            "AND transfer_id IS NOT NULL",
            [exchange],
        )
    return {str(r[0]) for r in rows}


def matches(req: WithdrawalRequest, t: Transfer) -> bool:
    """True when an exchange withdrawal could be this request's (asset, amount, address, time)."""
    if t.asset.upper() != req.asset.upper() or req.executing_at is None:
        return False
    if t.timestamp < req.executing_at - LOOKUP_SLACK:
        return False
    if t.address and t.address != req.address:
        return False
    gross = t.amount + (t.fee or Decimal(0))
    return req.amount in (t.amount, gross)


def lookup(
    ws: Workspace, client: ExchangeClient, reqs: Iterable[WithdrawalRequest]
) -> dict[str, Transfer]:
    """Find sent-but-unanswered requests among the exchange's withdrawals, oldest claim first."""
    pending = sorted((r for r in reqs if r.executing_at), key=lambda r: r.executing_at or 0)
    if not pending:
        return {}
    since = min(r.executing_at for r in pending if r.executing_at) - LOOKUP_SLACK
    listed = sorted(client.fetch_withdrawals(since), key=lambda t: t.timestamp)
    taken = _claimed_ids(ws, pending[0].exchange)
    found: dict[str, Transfer] = {}
    for req in pending:
        hit = next((t for t in listed if t.id not in taken and matches(req, t)), None)
        if hit is not None:
            found[req.id] = hit
            taken.add(hit.id)
    return found


def _lookup_quietly(
    ws: Workspace, client: ExchangeClient, reqs: list[WithdrawalRequest]
) -> dict[str, Transfer]:
    with ws.open_ledger() as ledger:
        fresh = [get_request(ledger, r.id) for r in reqs]
    try:
        return lookup(ws, client, fresh)
    except ExchangeError as exc:
        log.warning("withdrawal lookup failed: %s", exc.message)
        return {}


def expired_error(req: WithdrawalRequest) -> VhcError:
    """The refusal of an expired request (exit 8: it can no longer be authorised)."""
    return AuthorizationError(
        f"withdrawal request {req.id} expired at {req.expires_at:%Y-%m-%d %H:%M} UTC "
        "(request_ttl_hours) and can no longer be approved or sent: file a new request"
    )


def _alert_done(ws: Workspace, req: WithdrawalRequest, t: Transfer | None) -> None:
    ident = f" (exchange id {t.id}" + (f", txid {t.txid})" if t and t.txid else ")") if t else ""
    _alert(
        ws,
        "info",
        f"Withdrawal {req.id} sent",
        f"{fmt(req.amount)} {req.asset} to {req.address} on {req.exchange}{ident}.",
        req.id,
    )


def _alert(ws: Workspace, severity: Severity, title: str, body: str, request_id: str) -> None:
    from ccxtkit.alerts import Alert, send_alert

    send_alert(ws, Alert(severity, title, body, key=f"withdraw.{request_id}.{title}"))
