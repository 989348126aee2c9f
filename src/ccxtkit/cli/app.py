"""The root `vhc` app: global options, command groups, and the one place errors are shown."""

from __future__ import annotations

import logging
import os
import sys
from importlib import import_module
from typing import Annotated

import typer

from ..errors import VhcError
from ..logs import redact
from .output import State, note

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
    "exchanges_cmd",
    "deploy_cmd",
]

#: Exit code for a bug in vhc itself (not in DESIGN.md's table: it is never expected).
INTERNAL_ERROR = 70

app = typer.Typer(
    name="vhc",
    help="vhc: trade through exchanges under hard risk limits, with a tamper-evident ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
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
) -> None:
    """vhc: trade through exchanges under hard risk limits, with a tamper-evident ledger."""
    ctx.obj = State(home=home, config=config, json=json_output, verbose=verbose)


for _name in COMMAND_MODULES:
    import_module(f"{__package__}.{_name}").register(app)


def _log_command(args: list[str], code: int) -> None:
    """One line per run in logs/trading.log (if this run opened a workspace), codes masked."""
    shown = list(args)
    for i, arg in enumerate(shown[:-1]):
        if arg == "--auth-code":
            shown[i + 1] = "***"
    logger = logging.getLogger("vhc")
    if any(getattr(h, "_vhc", False) for h in logger.handlers):
        logger.info("vhc %s -> exit %d", " ".join(shown), code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and turn every failure into one line + exit code."""
    args = sys.argv[1:] if argv is None else argv
    os.umask(0o077)  # everything vhc creates (ledger, state, reports, logs) is private
    verbose = "-v" in args or "--verbose" in args
    try:
        # Without standalone mode, `raise typer.Exit(n)` comes back as the return value.
        returned = app(args=args, prog_name="vhc", standalone_mode=False)
        code = returned if isinstance(returned, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        note("aborted: nothing was done")
        code = 2
    except typer.TyperException as exc:  # bad usage: one line, like every other error
        format_message = getattr(exc, "format_message", None)
        message = format_message() if format_message else str(exc)
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        note(f"error: {message}{where}")
        code = 2
    except VhcError as exc:
        if verbose:
            import traceback

            note(redact("".join(traceback.format_exception(exc))))
        note(f"error: {exc.message}")
        code = exc.exit_code
    except KeyboardInterrupt:
        note("interrupted")
        code = 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if verbose:
            import traceback

            note(redact("".join(traceback.format_exception(exc))))
        note(
            f"internal error: {type(exc).__name__}: {redact(str(exc))}; "
            "`vhc ledger verify` checks the ledger; rerun with -v and report it"
        )
        code = INTERNAL_ERROR
    _log_command(args, code)
    import_module(f"{__package__}.config_cmd").after_command(args)  # seal past log days
    if "ccxtkit.policy.service" in sys.modules:  # only when this run checked the policy
        for warning in sys.modules["ccxtkit.policy.service"].take_notes():
            note(warning)
    if "ccxtkit.secrets" in sys.modules:  # only when this run resolved keys
        for warning in sys.modules["ccxtkit.secrets"].take_warnings():
            note(warning)
    import_module(f"{__package__}.metrics_cmd").after_command(args)  # textfile/push; silent
    sys.exit(code)
