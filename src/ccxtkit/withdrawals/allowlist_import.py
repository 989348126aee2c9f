"""`vhc withdraw allowlist import-config`: adopt the config's `recipient_allowlist` in one step.

An address in the YAML is only a declaration (anyone who can edit the file could write one),
so it is refused until adopted. One fresh code adopts every pending entry that names its asset:
each is recorded through `allowlist.record_added` exactly as `allowlist add` records one, and
each has its own cool-off (`new_address_delay_hours`). The seed's plain-string entries name no
asset and cannot be adopted as they are: vhc never guesses which asset an address is for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ccxtkit.config import AllowlistEntry, WithdrawalsConfig
from ccxtkit.errors import UsageError, VhcError
from ccxtkit.workspace import Workspace

from .allowlist import (
    norm_address,
    norm_asset,
    norm_network,
    record_added,
    recorded_entries,
    yaml_entries,
)
from .policy import AllowedAddress, Policy, find_entry


@dataclass(frozen=True)
class PendingEntry:
    """A YAML entry without a ledger record; `problem` says why it cannot be adopted as is."""

    address: str
    asset: str | None
    network: str | None
    label: str | None
    problem: str = ""


@dataclass(frozen=True)
class ImportOutcome:
    """What import-config recorded, and what it left for a person."""

    added: list[AllowedAddress]
    skipped: list[PendingEntry]
    usable_from: datetime


def _pending_one(y: AllowlistEntry, recorded: list[AllowedAddress]) -> PendingEntry | None:
    if not y.asset:
        return PendingEntry(
            y.address,
            None,
            y.network,
            y.label,
            "no asset: write it as {address: ..., asset: USDC, network: ERC20} to adopt it",
        )
    try:
        asset, address = norm_asset(y.asset), norm_address(y.address)
    except VhcError as exc:
        return PendingEntry(y.address, y.asset, y.network, y.label, exc.message)
    network = norm_network(y.network)
    if find_entry(recorded, asset, address, network) is not None:
        return None
    label = y.label.strip() or None if y.label else None
    return PendingEntry(address, asset, network, label)


def pending_entries(cfg: WithdrawalsConfig, recorded: list[AllowedAddress]) -> list[PendingEntry]:
    """The config's entries that the ledger does not hold, each once, in the file's order."""
    out: list[PendingEntry] = []
    seen: set[tuple[str | None, str, str]] = set()
    for y in yaml_entries(cfg):
        p = _pending_one(y, recorded)
        if p is None:
            continue
        key = (p.asset, p.address, (p.network or "").upper())
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def import_config(
    ws: Workspace, code: str, approver: str = "admin", now: datetime | None = None
) -> ImportOutcome:
    """Adopt every pending entry that names its asset, on one fresh code of `approver`."""
    from ccxtkit.auth.totp import check_approver, verify_code

    now = now or datetime.now(UTC)
    check_approver(approver)
    cfg = ws.config.withdrawals
    with ws.open_ledger() as ledger:
        pending = pending_entries(cfg, recorded_entries(ledger, ws))
    ready = [p for p in pending if not p.problem and p.asset]
    skipped = [p for p in pending if p.problem]
    if not ready:
        why = "; ".join(f"{p.address}: {p.problem}" for p in skipped)
        raise UsageError(
            "nothing to import: withdrawals.recipient_allowlist has no pending entry that names "
            "its asset" + (f" ({why})" if why else "") + "; no code was used"
        )
    verified = verify_code(ws, code, approver, purpose="withdraw.allowlist.import", now=now)
    added = []
    for p in ready:
        assert p.asset is not None
        added.append(record_added(ws, p.asset, p.address, p.network, p.label, verified, now))
    delay = Policy.from_config(cfg).new_address_delay
    return ImportOutcome(added, skipped, now + delay)
