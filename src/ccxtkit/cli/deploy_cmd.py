"""`vhc deploy schedule | grafana`: what to install, rendered from this workspace's config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .output import print_json, state

app = typer.Typer(help="Render the schedule and monitoring files this workspace needs.",
                  no_args_is_help=True)  # fmt: skip


@app.command("schedule")
def schedule(
    ctx: typer.Context,
    systemd: Annotated[
        bool, typer.Option("--systemd", help="Print systemd .service/.timer units instead.")
    ] = False,
) -> None:
    """Print the crontab (or systemd timers) this workspace needs.

    reconciliation.frequency picks the reconcile job (daily, hourly, or none for manual).
    Example: vhc deploy schedule | crontab -
    """
    from ccxtkit.deploy import crontab, jobs, systemd_units

    ws = state(ctx).workspace
    if state(ctx).json:
        print_json(
            {
                "frequency": ws.config.reconciliation.frequency,
                "jobs": [{"name": j.name, "cron": j.cron, "calendar": j.calendar,
                          "command": j.command, "why": j.why} for j in jobs(ws)],
                "crontab": crontab(ws),
                "systemd": systemd_units(ws),
            }
        )  # fmt: skip
        return
    if not systemd:
        typer.echo(crontab(ws), nl=False)
        return
    for name, text in systemd_units(ws).items():
        typer.echo(f"# ---- {name} ----\n{text}")


@app.command("grafana")
def grafana(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the files under this folder.")
    ] = None,
    dashboards: Annotated[
        Path, typer.Option("--dashboards", help="Where the shipped dashboards (*.json) are.")
    ] = Path("/opt/vhc/deploy/grafana"),
) -> None:
    """Grafana's provisioning: http_port from monitoring.grafana_port, data source, dashboards.

    Example: vhc deploy grafana --output /etc/grafana
    """
    from ccxtkit.deploy import grafana_files
    from ccxtkit.workspace import write_private

    files = grafana_files(state(ctx).workspace, dashboards)
    if output is None:
        for name, text in files.items():
            typer.echo(f"# ---- {name} ----\n{text}")
        return
    for name, text in files.items():
        write_private(output / name, text)
    if state(ctx).json:
        print_json({"written": sorted(str(output / n) for n in files)})
    else:
        typer.echo(f"wrote {len(files)} files under {output}")


def register(root: typer.Typer) -> None:
    """Mount the `deploy` group."""
    root.add_typer(app, name="deploy")
