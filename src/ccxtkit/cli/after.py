"""What runs after every command: sealing finished log days, exporting metrics.

Kept apart from the command modules so that a fast path (see `app.main`) runs them without
importing typer. `loaded`: the run's own workspace when its config is already loaded (the
same home and config), so it is not read and validated again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ccxtkit.logs import log, redact

if TYPE_CHECKING:
    from ccxtkit.workspace import Workspace

#: Commands after which no export runs: they either export themselves or have no workspace.
_NO_EXPORT = {"metrics", "init", "demo"}

#: Commands that only look: they never write to the ledger, not even a log seal.
_CHECKING = {("doctor", None), ("ledger", "verify"), ("ledger", "digest"), ("ledger", "log"),
             ("ledger", "export"), ("config", "show"), ("config", "validate"),
             ("config", "diff"), ("kill-switch", "--status")}  # fmt: skip


def _workspace(home: str | None, config: str | None, loaded: Workspace | None) -> Workspace:
    """The workspace these options name: `loaded` when it is that one, else a fresh one."""
    from ccxtkit.workspace import Workspace

    ws = Workspace.locate(home, config)
    return loaded if loaded == ws and loaded is not None else ws


def _checks_only(args: list[str], command: str) -> bool:
    rest = args[args.index(command) + 1 :] if command in args else []
    if (command, None) in _CHECKING:
        return True
    return any((command, word) in _CHECKING for word in rest[:3])


def seal_logs(args: list[str], loaded: Workspace | None = None) -> None:
    """After a command: seal finished days of an immutable log in the ledger; never raises."""
    try:
        from ccxtkit.errors import VhcError

        home, config, command = global_options(args)
        if command in (None, "init", "demo") or "--help" in args or "-h" in args:
            return
        if _checks_only(args, command):
            return  # checking commands write nothing (the next writer seals)
        ws = _workspace(home, config, loaded)
        if not ws.config_path.exists():
            return
        try:
            immutable = ws.basics.log_immutable
        except VhcError:
            return  # a bad config: the command has already said so
        if immutable and ws.ledger_path.exists():
            from ccxtkit.log_chain import seal_days

            for day in seal_days(ws):
                log.info("log of %s sealed in the ledger", day)
    except Exception as exc:  # noqa: BLE001 - a busy ledger: the next command seals
        log.debug("log sealing skipped: %s", redact(str(exc)))


def global_options(args: list[str]) -> tuple[str | None, str | None, str | None]:
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


def export_metrics(args: list[str], loaded: Workspace | None = None) -> None:
    """Export metrics after a command, when the workspace asks for it; silent, never raises."""
    try:
        home, config, command = global_options(args)
        if command is None or command in _NO_EXPORT or "--help" in args or "-h" in args:
            return
        from ccxtkit.errors import VhcError

        ws = _workspace(home, config, loaded)
        if not ws.config_path.exists():
            return
        try:
            if not ws.basics.exports_metrics:
                return
        except VhcError:
            return  # a bad config: the command has already said so, once
        from ccxtkit.metrics import export_metrics as export

        # Short wait: the command has finished with the ledger; a busy ledger means someone
        # else is writing, and their own export will follow.
        wait = min(float(ws.basics.lock_wait_seconds), 5.0)
        for line in export(ws, wait_seconds=wait):
            log.debug("metrics after %s: %s", command, line)
    except Exception as exc:  # noqa: BLE001 - never change the outcome of the command
        log.warning("metrics export after the command failed: %s", redact(str(exc)))
