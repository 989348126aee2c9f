"""`vhc doctor`: one pass over everything that must be right before money moves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from .errors import VhcError
from .workspace import Workspace, check_private


@dataclass(frozen=True)
class Check:
    """One check: ok, warn (needs a look) or fail (needs a fix), and why."""

    area: str
    status: str  # ok | warn | fail
    detail: str
    exit_code: int = 0


def _guard(area: str, probe: Callable[[], list[Check]]) -> list[Check]:
    try:
        return probe()
    except VhcError as exc:
        return [Check(area, "fail", exc.message, exc.exit_code)]


def _config(ws: Workspace) -> list[Check]:
    check_private(ws.config_path)
    names = ", ".join(ws.config.enabled_exchanges()) or "none"
    return [Check("config", "ok", f"{ws.config_path} valid; enabled accounts: {names}")]


def _files(ws: Workspace) -> list[Check]:
    for path in (ws.config_path, ws.ledger_path):
        check_private(path)
    return [Check("permissions", "ok", "config and ledger are readable by their owner only")]


def _ledger(ws: Workspace) -> list[Check]:
    from .ledger.verify import verify_chain

    with ws.open_ledger() as ledger:
        result = verify_chain(ledger)
    if result.problem:
        return [Check("ledger", "fail", result.problem.describe(), 6)]
    return [Check("ledger", "ok", f"{result.rows} rows, head seq {result.head.seq}, chain intact")]


def _secrets(ws: Workspace, now: datetime) -> list[Check]:
    from .secrets.check import check_secrets

    report = check_secrets(ws, now)
    out = []
    for row in report.rows:
        if row.problem:
            out.append(Check("secrets", "fail", f"{row.name}: {row.problem}", row.exit_code or 2))
        for warning in row.warnings:
            out.append(Check("secrets", "warn", f"{row.name}: {warning}"))
        if not row.problem and not row.warnings:
            age = f", {row.age_days} days old" if row.age_days is not None else ""
            out.append(Check("secrets", "ok", f"{row.name}: {row.status} ({row.backend}{age})"))
    out.extend(Check("secrets", "warn", note) for note in report.notes)
    return out


def _exchanges(ws: Workspace) -> list[Check]:
    from .trading.accounts import connect

    out = []
    for name in ws.config.enabled_exchanges():
        try:
            client = connect(ws, name)
            try:
                assets = [a for a, b in client.fetch_balance().items() if b.total]
            finally:
                client.close()
            out.append(
                Check("exchanges", "ok", f"{name}: reachable, balances of {len(assets)} assets")
            )
        except VhcError as exc:
            out.append(Check("exchanges", "fail", f"{name}: {exc.message}", exc.exit_code))
    return out


def _guarantees(ws: Workspace) -> list[Check]:
    """Per enabled account: can vhc prove a lost order absent there (see `vhc exchanges`)?"""
    from .exchanges.accounts_report import live_trading
    from .exchanges.capabilities import for_exchange

    out = []
    for name, cfg in ws.config.enabled_exchanges().items():
        caps = for_exchange(cfg.id or name)
        if caps is None:
            continue  # the exchanges check reports an unknown id
        detail = f"{name}: order lookup by client id {caps.order_lookup}"
        if caps.order_lookup == "proven":
            out.append(Check("guarantees", "ok", detail))
        else:
            out.append(
                Check("guarantees", "warn", f"{detail}; live trading {live_trading(name, cfg)}")
            )
    return out


def _kill_switch(ws: Workspace) -> list[Check]:
    from .risk.killswitch import read_state

    state = read_state(ws)
    if state.active:
        return [Check("kill switch", "warn", f"ACTIVE since {state.since}: {state.reason}")]
    return [Check("kill switch", "ok", "inactive: trading allowed")]


def run_doctor(ws: Workspace, now: datetime) -> list[Check]:
    """Config, file modes, ledger chain, secrets and their age, exchanges, kill switch."""
    checks = _guard("config", lambda: _config(ws))
    if checks[0].status == "fail":
        return checks  # nothing else can be read without a valid config
    checks += _guard("permissions", lambda: _files(ws))
    checks += _guard("ledger", lambda: _ledger(ws))
    checks += _guard("secrets", lambda: _secrets(ws, now))
    checks += _guard("exchanges", lambda: _exchanges(ws))
    checks += _guard("guarantees", lambda: _guarantees(ws))
    checks += _guard("kill switch", lambda: _kill_switch(ws))
    return checks


def exit_code(checks: list[Check]) -> int:
    """The first failure's code; 1 when there are only warnings; 0 when all is well."""
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        return failed[0].exit_code or 2
    return 1 if any(c.status == "warn" for c in checks) else 0
