"""The root `vhc` app: global options, command groups, and the one place errors are shown."""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from collections.abc import Callable
from importlib import import_module
from typing import Annotated, Any

import typer
import typer.main
from typer._click.exceptions import NoArgsIsHelpError
from typer.core import TyperArgument

from ..errors import VhcError
from ..logs import redact
from . import output
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


def _log_command(args: list[str], code: int) -> None:
    """One line per run in logs/trading.log (if this run opened a workspace), codes masked."""
    shown = list(args)
    for i, arg in enumerate(shown[:-1]):
        if arg == "--auth-code":
            shown[i + 1] = "***"
    logger = logging.getLogger("vhc")
    if any(getattr(h, "_vhc", False) for h in logger.handlers):
        logger.info("vhc %s -> exit %d", " ".join(shown), code)


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


#: Global flags that may also follow the command (`vhc balances --json`).
GLOBAL_FLAGS = {"--json", "-q", "--quiet", "-v", "--verbose"}


def hoist_global_flags(args: list[str]) -> list[str]:
    """Move --json, -q and -v to the front wherever they appear (not after a `--`)."""
    if "--" in args:
        cut = args.index("--")
        head, tail = args[:cut], args[cut:]
    else:
        head, tail = args, []
    flags = [a for a in head if a in GLOBAL_FLAGS]
    return [*dict.fromkeys(flags), *(a for a in head if a not in GLOBAL_FLAGS), *tail]


def error_kind(exc: BaseException) -> str:
    """A stable machine name for an error class: RiskLimitError -> risk_limit."""
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() or "error"


def _run(args: list[str], verbose: bool) -> tuple[int, str | None, str, dict[str, object] | None]:
    """Run the app: (exit code, error message if it failed, error kind, extra error fields)."""
    try:
        # Without standalone mode, `raise typer.Exit(n)` comes back as the return value.
        returned = build_command().main(args=args, prog_name="vhc", standalone_mode=False)
        code = returned if isinstance(returned, int) else 0
        return code, None if code == 0 else output.last_note(), "exit", None
    except typer.Exit as exc:
        return exc.exit_code, None if exc.exit_code == 0 else output.last_note(), "exit", None
    except NoArgsIsHelpError as exc:  # `vhc ledger` alone: its help, exit 0
        typer.echo(exc.ctx.get_help())
        return 0, None, "exit", None
    except typer.Abort:
        message = "aborted: nothing was done"
        note(message)
        return 2, message, "aborted", None
    except typer.TyperException as exc:  # bad usage: one line, like every other error
        format_message = getattr(exc, "format_message", None)
        text = format_message() if format_message else str(exc)
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = f"{text}{where}"
        note(f"error: {message}")
        return 2, message, "usage", None
    except VhcError as exc:
        if verbose:
            import traceback

            note(redact("".join(traceback.format_exception(exc))))
        note(f"error: {exc.message}")
        extra = getattr(exc, "details", None)
        return exc.exit_code, exc.message, error_kind(exc), extra
    except KeyboardInterrupt:
        note("interrupted")
        return 130, "interrupted", "interrupted", None
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if verbose:
            import traceback

            note(redact("".join(traceback.format_exception(exc))))
        message = (
            f"internal error: {type(exc).__name__}: {redact(str(exc))}; "
            "`vhc ledger verify` checks the ledger; rerun with -v and report it"
        )
        note(message)
        return INTERNAL_ERROR, message, "internal", None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and turn every failure into one line + exit code."""
    args = hoist_global_flags(sys.argv[1:] if argv is None else argv)
    os.umask(0o077)  # everything vhc creates (ledger, state, reports, logs) is private
    verbose = "-v" in args or "--verbose" in args
    as_json = "--json" in args
    quiet = "-q" in args or "--quiet" in args
    output.take_json()  # nothing held over from an earlier run in this process
    output.forget_notes()
    output.run_by_main = True
    stdout = sys.stdout
    held = io.StringIO()
    if quiet:
        sys.stdout = held  # printed only if the command fails: cron mails only problems
    try:
        code, message, kind, extra = _run(args, verbose)
    finally:
        sys.stdout = stdout
        output.run_by_main = False
    if quiet and code != 0:
        stdout.write(held.getvalue())
        stdout.flush()
    if as_json:
        # A command that exits non-zero on purpose after printing its document (doctor,
        # reconcile with findings) has said everything in it: no error object then.
        if message is not None and not (kind == "exit" and output.has_json()):
            typer.echo(output.dumps(output.error_document(code, kind, message, extra)))
        else:
            output.flush_json()
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
