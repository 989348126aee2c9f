"""The few settings every command needs, remembered from the config file's last validation.

`vhc kill-switch --check` runs every minute; importing pydantic and building the config
model cost about 80 ms of its 300 ms budget. The check remembers what it needs of a config
that passed validation (the ledger, the time zone, logging, whether metrics are exported,
the hash of its policy) in `state/config-memo.json`, keyed by the config file's exact bytes,
its path and this vhc's code, so any edit or upgrade takes the full path again.

The memo holds no limit. The triggers' limits are read from the policy on record in the
ledger (`policy.service.last_recorded`: its row hash, document hash and seal checked), and
only when the memo's policy hash is that record's hash; otherwise the full path settles or
refuses the config as on every command. An edited memo can therefore at worst make the
check evaluate the policy on record, which is the approved one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:
    from .config import TradingConfig
    from .workspace import Workspace

MEMO_RELPATH = Path("state") / "config-memo.json"
FORMAT = 1


@dataclass(frozen=True)
class Basics:
    """Settings read before anything else: where the ledger is, the day's zone, the log."""

    ledger_path: str  # as the config says: relative to the workspace, or absolute
    lock_wait_seconds: Decimal
    timezone: str | None
    log_file: str
    log_level: str
    log_retention_days: int
    log_immutable: bool
    exports_metrics: bool  # monitoring.textfile_dir or pushgateway_url is set


def basics_of(config: TradingConfig) -> Basics:
    """The basics of a validated config."""
    monitoring = config.monitoring
    return Basics(
        ledger_path=config.ledger.path,
        lock_wait_seconds=config.ledger.lock_wait_seconds,
        timezone=config.timezone,
        log_file=config.logging.file,
        log_level=config.logging.level,
        log_retention_days=config.logging.retention_days,
        log_immutable=config.logging.immutable,
        exports_metrics=bool(monitoring.textfile_dir or monitoring.pushgateway_url),
    )


@dataclass(frozen=True)
class Memo:
    """A config file's basics and policy hash, valid for exactly the key it was made under."""

    key: str
    basics: Basics
    policy_hash: str


def _code_stamp() -> str:
    # The code that validates (config.py) and reads the memo (this file): a changed default in
    # a checkout whose version number did not move must not be served from an old memo.
    here = Path(__file__)
    parts = [__version__, str(FORMAT)]
    for source in (here.with_name("config.py"), here):
        st = source.stat()
        parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    return ";".join(parts)


def memo_key(config_path: Path, text: bytes) -> str:
    """What a memo is valid for: this file, these exact bytes, this vhc."""
    stamp = f"{config_path}\0{_code_stamp()}\0".encode()
    return hashlib.sha256(stamp + text).hexdigest()


def memo_path(ws: Workspace) -> Path:
    """Where the workspace keeps its memo."""
    return ws.home / MEMO_RELPATH


def recall(ws: Workspace) -> Memo | None:
    """The memo of the config file as it is now, or None (absent, stale, unreadable, unsafe)."""
    from .workspace import DEFAULT_LEDGER, check_private

    path = memo_path(ws)
    try:
        check_private(path)
        text = ws.config_path.read_bytes()
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # the full path names any problem with the config file itself
    if not isinstance(raw, dict) or raw.get("key") != memo_key(ws.config_path, text):
        return None
    try:
        fields = dict(raw["basics"])
        fields["lock_wait_seconds"] = Decimal(str(fields["lock_wait_seconds"]))
        memo = Memo(str(raw["key"]), Basics(**fields), str(raw["policy_hash"]))
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return None
    # Only for the workspace's own ledger: an edited memo must not point the check elsewhere
    # (trading on another ledger is refused by the policy gate; see policy.service).
    if ws.path(memo.basics.ledger_path).resolve() != (ws.home / DEFAULT_LEDGER).resolve():
        return None
    return memo


def remember(ws: Workspace) -> None:
    """After the full path validated the config: keep its memo (never raises)."""
    from .config import parse_config
    from .errors import VhcError
    from .policy.document import policy_document, policy_hash
    from .workspace import write_private

    try:
        text = ws.config_path.read_bytes()
        # Validated again from the very bytes the key covers (a few ms, once per edit): the
        # file may have changed since `ws.config` was read, and the memo must be this text's.
        config = parse_config(text.decode("utf-8"), str(ws.config_path))
        basics = basics_of(config)
        doc: dict[str, Any] = {
            "key": memo_key(ws.config_path, text),
            "basics": {**asdict(basics), "lock_wait_seconds": str(basics.lock_wait_seconds)},
            "policy_hash": policy_hash(policy_document(config)),
        }
        new = json.dumps(doc, sort_keys=True, indent=1) + "\n"
        path = memo_path(ws)
        try:
            if path.read_text(encoding="utf-8") == new:
                return
        except OSError:
            pass
        ws.ensure_private_dir(path.parent)
        write_private(path, new)
    except (OSError, UnicodeDecodeError, VhcError):
        return  # a read-only or full disk, or a file edited meanwhile: the next check tries again


def forget(ws: Workspace) -> None:
    """Drop the memo (its config changed under this process)."""
    try:
        os.unlink(memo_path(ws))
    except OSError:
        pass
