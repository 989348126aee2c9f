"""Alerts that reach a person: one call fans out to every configured channel.

    from ccxtkit.alerts import Alert, send_alert
    send_alert(ws, Alert("critical", "Kill switch activated", "reason: manual"))

Every alert is written to the log. Alerts below `monitoring.alerts.min_severity` are only
logged; an alert whose key was delivered within `dedup_minutes` is held back. A failing channel
is logged and reported in the result, never raised: the command that raised the alert goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from ccxtkit.logs import log, redact

from . import dedup
from .channels import SENDERS

if TYPE_CHECKING:
    from ccxtkit.workspace import Workspace

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
_LOG_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}

__all__ = ["Alert", "AlertResult", "Severity", "send_alert"]


@dataclass(frozen=True)
class Alert:
    """Something a person must hear about. `key` groups repeats (default: the title)."""

    severity: Severity
    title: str
    body: str
    key: str | None = None

    @property
    def dedup_key(self) -> str:
        """The key repeats are recognised by."""
        return self.key or self.title


@dataclass
class AlertResult:
    """What happened to one alert: who delivered it, who failed, or why no channel ran."""

    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None  # "below_min_severity" | "duplicate" | "no_channels" | "error"

    @property
    def ok(self) -> bool:
        """True when no channel failed."""
        return not self.failed


def send_alert(ws: Workspace, alert: Alert, now: datetime | None = None) -> AlertResult:
    """Log the alert and deliver it to every configured channel; never raises."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    severity = alert.severity if alert.severity in SEVERITY_RANK else "critical"
    log.log(
        _LOG_LEVEL[severity],
        "alert %s [%s]: %s | %s",
        severity.upper(),
        alert.dedup_key,
        alert.title,
        alert.body.replace("\n", " / "),
    )
    try:
        return _deliver(ws, alert, severity, now)
    except Exception as exc:  # noqa: BLE001 - an alert must never break the command raising it
        log.warning("alert delivery failed before any channel ran: %s", redact(str(exc)))
        return AlertResult(skipped="error", failed={"alerts": redact(str(exc))})


def _deliver(ws: Workspace, alert: Alert, severity: str, now: datetime) -> AlertResult:
    cfg = ws.config.monitoring.alerts
    if SEVERITY_RANK[severity] < SEVERITY_RANK[cfg.min_severity]:
        return AlertResult(skipped="below_min_severity")
    channels = [(name, getattr(cfg, name)) for name in SENDERS if getattr(cfg, name) is not None]
    if not channels:
        return AlertResult(skipped="no_channels")
    state = ws.state_dir / "alerts_dedup.json"
    if not dedup.claim(state, alert.dedup_key, now, cfg.dedup_minutes):
        log.info("alert [%s] held back: sent within %d min", alert.dedup_key, cfg.dedup_minutes)
        return AlertResult(skipped="duplicate")
    result = AlertResult()
    for name, channel_cfg in channels:
        try:
            SENDERS[name](ws, channel_cfg, alert, now)
        except Exception as exc:  # noqa: BLE001 - one broken channel must not stop the others
            message = redact(str(exc)) or type(exc).__name__
            log.warning("alert [%s] not delivered by %s: %s", alert.dedup_key, name, message)
            result.failed[name] = message
        else:
            result.sent.append(name)
    if not result.sent:
        # Nothing reached anyone: let the next occurrence try again instead of waiting a window.
        dedup.release(state, alert.dedup_key, now)
    return result
