"""Reconcile's alerts: an unknown withdrawal is critical on its own; the rest, one per account."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from ccxtkit.alerts import Alert, send_alert
from ccxtkit.money import cents, fmt
from ccxtkit.workspace import Workspace

if TYPE_CHECKING:
    from .service import ReconcileResult


def _amount(value: Decimal | None) -> str:
    return "?" if value is None else fmt(value)


def build_alerts(result: ReconcileResult) -> list[Alert]:
    """Alerts for findings over the threshold (unpriced ones count), and unreadable accounts."""
    out: list[Alert] = []
    label = result.period.label
    for name in sorted(result.accounts):
        acct = result.accounts[name]
        if acct.error:
            out.append(Alert("warning", f"reconcile: {name} could not be read", acct.error,
                             key=f"reconcile:{name}:unreadable"))  # fmt: skip
            continue
        lines = []
        for f in acct.attention:
            if f.kind == "unknown_withdrawal":
                out.append(Alert(
                    "critical",
                    f"UNKNOWN WITHDRAWAL on {name}: {_amount(f.amount)} {f.subject}",
                    f"{f.detail} (exchange id {f.ref}, {f.timestamp:%Y-%m-%d %H:%M:%S} UTC). "
                    "Consider `vhc kill-switch --activate` and rotating the API keys.",
                    key=f"reconcile:{name}:withdrawal:{f.ref}",
                ))  # fmt: skip
            elif f.value_usd is None or abs(f.value_usd) > result.threshold:
                lines.append(f"{f.label} {f.ref}: {f.detail}")
        for c in acct.checks:
            if not c.ok:
                usd = "" if c.difference_usd is None else f" (${cents(c.difference_usd)})"
                lines.append(f"{c.asset} balance: ledger {fmt(c.local)}, exchange "
                             f"{fmt(c.actual)}, difference {fmt(c.difference)}{usd}: {c.status}")  # fmt: skip
        if lines:
            out.append(Alert("warning", f"reconcile {label}: {name} does not agree with the ledger",
                             "\n".join(lines), key=f"reconcile:{name}:{label}"))  # fmt: skip
    return out


def raise_alerts(ws: Workspace, result: ReconcileResult) -> list[str]:
    """Send the alerts; returns their titles."""
    alerts = build_alerts(result)
    for alert in alerts:
        send_alert(ws, alert)
    return [a.title for a in alerts]
