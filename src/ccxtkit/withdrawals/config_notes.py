"""What `vhc config validate` says about the `withdrawals:` section beyond its validity.

Each note is one line: where vhc's meaning differs from the seed's comment (auto-approval needs
a cap, and has a default one; approval_method sends a request, a code still approves), and what
is declared but not in force (allowlist entries not adopted, a method without its channel).
"""

from __future__ import annotations

from ccxtkit.config import AUTO_CAP_MULTIPLE, TradingConfig
from ccxtkit.errors import VhcError
from ccxtkit.money import fmt
from ccxtkit.workspace import Workspace

from .allowlist import recorded_entries
from .allowlist_import import pending_entries
from .policy import AllowedAddress

IMPORT_HINT = "`vhc withdraw allowlist import-config --auth-code CODE`"


def _recorded(ws: Workspace, cfg: TradingConfig) -> tuple[list[AllowedAddress], str]:
    """The ledger's allowlist (read-only), or none and why it could not be read."""
    path = ws.path(cfg.ledger.path)
    if not path.exists():
        return [], ""
    from ccxtkit.ledger.store import open_ledger

    try:
        with open_ledger(path, wait_seconds=2, read_only=True) as ledger:
            return recorded_entries(ledger, ws), ""
    except VhcError as exc:
        return [], f" (the ledger could not be read to check: {exc.message})"


def withdrawal_notes(cfg: TradingConfig, ws: Workspace) -> list[str]:
    """One line per place the withdrawals section `cfg` does not do what it may seem to."""
    w = cfg.withdrawals
    notes: list[str] = []
    recorded, unread = _recorded(ws, cfg) if w.recipient_allowlist else ([], "")
    for p in pending_entries(w, recorded):
        what = f"{p.asset} {p.address}" if p.asset else p.address
        if p.problem:
            notes.append(
                f"withdrawals.recipient_allowlist: {what} is refused: {p.problem}, then "
                f"{IMPORT_HINT}{unread}"
            )
        else:
            notes.append(
                f"withdrawals.recipient_allowlist: {what} is pending: withdrawals to it are "
                f"refused until adopted with {IMPORT_HINT} (then new_address_delay_hours "
                f"{fmt(w.new_address_delay_hours)} h of cool-off){unread}"
            )
    if w.auto_approve_under > 0:
        if w.daily_auto_approve_cap_usd is None:
            notes.append(
                f"withdrawals.auto_approve_under {fmt(w.auto_approve_under)} USD: auto-approved "
                f"withdrawals are also capped by daily_auto_approve_cap_usd, unset here, so the "
                f"default {fmt(AUTO_CAP_MULTIPLE)} x auto_approve_under = {fmt(w.auto_cap_usd)} "
                "USD per rolling 24 h applies; above it a person approves"
            )
        elif w.daily_auto_approve_cap_usd == 0:
            notes.append(
                "withdrawals.auto_approve_under is set but daily_auto_approve_cap_usd is 0: "
                "nothing is auto-approved"
            )
    method = w.approval_method
    if method == "manual":
        notes.append(
            "withdrawals.approval_method manual: no approval request is sent (vhc has no "
            "dashboard); approvers find requests with `vhc withdraw list`"
        )
    elif getattr(cfg.monitoring.alerts, method) is None:
        notes.append(
            f"withdrawals.approval_method {method}: monitoring.alerts.{method} is not "
            "configured, so approval requests are not sent"
        )
    else:
        notes.append(
            f"withdrawals.approval_method {method}: the approval request (command, amount, "
            f"address, tag, label, expiry) goes to monitoring.alerts.{method}; approving still "
            "takes `vhc withdraw-approve ID --auth-code CODE` (a reply approves nothing)"
        )
    return notes
