"""`vhc metrics serve | write`, and the export that runs after every command."""

from __future__ import annotations

from typing import Annotated

import typer

from .output import console, note, print_json, state

app = typer.Typer(help="Export Prometheus metrics derived from the ledger.", no_args_is_help=True)


@app.command("write")
def write(ctx: typer.Context) -> None:
    """Write the textfile (monitoring.textfile_dir) and/or push (monitoring.pushgateway_url) once.

    Example (cron, every 5 minutes): */5 * * * * vhc --home /srv/vhc metrics write
    """
    from ccxtkit.metrics import export_metrics

    notes = export_metrics(state(ctx).workspace)
    if state(ctx).json:
        print_json({"notes": notes})
    else:
        for line in notes:
            console.print(line, markup=False, highlight=False)


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the metrics in Prometheus' text exposition format on stdout (nothing is written).

    Example: vhc metrics show | grep vhc_kill_switch_active
    """
    from prometheus_client import generate_latest

    from ccxtkit.metrics import collect

    ws = state(ctx).workspace
    ws.config  # noqa: B018 - a clear config error first
    text = generate_latest(collect(ws)).decode()
    if state(ctx).json:
        from prometheus_client.parser import text_string_to_metric_families

        print_json(
            [
                {"name": s.name, "labels": s.labels, "value": s.value}
                for family in text_string_to_metric_families(text)
                for s in family.samples
            ]
        )
        return
    typer.echo(text, nl=False)


@app.command("serve")
def serve(
    ctx: typer.Context,
    port: Annotated[
        int | None,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="Port to listen on (default monitoring.prometheus_port).",
        ),
    ] = None,
    addr: Annotated[
        str, typer.Option("--addr", help="Address to bind (0.0.0.0 to accept remote scrapes).")
    ] = "127.0.0.1",
    probe: Annotated[
        bool,
        typer.Option(
            "--probe/--no-probe",
            help="Ping each exchange every monitoring.healthcheck_interval seconds.",
        ),
    ] = True,
) -> None:
    """Serve the metrics over HTTP for Prometheus, recomputed on each scrape; Ctrl-C stops.

    A health probe pings every enabled exchange each `monitoring.healthcheck_interval`
    seconds, so `vhc_exchange_up` is never older than that.
    Example: vhc --home /srv/vhc metrics serve --port 9477
    """
    from ccxtkit.metrics import serve as start
    from ccxtkit.metrics import wait_forever
    from ccxtkit.metrics.health import HealthProbe

    ws = state(ctx).workspace
    monitoring = ws.config.monitoring  # fail now with a clear config error, not on a scrape
    chosen = port or monitoring.prometheus_port
    server = start(ws, chosen, addr)
    prober = HealthProbe(ws, monitoring.healthcheck_interval) if probe else None
    if prober is not None:
        prober.start()
    every = f", exchanges probed every {monitoring.healthcheck_interval} s" if probe else ""
    note(f"serving metrics on http://{addr}:{chosen}/metrics{every} (Ctrl-C stops)")
    try:
        wait_forever()
    finally:
        if prober is not None:
            prober.stop()
        server.shutdown()


def register(root: typer.Typer) -> None:
    """Mount `vhc metrics` on the root app."""
    root.add_typer(app, name="metrics")
