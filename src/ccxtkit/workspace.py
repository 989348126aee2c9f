"""The workspace: a folder holding config, ledger, reports, logs and local state."""

from __future__ import annotations

import os
import stat
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, UnsafePermissionsError, UsageError

if TYPE_CHECKING:
    from .config import TradingConfig
    from .config_memo import Basics, Memo
    from .ledger.store import Ledger
CONFIG_RELPATH = Path("config/trading_config.yaml")
#: The ledger `vhc init` makes (and `ledger.path`'s default).
DEFAULT_LEDGER = Path("ledger") / "vhc.duckdb"


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace, and its config loaded on first use."""

    home: Path
    config_path: Path

    @classmethod
    def locate(cls, home: str | None = None, config: str | None = None) -> Workspace:
        """--home, else $VHC_HOME, else the current directory; --config or $VHC_CONFIG."""
        root = Path(home or os.environ.get("VHC_HOME") or Path.cwd()).expanduser()
        config_arg = config or os.environ.get("VHC_CONFIG")
        config_path = Path(config_arg).expanduser() if config_arg else root / CONFIG_RELPATH
        return cls(home=root.resolve(), config_path=config_path.resolve())

    def require_config(self) -> None:
        """Refuse a folder that is not a workspace (exit 2), before anything is created in it."""
        if not self.config_path.is_file():
            raise ConfigError(
                f"no vhc workspace here: {self.config_path} does not exist; "
                "run `vhc init DIR` to create one, or point at yours with --home DIR or VHC_HOME"
            )

    @cached_property
    def config(self) -> TradingConfig:
        """The validated config (checked for unsafe permissions first)."""
        # pydantic is imported here, not at start-up, so `vhc --help` stays fast.
        from .config import load_config
        from .config_memo import basics_of, forget

        check_private(self.config_path)
        config = load_config(self.config_path)
        basics = basics_of(config)
        taken = self.__dict__.get("basics")
        if taken is not None and taken != basics:
            # Changed under this process, or the memo was edited. Never refuse here: this may be
            # a kill-switch activation that has yet to sweep. The config's settings win.
            from .logs import log

            forget(self)
            log.warning("the config memo disagreed with %s: deleted", self.config_path)
        self.__dict__["basics"] = basics
        _setup_logging(self, basics)
        return config

    @cached_property
    def basics(self) -> Basics:
        """The ledger, time zone and log settings of the config (`config_memo.Basics`)."""
        from .config_memo import basics_of

        return basics_of(self.config)

    def recall_memo(self) -> Memo | None:
        """The memo of this exact config file; its basics are then used without pydantic.

        For the every-minute check (`risk.autocheck`); None when there is no valid memo.
        """
        from .config_memo import recall

        check_private(self.config_path)
        memo = recall(self)
        if memo is not None and "basics" not in self.__dict__:
            self.__dict__["basics"] = memo.basics
            _setup_logging(self, memo.basics)
        return memo

    def path(self, relative: str | Path) -> Path:
        """A path from the config, resolved against the workspace."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else self.home / p

    @property
    def ledger_path(self) -> Path:
        """The ledger file (refused if other users can read it)."""
        from .ledger.outbox import watch

        ledger = self.path(self.basics.ledger_path)
        check_private(ledger)
        watch(ledger, self)  # a drain of its outbox alerts through this workspace's channels
        return ledger

    def open_ledger(self, read_only: bool = False) -> AbstractContextManager[Ledger]:
        """Open this workspace's ledger, waiting for its lock as the config says.

        `read_only` opens for checking: no migration, no outbox drain, nothing written.
        """
        from .ledger.store import open_ledger

        return open_ledger(self.ledger_path, self.basics.lock_wait_seconds, read_only=read_only)

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def state_dir(self) -> Path:
        """Small files that must never wait on the ledger lock (kill switch, paper exchange)."""
        return self.home / "state"

    def ensure_private_dir(self, path: Path) -> Path:
        """Create a directory readable only by its owner."""
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path


def _setup_logging(ws: Workspace, basics: Basics) -> None:
    from .logs import setup_logging

    setup_logging(
        ws.path(basics.log_file), basics.log_level, basics.log_retention_days, basics.log_immutable
    )


def check_private(path: Path) -> None:
    """Refuse a file that group or others can read or write: it holds config or money."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UnsafePermissionsError(
            f"{path} is readable by other users (mode {stat.filemode(mode)}); "
            f"run `chmod 600 {path}` and try again"
        )


def write_private(path: Path, text: str) -> None:
    """Write a file atomically with mode 0600 (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def output_path(path: Path) -> Path:
    """A file the user asked vhc to write: refused (exit 2, naming it) if it cannot be one."""
    if path.is_dir():
        raise UsageError(f"--output {path} is a directory; give a file name inside it")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"--output {path}: {parent} is not a directory")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--output {path}: cannot write into {parent} (permission denied)")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"--output {path}: the file is not writable (permission denied)")
    return path


def write_output(path: Path, text: str) -> None:
    """write_private for a path the user chose: any OS error is their path's problem (exit 2)."""
    output_path(path)
    try:
        write_private(path, text)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def require_new_or_empty(path: Path) -> None:
    """`vhc init` must never overwrite a workspace that already has a config."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} is a file, not a folder: choose another path for the workspace")
    if (path / CONFIG_RELPATH).exists():
        raise UsageError(f"{path} already holds a workspace ({CONFIG_RELPATH} exists)")


@dataclass(frozen=True)
class InitResult:
    """What `vhc init` created."""

    home: Path
    config_path: Path
    ledger_path: Path


def init_workspace(home: Path, config_text: str | None = None) -> InitResult:
    """Create a workspace that works offline: paper exchange, the seed's example limits.

    `config_text` replaces the example config (its paper balances are the ones recorded).
    """
    from importlib.resources import files

    home = home.expanduser().resolve()
    require_new_or_empty(home)
    try:
        for sub in ("config", "ledger", "reports", "logs", "state"):
            (home / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UsageError(f"cannot create the workspace {home}: {exc.strerror or exc}") from None
    example = files("ccxtkit").joinpath("data/trading_config.example.yaml").read_text("utf-8")
    write_private(home / CONFIG_RELPATH, example if config_text is None else config_text)
    ws = Workspace(home=home, config_path=home / CONFIG_RELPATH)
    opening = _paper_opening_rows(ws)
    with ws.open_ledger() as ledger, ledger.transaction():
        ledger.record_event("workspace.init", {"home": str(home)}, subject=str(home))
        from .policy.service import record_initial

        record_initial(ws, ledger)  # the first policy is on the record from the start
        if opening:
            ledger.append("transfers", opening)
    return InitResult(home, ws.config_path, ws.ledger_path)


def _paper_opening_rows(ws: Workspace) -> list[dict[str, object]]:
    """The paper accounts' starting balances as opening_balance transfers: a fresh workspace
    reconciles clean (`vhc reconcile --date today` right after init exits 0)."""
    from datetime import UTC, datetime

    from .exchanges.factory import open_exchange
    from .trading.accounts import is_paper

    rows: list[dict[str, object]] = []
    at = datetime.now(UTC).replace(tzinfo=None)
    for name, account in ws.config.enabled_exchanges().items():
        if not is_paper(name, account):
            continue
        # No policy check: the policy's first record is written by init itself, below.
        client = open_exchange(ws, name, check_policy=False)
        try:
            held = client.fetch_balance()
        finally:
            client.close()
        for asset in sorted(held):
            if held[asset].total > 0:
                rows.append(
                    {
                        "timestamp": at,
                        "exchange": name,
                        "kind": "opening_balance",
                        "asset": asset,
                        "amount": held[asset].total,
                        "transfer_id": f"opening-{name}-{asset}",
                        "status": "ok",
                        "source": "init",
                        "notes": "starting balance of the paper account, recorded by vhc init",
                    }
                )
    return rows
