"""`vhc doctor`: one pass over everything that must be right before money moves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .errors import VhcError
from .workspace import Workspace, check_private


@dataclass(frozen=True)
class Check:
    """One check: ok, warn (needs a look) or fail (needs a fix), and why."""

    area: str
    status: str  # ok | info (cannot be checked) | warn | fail
    detail: str
    exit_code: int = 0


def _guard(area: str, probe: Callable[[], list[Check]]) -> list[Check]:
    try:
        return probe()
    except VhcError as exc:
        return [Check(area, "fail", exc.message, exc.exit_code)]


def _config(ws: Workspace) -> list[Check]:
    check_private(ws.config_path)
    if not ws.config.enabled_exchanges():
        # An empty (or all-disabled) config parses, but nothing can trade or be reconciled.
        return [
            Check(
                "config",
                "fail",
                f"{ws.config_path} enables no account under `exchanges:`; add one "
                "(config/trading_config.example.yaml has examples) or run `vhc init DIR`",
                2,
            )
        ]
    names = ", ".join(ws.config.enabled_exchanges())
    return [Check("config", "ok", f"{ws.config_path} valid; enabled accounts: {names}")]


def _files(ws: Workspace) -> list[Check]:
    for path in (ws.config_path, ws.ledger_path):
        check_private(path)
    return [Check("permissions", "ok", "config and ledger are readable by their owner only")]


def _ledger(ws: Workspace) -> list[Check]:
    from .ledger.verify import verify_chain

    with ws.open_ledger(read_only=True) as ledger:
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


def _kite_sessions(ws: Workspace, now: datetime) -> list[Check]:
    """Per enabled Kite account: is the day's session stored, and when does it end?"""
    from .exchanges.kite_session import kite_accounts, load_session

    moment = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    out = []
    for name in kite_accounts(ws):
        if not ws.config.exchange(name).enabled:
            continue
        try:
            session = load_session(ws, name)
        except VhcError as exc:
            out.append(Check("kite session", "fail", exc.message, exc.exit_code))
            continue
        ends = session.expires_at.isoformat()
        if session.expires_at <= moment:
            detail = f"{name}: the session ended {ends}; run `vhc kite login --exchange {name}`"
            out.append(Check("kite session", "fail", detail, 8))
        else:
            out.append(Check("kite session", "ok", f"{name}: session stored, ends {ends}"))
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


def _approvers(ws: Workspace) -> list[Check]:
    from .auth.totp import enrolled_approvers

    names = sorted(enrolled_approvers(ws))
    if not names:
        return [
            Check(
                "approvers",
                "warn",
                "no approver is enrolled: the kill switch could not be lifted and no "
                "withdrawal approved; run `vhc totp setup --approver NAME`",
            )
        ]
    return [Check("approvers", "ok", f"enrolled: {', '.join(names)}")]


def _kill_switch(ws: Workspace) -> list[Check]:
    """The state file against the ledger's record (read-only): a disagreement is a failure."""
    from .risk.killswitch import effective_state

    eff = effective_state(ws)
    state = eff.file
    out = []
    if eff.disagreement:
        detail = f"{eff.disagreement}; trading is blocked (it fails closed)"
        out.append(Check("kill switch", "fail", detail, 6))
    elif eff.active:
        out.append(Check("kill switch", "warn", f"ACTIVE since {state.since}: {state.reason}"))
    elif eff.file_problem:
        detail = f"inactive per the ledger; the state file is {eff.file_problem} (rewritten at the next trade)"
        out.append(Check("kill switch", "ok", detail))
    else:
        out.append(Check("kill switch", "ok", "inactive: trading allowed"))
    if eff.ledger_note:
        out.append(Check("kill switch", "warn", f"ledger record not checked: {eff.ledger_note}"))
    return out


def _policy(ws: Workspace) -> list[Check]:
    from .policy.service import policy_status

    status = policy_status(ws)
    if status.recorded is None:
        return [Check("policy", "warn", "no policy recorded yet: run `vhc config apply`")]
    if status.same:
        detail = f"on record (ledger seq {status.recorded.seq}, {status.file_hash[:16]})"
        return [Check("policy", "ok", detail)]
    if status.loosening:
        keys = ", ".join(c.key for c in status.loosening)
        return [
            Check(
                "policy",
                "fail",
                f"the config loosens the recorded policy ({keys}): trading and withdrawals are "
                "refused until `vhc config apply --auth-code CODE`",
                8,
            )
        ]
    keys = ", ".join(c.key for c in status.changes) or "order only"
    return [Check("policy", "ok", f"tightened ({keys}): recorded by the next command")]


def _ip_allowlists(ws: Workspace) -> list[Check]:
    from .trading.accounts import connect

    out = []
    for name, account in ws.config.enabled_exchanges().items():
        if not account.ip_allowlist:
            continue
        listed = ", ".join(account.ip_allowlist)
        client = connect(ws, name)
        try:
            asker = getattr(client, "ip_restrictions", None)
            actual = asker() if asker is not None else None
        finally:
            client.close()
        if actual is None:
            detail = (
                f"{name}: {listed} - the exchange enforces this on the API key; vhc cannot read "
                "the key's IP restrictions through ccxt, so it cannot check them: confirm them "
                "in the exchange's API key settings"
            )
            out.append(Check("ip allowlist", "info", detail))
        elif not actual:
            detail = f"{name}: the API key accepts calls from ANY IP, config lists {listed}"
            out.append(Check("ip allowlist", "warn", detail))
        elif sorted(actual) != sorted(account.ip_allowlist):
            detail = (
                f"{name}: the API key is restricted to {', '.join(actual)}, config lists {listed}"
            )
            out.append(Check("ip allowlist", "warn", detail))
        else:
            out.append(
                Check("ip allowlist", "ok", f"{name}: the API key is restricted to {listed}")
            )
    return out


def _reconcile_age(ws: Workspace, now: datetime) -> list[Check]:
    from .deploy import STALE_AFTER

    frequency = ws.config.reconciliation.frequency
    if frequency not in STALE_AFTER:
        return [Check("reconcile", "ok", f"reconciliation.frequency: {frequency} (not scheduled)")]
    with ws.open_ledger(read_only=True) as ledger:
        rows = ledger.query(
            "SELECT max(timestamp) FROM control_events WHERE kind = 'reconcile.completed'"
        )
    last = rows[0][0] if rows else None
    hint = "run `vhc reconcile` and install `vhc deploy schedule`"
    if last is None:
        return [Check("reconcile", "warn", f"never reconciled ({frequency} expected): {hint}")]
    age = now.replace(tzinfo=None) - last
    limit = STALE_AFTER[frequency]
    if age > limit:
        hours = age.total_seconds() / 3600
        return [
            Check("reconcile", "warn", f"last reconcile {hours:.1f} h ago, {frequency} expected: "
                  f"{hint}")
        ]  # fmt: skip
    return [Check("reconcile", "ok", f"last reconcile {last:%Y-%m-%d %H:%M} UTC ({frequency})")]


def _logs(ws: Workspace) -> list[Check]:
    settings = ws.config.logging
    keep = f"daily files kept {settings.retention_days} days"
    if not settings.immutable:
        return [Check("logs", "ok", f"{keep}; not chained (logging.immutable: false)")]
    from .log_chain import verify_days

    files, problems = verify_days(ws)
    if problems:
        return [Check("logs", "fail", p, 6) for p in problems]
    return [Check("logs", "ok", f"{keep}; {files} file(s), hash chain and ledger seals intact")]


def run_doctor(ws: Workspace, now: datetime) -> list[Check]:
    """Config, file modes, ledger chain, secrets and their age, exchanges, kill switch."""
    checks = _guard("config", lambda: _config(ws))
    if checks[0].status == "fail":
        return checks  # nothing else can be read without a valid config
    checks += _guard("permissions", lambda: _files(ws))
    checks += _guard("ledger", lambda: _ledger(ws))
    checks += _guard("secrets", lambda: _secrets(ws, now))
    checks += _guard("policy", lambda: _policy(ws))
    checks += _guard("ip allowlist", lambda: _ip_allowlists(ws))
    checks += _guard("kite session", lambda: _kite_sessions(ws, now))
    checks += _guard("exchanges", lambda: _exchanges(ws))
    checks += _guard("reconcile", lambda: _reconcile_age(ws, now))
    checks += _guard("logs", lambda: _logs(ws))
    checks += _guard("approvers", lambda: _approvers(ws))
    checks += _guard("guarantees", lambda: _guarantees(ws))
    checks += _guard("kill switch", lambda: _kill_switch(ws))
    return checks


def exit_code(checks: list[Check]) -> int:
    """The first failure's code; 1 when there are only warnings; 0 when all is well."""
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        return failed[0].exit_code or 2
    return 1 if any(c.status == "warn" for c in checks) else 0
