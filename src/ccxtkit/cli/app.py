"""The `vhc` entry point: global flags, the one place errors are shown, and fast paths.

The typer tree (`cli.root`: every command group) is imported only when a command needs it.
`vhc kill-switch --check` (cron, every minute), `vhc kill-switch --activate` (an
emergency), `vhc ledger verify` (nightly, over the whole file) and `vhc ledger import
--trades FILE` (a bulk load) are parsed here and call the same command functions without
typer, rich or the other command modules; anything else they might be given goes through
typer.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import sys
from importlib import import_module
from pathlib import Path
from typing import Any

from ..errors import VhcError
from ..logs import redact
from . import output
from .output import State, note

#: Exit code for a bug in vhc itself (not in DESIGN.md's table: it is never expected).
INTERNAL_ERROR = 70

#: Names served from `cli.root` on first use (importing it builds the whole typer tree).
_ROOT_NAMES = {"app", "root", "build_command", "version_text", "COMMAND_MODULES"}


def __getattr__(name: str) -> Any:
    """`app`, `build_command`, ... from `cli.root`, imported when first asked for."""
    if name not in _ROOT_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__package__}.root"), name)


def _log_command(args: list[str], code: int) -> None:
    """One line per run in logs/trading.log (if this run opened a workspace), codes masked."""
    shown = list(args)
    for i, arg in enumerate(shown[:-1]):
        if arg == "--auth-code":
            shown[i + 1] = "***"
    if shown[:1] == ["kite"] or "kite" in shown[:4]:  # `kite login REQUEST_TOKEN`
        for i, arg in enumerate(shown):
            if i and shown[i - 1] == "login" and not arg.startswith("-"):
                shown[i] = "***"
    logger = logging.getLogger("vhc")
    if any(getattr(h, "_vhc", False) for h in logger.handlers):
        logger.info("vhc %s -> exit %d", " ".join(shown), code)


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


# -- the fast paths: `kill-switch --check|--activate`, `ledger verify|import`, without typer --
def _options(words: list[str], names: set[str]) -> dict[str, str] | None:
    """`--name VALUE` / `--name=VALUE` pairs (each name at most once, each with a value), or
    None when `words` hold anything else (typer then parses them and explains any mistake)."""
    found: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, value = word.partition("=")
        if name not in names or name in found:
            return None
        if not eq:
            if i + 1 >= len(words) or words[i + 1].startswith("-"):
                return None
            value, i = words[i + 1], i + 1
        found[name] = value
        i += 1
    return found


def _fast_timeout(found: dict[str, str]) -> float | None:
    """`--timeout` as typer would take it (a float, at least 0.1), or None to let typer say no."""
    try:
        timeout = float(found.get("--timeout", "30.0"))
    except ValueError:
        return None
    return timeout if math.isfinite(timeout) and timeout >= 0.1 else None


def fast_path(args: list[str]) -> tuple[State, str, dict[str, Any]] | None:
    """(state, mode, its options) for `[globals] kill-switch --check|--activate ...` or
    `[globals] ledger verify|import ...` (see `_fast_ledger`), else None.

    Only the plain spellings are taken; `--help`, a typo, a repeated option or a bad value go
    through typer, so its messages and exit codes stay the only ones.
    """
    flags = {"--json": False, "-q": False, "--quiet": False, "-v": False, "--verbose": False}
    i = 0
    while i < len(args) and args[i] in flags:
        flags[args[i]] = True
        i += 1
    command = next((c for c in ("kill-switch", "ledger") if c in args[i:]), None)
    if command is None:
        return None
    cut = args.index(command, i)
    root = _options(args[i:cut], {"--home", "--config"})
    rest = args[cut + 1 :]
    if root is None:
        return None
    st = State(
        home=root.get("--home"),
        config=root.get("--config"),
        json=flags["--json"],
        verbose=flags["-v"] or flags["--verbose"],
        quiet=flags["-q"] or flags["--quiet"],
    )
    if command == "ledger":
        return _fast_ledger(st, rest)
    if "--check" in rest:
        found = _options([w for w in rest if w != "--check"], {"--timeout"})
        if found is None or rest.count("--check") != 1:
            return None
        timeout = _fast_timeout(found)
        return None if timeout is None else (st, "check", {"timeout": timeout})
    if "--activate" in rest:
        words = [w for w in rest if w not in ("--activate", "--flatten")]
        if rest.count("--activate") != 1 or rest.count("--flatten") > 1:
            return None
        found = _options(words, {"--reason", "--timeout"})
        if found is None or "--reason" not in found:
            return None
        timeout = _fast_timeout(found)
        if timeout is None:
            return None
        flatten = "--flatten" in rest
        return st, "activate", {"reason": found["--reason"], "flatten": flatten, "timeout": timeout}
    return None


def _fast_ledger(st: State, rest: list[str]) -> tuple[State, str, dict[str, Any]] | None:
    """`ledger verify [--digest FILE]` and `ledger import --trades FILE`, else None."""
    if rest[:1] == ["verify"]:
        found = _options(rest[1:], {"--digest"})
        if found is None or found.get("--digest") == "":
            return None
        digest = found.get("--digest")
        return st, "verify", {"digest": Path(digest) if digest is not None else None}
    if rest[:1] == ["import"]:
        found = _options(rest[1:], {"--trades"})
        if found is None or not found.get("--trades"):
            return None
        return st, "import", {"trades": Path(found["--trades"])}
    return None


def _call(args: list[str]) -> int:
    """Run the command (a fast path, else typer); its exit code. Errors are raised."""
    # vhc uses no pydantic plugin: skip pydantic's scan of every installed package's entry
    # points when the config model is built (10-25 ms of every command that reads the config).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    fast = fast_path(args)
    if fast is not None:
        st, mode, options = fast
        output.remember_state(st)
        if mode in ("verify", "import"):
            from .ledger_run import run_import_trades, run_verify

            if mode == "verify":
                run_verify(st, options["digest"])
            else:
                run_import_trades(st, options["trades"])
            return 0
        from .killswitch_run import run_activate, run_check

        if mode == "check":
            run_check(st, options["timeout"])
        else:
            run_activate(st, options["reason"], options["flatten"], options["timeout"])
        return 0
    from .root import build_command

    # Without standalone mode, `raise typer.Exit(n)` comes back as the return value.
    returned = build_command().main(args=args, prog_name="vhc", standalone_mode=False)
    return returned if isinstance(returned, int) else 0


def _run(args: list[str], verbose: bool) -> tuple[int, str | None, str, dict[str, object] | None]:
    """Run the app: (exit code, error message if it failed, error kind, extra error fields)."""
    try:
        code = _call(args)
        return code, None if code == 0 else output.last_note(), "exit", None
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
        typer_outcome = _typer_outcome(exc)
        if typer_outcome is not None:
            return typer_outcome
        if verbose:
            import traceback

            note(redact("".join(traceback.format_exception(exc))))
        message = (
            f"internal error: {type(exc).__name__}: {redact(str(exc))}; "
            "`vhc ledger verify` checks the ledger; rerun with -v and report it"
        )
        note(message)
        return INTERNAL_ERROR, message, "internal", None


def _typer_outcome(
    exc: Exception,
) -> tuple[int, str | None, str, dict[str, object] | None] | None:
    """What a typer/click exception means (None for any other exception)."""
    if "typer" not in sys.modules:
        return None  # a fast path ran: typer cannot have raised it
    import typer
    from typer._click.exceptions import NoArgsIsHelpError

    if isinstance(exc, typer.Exit):
        code = exc.exit_code
        return code, None if code == 0 else output.last_note(), "exit", None
    if isinstance(exc, NoArgsIsHelpError):  # `vhc ledger` alone: its help, exit 0
        typer.echo(exc.ctx.get_help())
        return 0, None, "exit", None
    if isinstance(exc, typer.Abort):
        message = "aborted: nothing was done"
        note(message)
        return 2, message, "aborted", None
    if isinstance(exc, typer.TyperException):  # bad usage: one line, like every other error
        format_message = getattr(exc, "format_message", None)
        text = format_message() if format_message else str(exc)
        ctx = getattr(exc, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = f"{text}{where}"
        note(f"error: {message}")
        return 2, message, "usage", None
    return None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and turn every failure into one line + exit code."""
    args = hoist_global_flags(sys.argv[1:] if argv is None else argv)
    os.umask(0o077)  # everything vhc creates (ledger, state, reports, logs) is private
    verbose = "-v" in args or "--verbose" in args
    as_json = "--json" in args
    quiet = "-q" in args or "--quiet" in args
    output.take_json()  # nothing held over from an earlier run in this process
    output.forget_notes()
    output.forget_state()
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
            output.print_line(output.dumps(output.error_document(code, kind, message, extra)))
        else:
            output.flush_json()
    _log_command(args, code)
    from . import after

    ws = output.fast_workspace()  # a fast path's workspace: its config is loaded already
    after.seal_logs(args, ws)  # seal past log days
    if "ccxtkit.policy.service" in sys.modules:  # only when this run checked the policy
        for warning in sys.modules["ccxtkit.policy.service"].take_notes():
            note(warning)
    if "ccxtkit.secrets" in sys.modules:  # only when this run resolved keys
        for warning in sys.modules["ccxtkit.secrets"].take_warnings():
            note(warning)
    after.export_metrics(args, ws)  # textfile/push; silent
    sys.exit(code)


def run() -> None:
    """The `vhc` console script: `main`, then leave without the interpreter's teardown.

    Freeing every module's objects at exit takes 0.2 s once ccxt is loaded (measured: an
    emergency's whole process, a cron job's, waits for it) and none of it matters: the exit
    handlers run (log handlers flushed and closed, a kept ledger released), the standard
    streams are flushed, and the process exits with main's code. Threads still running are
    daemons (an exchange call the kill switch gave up on); vhc leaves no other kind behind.
    """
    import atexit

    try:
        main()
        status: int | str | None = 0
    except SystemExit as exc:
        status = exc.code
    if isinstance(status, str):
        print(status, file=sys.stderr)
        status = 1
    atexit._run_exitfuncs()  # what the interpreter runs first at exit
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`vhc ... | head`): nothing to add
            pass
    os._exit(status or 0)
