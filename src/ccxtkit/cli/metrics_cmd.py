"""`vhc metrics serve | write`, and the export that runs after every command."""

from __future__ import annotations

from typing import Annotated

import typer

from ccxtkit.logs import log, redact

from .output import console, note, print_json, state

app = typer.Typer(help="Export Prometheus metrics derived from the ledger.", no_args_is_help=True)

#: Commands after which no export runs: they either export themselves or have no workspace.
_NO_EXPORT = {"metrics", "init", "demo"}


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


def _global_options(args: list[str]) -> tuple[str | None, str | None, str | None]:
    """--home, --config and the command name from the root's arguments (before the command)."""
    home = config = None
    i = 0
    while i < len(args):
        arg = args[i]
        for flag in ("--home", "--config"):
            if arg == flag and i + 1 < len(args):
                value, i = args[i + 1], i + 1
            elif arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
            else:
                continue
            if flag == "--home":
                home = value
            else:
                config = value
            break
        else:
            if not arg.startswith("-"):
                return home, config, arg
        i += 1
    return home, config, None


def after_command(args: list[str]) -> None:
    """Export metrics after a command, when the workspace asks for it; silent, never raises."""
    try:
        home, config, command = _global_options(args)
        if command is None or command in _NO_EXPORT or "--help" in args or "-h" in args:
            return
        from ccxtkit.errors import VhcError
        from ccxtkit.workspace import Workspace

        ws = Workspace.locate(home, config)
        if not ws.config_path.exists():
            return
        try:
            monitoring = ws.config.monitoring
        except VhcError:
            return  # a bad config: the command has already said so, once
        if not (monitoring.textfile_dir or monitoring.pushgateway_url):
            return
        from ccxtkit.metrics import export_metrics

        # Short wait: the command has finished with the ledger; a busy ledger means someone
        # else is writing, and their own export will follow.
        wait = min(float(ws.config.ledger.lock_wait_seconds), 5.0)
        for line in export_metrics(ws, wait_seconds=wait):
            log.debug("metrics after %s: %s", command, line)
    except Exception as exc:  # noqa: BLE001 - never change the outcome of the command
        log.warning("metrics export after the command failed: %s", redact(str(exc)))
