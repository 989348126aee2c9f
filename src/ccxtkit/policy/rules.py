"""Whether a policy change only tightens: a pure rule per key, and loosening for anything else.

A change is one leaf of the policy document (dotted key, old value, new value). Each key has a
rule saying which direction is tighter; a key without a rule is loosening, so a field added to
the config later can never be loosened silently. `neutral` marks settings that move no money
(the paper exchange's simulation): recorded automatically like a tightening.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

Direction = Literal["tighten", "loosen", "neutral"]


class _Absent:
    """A key present on one side only."""

    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Change:
    """One changed key of the policy: what it was, what it becomes, and which way that goes."""

    key: str
    old: Any
    new: Any
    direction: Direction
    reason: str


Rule = Callable[[Any, Any], tuple[Direction, str]]


def _number(value: Any) -> Decimal | None:
    if value is None or value is ABSENT or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value).strip().rstrip("%"))
    except InvalidOperation:
        return None


def lower_is_tighter(old: Any, new: Any) -> tuple[Direction, str]:
    """A cap: lower is tighter; none (null) means no cap at all."""
    a, b = _number(old), _number(new)
    if b is None:
        return ("loosen", "the limit is removed") if a is not None else ("loosen", "unclear")
    if a is None:
        return "tighten", "a limit is set where there was none"
    return ("tighten", "lowered") if b < a else ("loosen", "raised")


def lower_only(old: Any, new: Any) -> tuple[Direction, str]:
    """A cap whose absence means a default, not "no cap": only a lower number is tighter."""
    a, b = _number(old), _number(new)
    if a is not None and b is not None and b < a:
        return "tighten", "lowered"
    return "loosen", "raised, or set to/from its default (not comparable)"


def higher_is_tighter(old: Any, new: Any) -> tuple[Direction, str]:
    """A delay or a window: longer is tighter; none (null) means zero."""
    a, b = _number(old) or Decimal(0), _number(new) or Decimal(0)
    return ("tighten", "lengthened") if b >= a else ("loosen", "shortened")


def true_is_tighter(old: Any, new: Any) -> tuple[Direction, str]:
    """A switch that turns a control on."""
    return ("tighten", "switched on") if new is True else ("loosen", "switched off")


def false_is_tighter(old: Any, new: Any) -> tuple[Direction, str]:
    """`enabled` of an account: switching it off is tighter."""
    return ("tighten", "disabled") if new is False else ("loosen", "enabled")


def fewer_is_tighter(old: Any, new: Any) -> tuple[Direction, str]:
    """A list of what is allowed: removing items is tighter, adding any is loosening."""

    def bag(v: Any) -> Counter[str]:
        items = v if isinstance(v, list) else []
        return Counter(json.dumps(i, sort_keys=True) for i in items)

    added = bag(new) - bag(old)
    return ("loosen", f"{sum(added.values())} added") if added else ("tighten", "only removed")


def loss_limit(old: Any, new: Any) -> tuple[Direction, str]:
    """`daily_loss_limit`: a USD amount or a percentage; comparable only in the same unit."""
    if new is None or new is ABSENT:
        return "loosen", "the limit is removed"
    if old is None or old is ABSENT:
        return "tighten", "a limit is set where there was none"
    if str(old).endswith("%") != str(new).endswith("%"):
        return "loosen", "changed between USD and percent (not comparable)"
    return lower_is_tighter(old, new)


def neutral(old: Any, new: Any) -> tuple[Direction, str]:
    """A setting that moves no money (the paper exchange's simulation)."""
    return "neutral", "moves no money"


def loosening(old: Any, new: Any) -> tuple[Direction, str]:
    """Anything that cannot be classified (endpoints, backends, ids): loosening."""
    return "loosen", "cannot be classified as tighter"


#: Rules by key; `*` stands for one account name, a trailing `.*` for anything below.
RULES: dict[str, Rule] = {
    "risk.max_order_value": lower_is_tighter,
    "risk.max_daily_volume": lower_is_tighter,
    "risk.max_position_size": lower_is_tighter,
    "risk.max_drawdown_pct": lower_is_tighter,
    "risk.max_open_orders": lower_is_tighter,
    "risk.max_open_positions": lower_is_tighter,
    "risk.max_position_pct": lower_is_tighter,
    "risk.kill_switch_enabled": true_is_tighter,
    "risk.daily_loss_limit": loss_limit,
    "risk.circuit_breaker.enabled": true_is_tighter,
    "risk.circuit_breaker.max_failures": lower_is_tighter,
    "risk.circuit_breaker.window_minutes": higher_is_tighter,
    "withdrawals.auto_approve_under": lower_is_tighter,
    "withdrawals.daily_auto_approve_cap_usd": lower_only,  # unset: 5 x auto_approve_under
    "withdrawals.daily_limit_usd": lower_is_tighter,
    "withdrawals.require_two_approvals_over": lower_is_tighter,
    "withdrawals.request_ttl_hours": lower_is_tighter,
    "withdrawals.new_address_delay_hours": higher_is_tighter,
    "withdrawals.time_lock_hours": higher_is_tighter,
    "withdrawals.recipient_allowlist": fewer_is_tighter,
    "exchanges.*.enabled": false_is_tighter,
    "exchanges.*.sandbox": true_is_tighter,
    "exchanges.*.rate_limit": lower_is_tighter,
    "exchanges.*.ip_allowlist": fewer_is_tighter,
    "exchanges.*.cash_currencies": fewer_is_tighter,
    "exchanges.*.dust": lower_is_tighter,
    "exchanges.*.paper.*": neutral,
    # Signals place orders from outside: a new source, chat or address lets more people trade.
    "signals.max_age_seconds": lower_is_tighter,
    "signals.max_attempts": lower_is_tighter,
    "signals.retry_base_seconds": neutral,
    "signals.workers": neutral,
    "signals.sources.*.chat_ids": fewer_is_tighter,
    # ip_allowlist: an empty list admits every address, so no change of it is surely tighter.
}


def rule_for(key: str) -> Rule:
    """The rule of a dotted key (account names matched by `*`); loosening when there is none."""
    parts = key.split(".")
    candidates = [key]
    if parts[0] == "exchanges" and len(parts) > 2:
        generic = ["exchanges", "*", *parts[2:]]
        candidates += [".".join(generic), ".".join(generic[:3]) + ".*"]
    if parts[:2] == ["signals", "sources"] and len(parts) > 3:
        candidates.append(".".join(["signals", "sources", "*", *parts[3:]]))
    for candidate in candidates:
        if candidate in RULES:
            return RULES[candidate]
    if parts[-1].startswith("max_") and parts[0] == "risk":
        return lower_is_tighter  # a cap added to the risk model later
    return loosening


def _leaves(value: Any, prefix: str) -> dict[str, Any]:
    # An empty mapping has no leaves: `ccxt: {}` -> `ccxt: {timeout: 5}` is one change.
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{prefix}.{key}"))
        return out
    return {prefix: value}


def _compare_section(old: Any, new: Any, prefix: str) -> list[Change]:
    a, b = _leaves(old, prefix), _leaves(new, prefix)
    changes = []
    for key in sorted(set(a) | set(b)):
        before, after = a.get(key, ABSENT), b.get(key, ABSENT)
        if before == after:
            continue
        direction, reason = rule_for(key)(before, after)
        changes.append(Change(key, before, after, direction, reason))
    return changes


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every changed key between two policy documents, classified, in a stable order."""
    changes: list[Change] = []
    old_accounts, new_accounts = old.get("exchanges", {}), new.get("exchanges", {})
    for name in sorted(set(old_accounts) | set(new_accounts)):
        key = f"exchanges.{name}"
        if name not in old_accounts:
            changes.append(Change(key, ABSENT, "(new account)", "loosen", "an account is added"))
        elif name not in new_accounts:
            changes.append(Change(key, "(account)", ABSENT, "tighten", "an account is removed"))
        else:
            changes += _compare_section(old_accounts[name], new_accounts[name], key)
    old_sources = old.get("signals", {}).get("sources", {})
    new_sources = new.get("signals", {}).get("sources", {})
    for name in sorted(set(old_sources) | set(new_sources)):
        key = f"signals.sources.{name}"
        if name not in old_sources:
            changes.append(
                Change(key, ABSENT, "(new source)", "loosen", "a signal source is added")
            )
        elif name not in new_sources:
            changes.append(Change(key, "(source)", ABSENT, "tighten", "a signal source is removed"))
        else:
            changes += _compare_section(old_sources[name], new_sources[name], key)
    for section in sorted((set(old) | set(new)) - {"exchanges"}):
        before, after = old.get(section, {}), new.get(section, {})
        if section == "signals":  # its sources were compared above, one by one
            before = {k: v for k, v in before.items() if k != "sources"}
            after = {k: v for k, v in after.items() if k != "sources"}
        changes += _compare_section(before, after, section)
    return changes


def loosened(changes: list[Change]) -> list[Change]:
    """The changes that need an approver's code."""
    return [c for c in changes if c.direction == "loosen"]
