"""What a workspace needs scheduled, rendered from its config (`vhc deploy schedule | grafana`).

`reconciliation.frequency` decides the reconcile job (daily at 00:30 for yesterday, hourly at
minute 5 for today, or none for `manual`); the kill switch's triggers run every minute, the
ledger is verified daily, metrics are written every 5 minutes when they are exported, and the
signal queue gets a pass every minute when signal sources are configured.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from .workspace import Workspace

#: How old the last reconcile may be before doctor warns (the period plus a margin).
STALE_AFTER = {"daily": timedelta(hours=26), "hourly": timedelta(hours=2)}


@dataclass(frozen=True)
class Job:
    """One scheduled command: cron fields, systemd OnCalendar, what it does."""

    name: str
    cron: str
    calendar: str
    command: str
    why: str
    success_exit: str = ""  # extra exit codes that still mean "the run worked"


def _vhc() -> str:
    exe = Path(sys.argv[0]) if sys.argv and sys.argv[0].endswith("vhc") else None
    return str(exe.resolve()) if exe and exe.exists() else "vhc"


def jobs(ws: Workspace) -> list[Job]:
    """The jobs this workspace needs, from its config."""
    cfg = ws.config
    out: list[Job] = []
    frequency = cfg.reconciliation.frequency
    if frequency == "daily":
        out.append(
            Job("vhc-reconcile", "30 0 * * *", "*-*-* 00:30:00 UTC",
                "reconcile --date yesterday", "reconciliation.frequency: daily", "1")
        )  # fmt: skip
    elif frequency == "hourly":
        out.append(
            Job("vhc-reconcile", "5 * * * *", "*-*-* *:05:00 UTC",
                "reconcile --date today", "reconciliation.frequency: hourly", "1")
        )  # fmt: skip
    if cfg.risk.kill_switch_enabled:
        out.append(
            Job("vhc-killswitch-check", "* * * * *", "*-*-* *:*:00 UTC",
                "kill-switch --check", "risk.kill_switch_enabled: the automatic triggers")
        )  # fmt: skip
    if cfg.signals.sources:
        out.append(
            Job("vhc-signals-work", "* * * * *", "*-*-* *:*:00 UTC", "signals work --once",
                "signals.sources: the signal queue (beside `vhc serve`'s workers, or instead of "
                "them with --workers 0)", "1")
        )  # fmt: skip
    out.append(
        Job("vhc-verify", "15 1 * * *", "*-*-* 01:15:00 UTC", "ledger verify",
            "the ledger's hash chain, daily")
    )  # fmt: skip
    if cfg.monitoring.textfile_dir or cfg.monitoring.pushgateway_url:
        out.append(
            Job("vhc-metrics-write", "*/5 * * * *", "*-*-* *:0/5:00 UTC", "metrics write",
                "monitoring.textfile_dir / pushgateway_url: time-based values stay fresh")
        )  # fmt: skip
    return out


def crontab(ws: Workspace) -> str:
    """The crontab lines (with VHC_HOME and the config path) this workspace needs."""
    vhc = _vhc()
    lines = [
        f"# vhc schedule for {ws.home} (rendered by `vhc deploy schedule`; times are UTC)",
        "CRON_TZ=UTC",
        f"VHC_HOME={ws.home}",
        f"VHC_CONFIG={ws.config_path}",
    ]
    if ws.config.reconciliation.frequency == "manual":
        lines.append("# reconciliation.frequency: manual -> no reconcile is scheduled")
    for job in jobs(ws):
        lines.append(f"# {job.name}: {job.why}")
        lines.append(f"{job.cron:<12} {vhc} {job.command}")
    return "\n".join(lines) + "\n"


def systemd_units(ws: Workspace) -> dict[str, str]:
    """A .service and a .timer per job, plus the exporter's service."""
    vhc = _vhc()
    env = f"Environment=VHC_HOME={ws.home}\nEnvironment=VHC_CONFIG={ws.config_path}\n"
    units: dict[str, str] = {}
    for job in jobs(ws):
        ok = f"SuccessExitStatus={job.success_exit}\n" if job.success_exit else ""
        units[f"{job.name}.service"] = (
            f"[Unit]\nDescription=vhc {job.command} ({job.why})\n\n[Service]\nType=oneshot\n"
            f"{env}ExecStart={vhc} {job.command}\n{ok}UMask=0077\n"
        )
        units[f"{job.name}.timer"] = (
            f"[Unit]\nDescription=Run {job.name}\n\n[Timer]\nOnCalendar={job.calendar}\n"
            "Persistent=true\n\n[Install]\nWantedBy=timers.target\n"
        )
    port = ws.config.monitoring.prometheus_port
    units["vhc-metrics.service"] = (
        "[Unit]\nDescription=vhc Prometheus exporter (monitoring.prometheus_port)\n\n"
        f"[Service]\nType=simple\n{env}ExecStart={vhc} metrics serve --port {port}\n"
        "Restart=on-failure\nUMask=0077\n\n[Install]\nWantedBy=multi-user.target\n"
    )
    return units


def grafana_files(ws: Workspace, dashboards_dir: Path) -> dict[str, str]:
    """Grafana's server port (`monitoring.grafana_port`), data source and dashboard provider."""
    mon = ws.config.monitoring
    return {
        "grafana.ini": f"[server]\n# monitoring.grafana_port\nhttp_port = {mon.grafana_port}\n",
        "provisioning/datasources/vhc.yaml": (
            "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    type: prometheus\n"
            "    access: proxy\n    url: http://127.0.0.1:9090\n    isDefault: true\n"
        ),
        "provisioning/dashboards/vhc.yaml": (
            "apiVersion: 1\nproviders:\n  - name: vhc\n    type: file\n    options:\n"
            f"      path: {shlex.quote(str(dashboards_dir))}\n"
        ),
    }
