"""The withdrawal allowlist. The ledger is the authority; every change needs a fresh 2FA code.

`vhc withdraw allowlist add|remove` verify a TOTP code and append `allowlist.added` /
`allowlist.removed` control events (subject `ASSET:ADDRESS`). The entries in force are those
events replayed. `withdrawals.recipient_allowlist` in the YAML is only a declaration: an entry
there without a ledger record is refused, with the command that adds it properly, because
anyone who can edit a file on the laptop could otherwise add an address.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ccxtkit.config import AllowlistEntry, WithdrawalsConfig
from ccxtkit.errors import AuthorizationError, UsageError
from ccxtkit.ledger.store import Ledger, default_actor
from ccxtkit.workspace import Workspace

from .policy import AllowedAddress, Policy, find_entry
from .requests import aware

if TYPE_CHECKING:
    from ccxtkit.auth.totp import Verified

ADDED = "allowlist.added"
REMOVED = "allowlist.removed"
_ASSET_RE = re.compile(r"^[A-Z0-9.]{1,20}$")


@dataclass(frozen=True)
class AllowlistRow:
    """One line of `vhc withdraw allowlist list`."""

    asset: str | None
    address: str
    network: str | None
    label: str | None
    state: str  # usable | cooling_off | not_recorded
    added_at: datetime | None
    usable_from: datetime | None
    added_by: str | None


def norm_asset(asset: str) -> str:
    """An asset code, upper-case, or a usage error."""
    code = asset.strip().upper()
    if not _ASSET_RE.match(code):
        raise UsageError(f"asset {asset!r} is not a currency code like BTC or USDC")
    return code


def norm_address(address: str) -> str:
    """An address without surrounding blanks; blanks inside are refused."""
    text = address.strip()
    if not text or any(c.isspace() for c in text) or not text.isprintable():
        raise UsageError(f"address {address!r} is not valid: no spaces or control characters")
    return text


def norm_network(network: str | None) -> str | None:
    """A network name as given (compared case-insensitively), or None."""
    return network.strip() or None if network else None


def _subject(asset: str, address: str) -> str:
    return f"{asset}:{address}"


def recorded_entries(ledger: Ledger) -> list[AllowedAddress]:
    """The entries in force: every add replayed, minus the later removes."""
    entries: dict[tuple[str, str, str], AllowedAddress] = {}
    rows = ledger.query(
        "SELECT kind, timestamp, actor, details FROM control_events WHERE kind IN (?, ?) "
        "ORDER BY seq",
        [ADDED, REMOVED],
    )
    for kind, ts, actor, text in rows:
        d = json.loads(text or "{}")
        key = (d["asset"], d["address"], (d.get("network") or "").upper())
        if kind == ADDED:
            entries[key] = AllowedAddress(
                d["asset"], d["address"], d.get("network"), d.get("label"), aware(ts), actor
            )
        else:
            entries.pop(key, None)
    return list(entries.values())


def yaml_entries(cfg: WithdrawalsConfig) -> list[AllowlistEntry]:
    """The config's entries; plain strings (the seed's form) are an address for any asset."""
    return [AllowlistEntry(address=e) if isinstance(e, str) else e for e in cfg.recipient_allowlist]


def add_hint(asset: str, address: str, network: str | None) -> str:
    """The command that adds an address properly."""
    net = f" --network {network}" if network else ""
    return f"`vhc withdraw allowlist add {asset} {address}{net} [--label NAME] --auth-code CODE`"


def resolve(
    entries: list[AllowedAddress],
    cfg: WithdrawalsConfig,
    asset: str,
    address: str,
    network: str | None,
) -> AllowedAddress:
    """The recorded entry for this destination, or AuthorizationError (exit 8) saying what to do."""
    found = find_entry(entries, asset, address, network)
    if found is not None:
        return found
    where = f"{asset} address {address}" + (f" on network {network}" if network else "")
    in_yaml = [e for e in yaml_entries(cfg) if e.address == address]
    in_yaml = [e for e in in_yaml if e.asset is None or e.asset.upper() == asset]
    if in_yaml:
        raise AuthorizationError(
            f"{where} is in trading_config.yaml's withdrawals.recipient_allowlist but has no "
            f"2FA-approved record in the ledger, so it is refused: add it with "
            f"{add_hint(asset, address, network or in_yaml[0].network)} "
            "(usable after new_address_delay_hours)"
        )
    same = [e for e in entries if e.asset == asset and e.address == address]
    if same and network is None:
        nets = ", ".join(sorted(e.network or "-" for e in same))
        raise AuthorizationError(
            f"{where} is allowlisted on several networks ({nets}): choose one with --network"
        )
    raise AuthorizationError(
        f"{where} is not on the withdrawal allowlist: add it with "
        f"{add_hint(asset, address, network)} (usable after new_address_delay_hours)"
    )


def add_entry(
    ws: Workspace,
    asset: str,
    address: str,
    network: str | None,
    label: str | None,
    code: str,
    approver: str = "admin",
    now: datetime | None = None,
) -> AllowedAddress:
    """Add an address after a fresh TOTP code; it is usable once its cool-off has passed."""
    from ccxtkit.auth.totp import verify_code

    now = now or datetime.now(UTC)
    asset, address, network = norm_asset(asset), norm_address(address), norm_network(network)
    label = label.strip() or None if label else None
    with ws.open_ledger() as ledger:
        _refuse_duplicate(recorded_entries(ledger), asset, address, network)
    verified = verify_code(ws, code, approver, purpose="withdraw.allowlist.add", now=now)
    return record_added(ws, asset, address, network, label, verified, now)


def record_added(
    ws: Workspace,
    asset: str,
    address: str,
    network: str | None,
    label: str | None,
    verified: Verified,
    now: datetime,
) -> AllowedAddress:
    """Record one entry (normalised) on the strength of a code this process just verified."""
    approver = verified.approver
    details = {"asset": asset, "address": address, "network": network, "label": label}
    with ws.open_ledger() as ledger:
        _refuse_duplicate(recorded_entries(ledger), asset, address, network)
        ledger.record_event(
            ADDED,
            {**details, "approver": approver},
            actor=default_actor(),
            subject=_subject(asset, address),
            timestamp=now,
        )
    entry = AllowedAddress(asset, address, network, label, now, default_actor())
    ready = entry.usable_from(Policy.from_config(ws.config.withdrawals).new_address_delay)
    _alert(
        ws,
        "Withdrawal allowlist: address added",
        f"{asset} {address}"
        + (f" ({network})" if network else "")
        + f" was added by {default_actor()} (approver {approver}); usable from "
        f"{ready:%Y-%m-%d %H:%M} UTC. If this was not you, activate the kill switch and remove "
        f"it: `vhc withdraw allowlist remove {asset} {address} --auth-code CODE`.",
    )
    return entry


def _refuse_duplicate(
    entries: list[AllowedAddress], asset: str, address: str, network: str | None
) -> None:
    for e in entries:
        same_net = (e.network or "").upper() == (network or "").upper()
        if e.asset == asset and e.address == address and same_net:
            raise UsageError(f"{asset} {address} is already on the allowlist (since {e.added_at})")


def remove_entry(
    ws: Workspace,
    asset: str,
    address: str,
    network: str | None,
    code: str,
    approver: str = "admin",
    now: datetime | None = None,
) -> AllowedAddress:
    """Remove an address after a fresh TOTP code."""
    from ccxtkit.auth.totp import verify_code

    now = now or datetime.now(UTC)
    asset, address, network = norm_asset(asset), norm_address(address), norm_network(network)
    with ws.open_ledger() as ledger:
        entry = _existing(recorded_entries(ledger), asset, address, network)
    verify_code(ws, code, approver, purpose="withdraw.allowlist.remove", now=now)
    with ws.open_ledger() as ledger:
        entry = _existing(recorded_entries(ledger), asset, address, entry.network)
        details = {"asset": asset, "address": address, "network": entry.network}
        ledger.record_event(
            REMOVED,
            {**details, "approver": approver},
            actor=default_actor(),
            subject=_subject(asset, address),
            timestamp=now,
        )
    _alert(ws, "Withdrawal allowlist: address removed", f"{asset} {address} was removed.")
    return entry


def _existing(
    entries: list[AllowedAddress], asset: str, address: str, network: str | None
) -> AllowedAddress:
    found = find_entry(entries, asset, address, network)
    if found is None:
        raise UsageError(
            f"{asset} {address} is not on the allowlist (or is on several networks: pass "
            "--network); see `vhc withdraw allowlist list`"
        )
    return found


def list_entries(ws: Workspace, now: datetime | None = None) -> list[AllowlistRow]:
    """Recorded entries with their cool-off state, then YAML entries the ledger does not hold."""
    now = now or datetime.now(UTC)
    delay = Policy.from_config(ws.config.withdrawals).new_address_delay
    with ws.open_ledger() as ledger:
        entries = recorded_entries(ledger)
    rows = [
        AllowlistRow(
            e.asset,
            e.address,
            e.network,
            e.label,
            "usable" if now >= e.usable_from(delay) else "cooling_off",
            e.added_at,
            e.usable_from(delay),
            e.added_by,
        )
        for e in entries
    ]
    recorded = {(e.asset, e.address) for e in entries}
    for y in yaml_entries(ws.config.withdrawals):
        asset = y.asset.upper() if y.asset else None
        if not any(a == y.address and (asset is None or asset == s) for s, a in recorded):
            rows.append(
                AllowlistRow(asset, y.address, y.network, y.label, "not_recorded", None, None, None)
            )
    return rows


def _alert(ws: Workspace, title: str, body: str) -> None:
    from ccxtkit.alerts import Alert, send_alert

    send_alert(ws, Alert("critical", title, body, key=f"withdraw.allowlist.{title}.{body[:60]}"))
