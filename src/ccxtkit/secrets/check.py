"""`vhc secrets check`: prove each account's key (and each signal source's) resolves, and its age.

What is checked: that the backend answers, that the secret exists with an api_key and
api_secret, its age (from the ledger's `secret.set` events, or the backend's own version date
for Vault and AWS) against `secrets.max_age_days`, and whether a live account reads its key
from environment variables. What is not checked: the key's permissions at the exchange (that
it cannot withdraw, that its IP allowlist is set). ccxt has no unified call for them, so this
report says so, and the key should be restricted when it is created at the exchange.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ccxtkit.errors import LedgerBusyError, VhcError
from ccxtkit.ledger.store import open_ledger
from ccxtkit.workspace import Workspace

from . import describe as describe_location
from . import env, is_live, meta, needs_keys
from . import fetch as fetch_secret
from .common import (
    Backend,
    MissingSecretError,
    SecretRef,
    check_name,
    credentials_from,
    require_backend,
)

PERMISSIONS_NOTE = (
    "withdrawal permission is not checked: ccxt offers no unified query for a key's "
    "permissions; create trading keys without withdrawal rights and with an IP allowlist"
)


@dataclass
class CheckRow:
    """The state of one secret: where it lives, whether it resolves, and its age."""

    name: str
    kind: str
    backend: str
    location: str
    status: str  # ok | not needed | missing | misconfigured | unavailable
    problem: str | None = None
    exit_code: int | None = None
    set_at: datetime | None = None
    age_days: int | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    """Every row, plus notes on what was not checked."""

    rows: list[CheckRow]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return all(r.status in ("ok", "not needed") for r in self.rows)

    def exit_code(self) -> int:
        """0 when all resolve, else the exit code of the first failure (2 missing, 5 down)."""
        return next((r.exit_code or 1 for r in self.rows if r.exit_code is not None), 0)


def _targets(ws: Workspace, name: str | None) -> list[tuple[SecretRef, Backend | None, bool]]:
    """(secret, backend or None if not needed, live?) for what this check covers."""
    cfg = ws.config
    targets: list[tuple[SecretRef, Backend | None, bool]] = []
    for account, ex in cfg.exchanges.items():
        if (name is None and ex.enabled) or name == account:
            backend = require_backend(ex.secrets) if needs_keys(account, ex) else None
            targets.append((SecretRef("exchange", account), backend, is_live(account, ex)))
    alerts = cfg.monitoring.alerts
    generic = [alerts.email.password_secret if alerts.email else None]
    generic.append(alerts.telegram.token_secret if alerts.telegram else None)
    for secret in generic:
        if secret and name in (None, secret):
            targets.append((SecretRef("generic", secret), cfg.secrets.backend, False))
    sources = {n for s in cfg.signals.sources for n in (s, f"signals_{s}")}
    if name is not None and not targets and name not in sources:  # sources: _signal_sources
        targets.append((SecretRef("generic", check_name(name)), cfg.secrets.backend, False))
    return targets


def _ages(ws: Workspace) -> dict[tuple[str, str], datetime]:
    path = ws.ledger_path
    if not path.exists():
        return {}
    try:
        # Read-only: `doctor` and `secrets check` look, they never write (issue 14).
        with open_ledger(path, ws.config.ledger.lock_wait_seconds, read_only=True) as ledger:
            return meta.last_set_times(ledger)
    except LedgerBusyError:
        return {}


def _signal_sources(
    ws: Workspace,
    now: datetime,
    name: str | None,
    recorded: dict[tuple[str, str], datetime],
    max_age: int,
) -> list[CheckRow]:
    """A row per signal source (`signals_<source>`): its key and secret resolve, and their age."""
    from ccxtkit.signals.credentials import check_source, location, secret_name

    rows: list[CheckRow] = []
    for source, cfg in ws.config.signals.sources.items():
        secret = secret_name(source)
        if name not in (None, source, secret):
            continue
        backend = cfg.secrets or ws.config.secrets.backend
        row = CheckRow(secret, "signal source", backend, location(ws, source, cfg), "ok")
        try:
            row.warnings += check_source(ws, source, cfg)
        except VhcError as exc:
            _failed(row, exc)
            rows.append(row)
            continue
        row.set_at = recorded.get(("generic", secret))
        row.age_days = meta.age_days(row.set_at, now)
        warning = meta.age_warning(secret, row.set_at, now, max_age)
        if warning:
            row.warnings.append(warning)
        rows.append(row)
    return rows


def _failed(row: CheckRow, exc: VhcError) -> None:
    """Mark a row whose secret could not be read: missing, misconfigured or unavailable."""
    row.status = (
        "missing"
        if isinstance(exc, MissingSecretError)
        else "misconfigured"
        if exc.exit_code == 2
        else "unavailable"
    )
    row.problem, row.exit_code = exc.message, exc.exit_code


def check_secrets(ws: Workspace, now: datetime, name: str | None = None) -> CheckReport:
    """Resolve each configured secret (values never returned) and report status and age."""
    targets = _targets(ws, name)
    recorded = _ages(ws)
    max_age = ws.config.secrets.max_age_days
    rows: list[CheckRow] = []
    for ref, backend, live in targets:
        if backend is None:
            rows.append(CheckRow(ref.name, ref.kind, "none", "-", "not needed"))
            continue
        row = CheckRow(ref.name, ref.kind, backend, describe_location(ws, ref, backend), "ok")
        try:
            fetched = fetch_secret(ws, ref, backend)
            if ref.is_exchange:
                credentials_from(fetched.fields, row.location, ref.name)
            elif "value" not in fetched.fields:
                raise VhcError(f"{row.location} holds no value")
        except VhcError as exc:
            _failed(row, exc)
            rows.append(row)
            continue
        row.set_at = meta.newest(recorded.get((ref.kind, ref.name)), fetched.updated_at)
        row.age_days = meta.age_days(row.set_at, now)
        warning = meta.age_warning(ref.name, row.set_at, now, max_age)
        if warning:
            row.warnings.append(warning)
        if backend == "env" and live and ref.is_exchange:
            row.warnings.append(env.live_warning(ref.name))
        rows.append(row)
    rows += _signal_sources(ws, now, name, recorded, max_age)
    notes = (
        [PERMISSIONS_NOTE] if any(r.kind == "exchange" and r.status == "ok" for r in rows) else []
    )
    return CheckReport(rows, notes)
