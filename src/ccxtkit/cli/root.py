"""The typer tree of `vhc`: the root app, its global options and every command group.

Imported only when a command needs typer (`app.main`'s fast paths do not): building it imports
every command module, which is most of `vhc --help`'s time.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperArgument

from . import output
from .output import State

#: Command modules, each with `register(root)`. Order is the order of `vhc --help`.
COMMAND_MODULES = [
    "init_cmd",
    "demo_cmd",
    "doctor_cmd",
    "config_cmd",
    "ledger_cmd",
    "trade_cmd",
    "killswitch_cmd",
    "totp_cmd",
    "metrics_cmd",
    "secrets_cmd",
    "tax_cmd",
    "reconcile_cmd",
    "withdraw_cmd",
    "signals_cmd",
    "exchanges_cmd",
    "deploy_cmd",
    "serve_cmd",
    "kite_cmd",
]


def _done(*_args: object, **_kwargs: object) -> None:
    """The command succeeded: print its held --json document (unless main() prints it)."""
    if not output.run_by_main:
        output.flush_json()


app = typer.Typer(
    result_callback=_done,
    name="vhc",
    help="vhc: trade through exchanges under hard risk limits, with a tamper-evident ledger.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def version_text() -> str:
    """`vhc X.Y.Z` from the installed distribution (the package's own version otherwise)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"vhc {version('vhc')}"
    except PackageNotFoundError:
        from .. import __version__

        return f"vhc {__version__}"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit(0)


@app.callback(invoke_without_command=False)
def root(
    ctx: typer.Context,
    home: Annotated[
        str | None, typer.Option("--home", help="Workspace folder (default $VHC_HOME or .).")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option("--config", help="Config file (default HOME/config/trading_config.yaml)."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Show tracebacks and debug notes.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Print nothing on success (for cron).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version."
        ),
    ] = False,
) -> None:
    """vhc: trade through exchanges under hard risk limits, with a tamper-evident ledger.

    --json, -q and -v also work after the command. Formats: docs/ in the source tree.
    """
    ctx.obj = State(home=home, config=config, json=json_output, verbose=verbose, quiet=quiet)


for _name in COMMAND_MODULES:
    import_module(f"{__package__}.{_name}").register(app)


def _first_sentence(text: str) -> str:
    """A command's summary for group help: its first paragraph, whole (never cut with ...)."""
    para = " ".join(text.strip().split("\n\n")[0].split())
    return para


def _constant(text: str) -> Callable[[], str]:
    return lambda: text


def _tidy(cmd: Any) -> None:
    """Help for people: metavars in capitals, whole summaries, each default said once."""
    for param in cmd.params:
        if param.metavar is None and not getattr(param, "is_flag", False):
            param.metavar = (param.name or "value").upper()
        if isinstance(param, TyperArgument):  # `SYMBOL`, not `{symbol}` and `<str>`
            shown = str(param.metavar) if param.required else f"[{param.metavar}]"
            arg: Any = param
            arg._usage_display_name = _constant(shown)
            arg.display_type_rich = lambda ctx: ""
        helptext = getattr(param, "help", None) or ""
        if "default" in helptext.lower():
            param.show_default = False  # the help sentence says it already
    if cmd.help and not cmd.short_help:
        cmd.short_help = _first_sentence(cmd.help)
    for sub in getattr(cmd, "commands", {}).values():
        _tidy(sub)


def build_command() -> Any:
    """The click command tree of `vhc`, tidied for help."""
    cmd = typer.main.get_command(app)
    _tidy(cmd)
    return cmd
