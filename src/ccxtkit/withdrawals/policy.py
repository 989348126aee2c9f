"""The withdrawal policy as pure rules: every function takes `now` and does no I/O.

- An address is usable only when an allowlist entry recorded in the ledger matches its asset,
  address and network, and only once `new_address_delay_hours` have passed since it was added.
- `auto_approve_under` (USD, strict "under") approves without a person, and only while the
  rolling 24 h total of auto-approved withdrawals stays within `daily_auto_approve_cap_usd`
  (unset: 5 x `auto_approve_under`; a cap of 0 turns auto-approval off: it fails closed).
- The caps count every withdrawal committed to: sent, possibly sent, or approved and not yet
  sent (from the moment of its approval). They are checked under the ledger lock in the same
  session that records the approval, and again at the execution claim, so concurrent
  processes cannot together go over a cap.
- Above `require_two_approvals_over` (strict "over") two different approvers are needed; with
  `time_lock_hours` set, one approval is enough once the lock (counted from the request) has
  passed, and the request can be vetoed until then.
- `daily_limit_usd` caps the rolling 24 h USD total per asset, this withdrawal included
  (equal to the limit is allowed); a withdrawal leaves the window 24 h after it was sent
  (an approved one not yet sent stays in it).
- A request expires `request_ttl_hours` after it was made, or after its time lock ended.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from ccxtkit.config import WithdrawalsConfig
from ccxtkit.errors import AuthorizationError, RiskLimitError
from ccxtkit.money import ZERO, fmt

WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class AllowedAddress:
    """An allowlist entry as recorded in the ledger (with a 2FA code)."""

    asset: str
    address: str
    network: str | None
    label: str | None
    added_at: datetime
    added_by: str | None = None
    tag: str | None = None  # destination tag / memo: a request's must equal it exactly

    def usable_from(self, delay: timedelta) -> datetime:
        """When the cool-off of this entry ends."""
        return self.added_at + delay


@dataclass(frozen=True)
class Policy:
    """The `withdrawals:` config as the rules use it."""

    auto_approve_under: Decimal = ZERO
    auto_cap_usd: Decimal = ZERO
    two_approvals_over: Decimal | None = None
    time_lock: timedelta | None = None
    daily_limit_usd: Decimal | None = None
    new_address_delay: timedelta = timedelta(hours=24)
    ttl: timedelta = timedelta(hours=24)

    @classmethod
    def from_config(cls, cfg: WithdrawalsConfig) -> Policy:
        """Read the policy from the config model."""

        def hours(value: Decimal) -> timedelta:
            return timedelta(seconds=float(value * 3600))

        return cls(
            auto_approve_under=cfg.auto_approve_under,
            auto_cap_usd=cfg.auto_cap_usd,
            two_approvals_over=cfg.require_two_approvals_over,
            time_lock=hours(cfg.time_lock_hours) if cfg.time_lock_hours else None,
            daily_limit_usd=cfg.daily_limit_usd,
            new_address_delay=hours(cfg.new_address_delay_hours),
            ttl=hours(cfg.request_ttl_hours),
        )

    @property
    def needs_usd(self) -> bool:
        """True when some rule compares USD values (an unpriced asset must then be refused)."""
        return (
            self.auto_approve_under > 0
            or self.two_approvals_over is not None
            or self.daily_limit_usd is not None
        )


@dataclass(frozen=True)
class Sent:
    """A withdrawal that counts against the rolling caps (sent, possibly sent, or approved)."""

    asset: str
    usd: Decimal
    at: datetime
    auto: bool = False


@dataclass(frozen=True)
class Plan:
    """How a request must be approved."""

    usd: Decimal | None
    approvals: int  # 0 = auto-approved
    time_lock_until: datetime | None
    expires_at: datetime
    note: str = ""

    @property
    def auto(self) -> bool:
        """Approved by the policy itself."""
        return self.approvals == 0


def _same_network(a: str | None, b: str | None) -> bool:
    return (a or "").strip().upper() == (b or "").strip().upper()


def find_entry(
    entries: Iterable[AllowedAddress], asset: str, address: str, network: str | None
) -> AllowedAddress | None:
    """The entry for this asset and address; a request without a network takes the entry's."""
    matches = [e for e in entries if e.asset.upper() == asset.upper() and e.address == address]
    if network is None:
        return matches[0] if len(matches) == 1 else None
    return next((e for e in matches if _same_network(e.network, network)), None)


def check_cool_off(entry: AllowedAddress, policy: Policy, now: datetime) -> None:
    """Refuse (exit 8) an entry still inside its cool-off."""
    ready = entry.usable_from(policy.new_address_delay)
    if now < ready:
        left = ready - now
        raise AuthorizationError(
            f"{entry.asset} address {entry.address} was added to the allowlist at "
            f"{entry.added_at:%Y-%m-%d %H:%M} UTC and is usable only from {ready:%Y-%m-%d %H:%M} "
            f"UTC (cool-off new_address_delay_hours; {_hours(left)} h left)"
        )


def window_total(
    history: Iterable[Sent], now: datetime, asset: str | None = None, auto_only: bool = False
) -> Decimal:
    """USD sent in the rolling 24 h before `now` (an entry exactly 24 h old has left it).

    An entry stamped after `now` counts too: another process, whose clock read came later,
    may have sent it while this one was still deciding.
    """
    return sum(
        (
            s.usd
            for s in history
            if now - WINDOW < s.at
            and (asset is None or s.asset.upper() == asset.upper())
            and (s.auto or not auto_only)
        ),
        ZERO,
    )


def check_daily_limit(
    policy: Policy, asset: str, usd: Decimal | None, history: Iterable[Sent], now: datetime
) -> None:
    """Refuse (exit 3) a withdrawal that would take the asset's rolling 24 h total over the cap."""
    limit = policy.daily_limit_usd
    if limit is None:
        return
    if usd is None:
        raise unpriced(asset)
    used = window_total(history, now, asset)
    if used + usd > limit:
        raise RiskLimitError(
            f"withdrawal refused by daily_limit_usd for {asset}: limit {fmt(limit)} USD, "
            f"sent or approved in the last 24 h {fmt(used)} USD + this {fmt(usd)} USD = "
            f"{fmt(used + usd)} USD; headroom {fmt(max(limit - used, ZERO))} USD"
        )


def auto_refusal(
    policy: Policy, usd: Decimal | None, history: Iterable[Sent], now: datetime
) -> str:
    """Why `usd` may not be auto-approved now ("" when it may): threshold, then the auto cap."""
    if policy.auto_approve_under <= 0:
        return "auto_approve_under is 0: every withdrawal needs an approver"
    if usd is None or usd >= policy.auto_approve_under:
        shown = "unknown" if usd is None else f"{fmt(usd)} USD"
        return f"its value ({shown}) is not under auto_approve_under {fmt(policy.auto_approve_under)} USD"
    used = window_total(history, now, auto_only=True)
    if used + usd <= policy.auto_cap_usd:
        return ""
    return (
        f"daily_auto_approve_cap_usd {fmt(policy.auto_cap_usd)} USD, auto-approved in the last "
        f"24 h {fmt(used)} USD, headroom {fmt(max(policy.auto_cap_usd - used, ZERO))} USD"
    )


def required_approvals(
    policy: Policy,
    needed: int,
    time_lock_until: datetime | None,
    requested_at: datetime,
    usd: Decimal | None,
) -> tuple[int, datetime | None]:
    """The approvals a request needs now: never fewer than its row or the policy asks.

    Over `require_two_approvals_over` (its value may have risen since the request) two are
    needed; a time lock lets one suffice only when both the row and the policy have one, and
    only from the later of their ends.
    """
    over = policy.two_approvals_over
    if usd is None or over is None or usd <= over:
        return needed, time_lock_until
    policy_lock = requested_at + policy.time_lock if policy.time_lock else None
    if needed < 2:
        return 2, policy_lock
    if time_lock_until is None or policy_lock is None:
        return needed, None
    return needed, max(time_lock_until, policy_lock)


def check_no_unconfirmed(
    in_doubt: Iterable[tuple[str, str, str, str]], exchange: str, asset: str, address: str
) -> None:
    """Refuse a new withdrawal to a destination whose last one has an unconfirmed outcome.

    `in_doubt` holds (request id, exchange, asset, address) of requests whose send got no
    reliable answer. Asking again before the exchange has been checked is how money leaves
    twice.
    """
    for request_id, ex, a, addr in in_doubt:
        if (ex, a, addr) == (exchange, asset, address):
            raise RiskLimitError(
                f"withdrawal {request_id} of {asset} to {address} on {exchange} got no reliable "
                "answer from the exchange and may have been sent: run `vhc withdraw recover` "
                "(and check the exchange's withdrawal history) before requesting another"
            )


def unpriced(asset: str) -> RiskLimitError:
    """The refusal for an asset without a USD price while USD rules are configured."""
    return RiskLimitError(
        f"no USD price for {asset}: the withdrawal limits are in USD and cannot be checked; "
        "limit usd, value unknown, headroom unknown (the exchange must list a USD pair)"
    )


def plan(
    policy: Policy,
    asset: str,
    usd: Decimal | None,
    history: Iterable[Sent],
    now: datetime,
    requested_at: datetime | None = None,
) -> Plan:
    """Decide how a request must be approved; raises on a daily-cap breach."""
    history = list(history)
    start = requested_at or now
    if usd is None and policy.needs_usd:
        raise unpriced(asset)
    check_daily_limit(policy, asset, usd, history, now)
    expires = start + policy.ttl
    if usd is not None and policy.auto_approve_under > 0 and usd < policy.auto_approve_under:
        why = auto_refusal(policy, usd, history, now)
        if not why:
            return Plan(usd, 0, None, expires, "auto-approved (under auto_approve_under)")
        return Plan(usd, 1, None, expires, f"not auto-approved: {why}")
    over = policy.two_approvals_over
    if usd is not None and over is not None and usd > over:
        if policy.time_lock is not None:
            unlock = start + policy.time_lock
            note = (
                f"over require_two_approvals_over {fmt(over)} USD: two approvers, or one after "
                f"the time lock ends at {unlock:%Y-%m-%d %H:%M} UTC"
            )
            return Plan(usd, 2, unlock, unlock + policy.ttl, note)
        note = f"over require_two_approvals_over {fmt(over)} USD: two different approvers"
        return Plan(usd, 2, None, expires, note)
    return Plan(usd, 1, None, expires, "one approval")


def approvals_satisfied(
    needed: int, time_lock_until: datetime | None, approvers: Iterable[str], now: datetime
) -> bool:
    """True when the distinct approvers (or one approver after the time lock) suffice."""
    distinct = len(set(approvers))
    if distinct >= needed:
        return True
    return time_lock_until is not None and now >= time_lock_until and distinct >= 1


def is_expired(expires_at: datetime, now: datetime) -> bool:
    """True from the moment the request's time to live has run out."""
    return now >= expires_at


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f}"
