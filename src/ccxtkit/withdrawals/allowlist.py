"""The withdrawal allowlist. The ledger is the authority; every change needs a fresh 2FA code.

`vhc withdraw allowlist add|remove` verify a TOTP code and append `allowlist.added` /
`allowlist.removed` control events (subject `ASSET:ADDRESS`). The entries in force are those
events replayed. Each added entry (asset, address, network, tag, label, approver and the step
of the approver's code) is sealed with the control key (auth.mac): a row appended to the
DuckDB file by anyone else is refused before any entry is used (exit 6, with an alert).

An entry carries its destination tag/memo: a request's tag must equal the entry's exactly, and
an entry without one refuses a request with one. `withdrawals.recipient_allowlist` in the YAML
is only a declaration: an entry there without a ledger record is refused, with the command
that adds it properly, because anyone who can edit a file could otherwise add an address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ccxtkit.config import AllowlistEntry, WithdrawalsConfig
from ccxtkit.errors import AuthorizationError, UsageError
from ccxtkit.ledger.store import default_actor
from ccxtkit.workspace import Workspace

from .allowlist_records import ADDED as ADDED
from .allowlist_records import REMOVED as REMOVED
from .allowlist_records import SEAL_KIND, in_force, replay, seal_fields
from .allowlist_records import recorded_entries as recorded_entries
from .policy import AllowedAddress, Policy, find_entry

if TYPE_CHECKING:
    from ccxtkit.auth.totp import Verified

_ASSET_RE = re.compile(r"^[A-Z0-9.]{1,20}$")


@dataclass(frozen=True)
class AllowlistRow:
    """One line of `vhc withdraw allowlist list`."""

    asset: str | None
    address: str
    network: str | None
    label: str | None
    state: str  # usable | cooling_off | not_recorded | forged
    added_at: datetime | None
    usable_from: datetime | None
    added_by: str | None
    tag: str | None = None


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


def norm_tag(tag: str | None) -> str | None:
    """A destination tag/memo as given (blank is none); blanks inside are refused."""
    if tag is None or not tag.strip():
        return None
    text = tag.strip()
    if any(c.isspace() for c in text) or not text.isprintable():
        raise UsageError(f"tag {tag!r} is not valid: no spaces or control characters")
    return text


def _subject(asset: str, address: str) -> str:
    return f"{asset}:{address}"


def yaml_entries(cfg: WithdrawalsConfig) -> list[AllowlistEntry]:
    """The config's entries; plain strings (the seed's form) are an address for any asset."""
    return [AllowlistEntry(address=e) if isinstance(e, str) else e for e in cfg.recipient_allowlist]


def add_hint(asset: str, address: str, network: str | None, tag: str | None = None) -> str:
    """The command that adds an address properly."""
    net = f" --network {network}" if network else ""
    tagged = f" --tag {tag}" if tag else ""
    return (
        f"`vhc withdraw allowlist add {asset} {address}{net}{tagged} [--label NAME] "
        "--auth-code CODE`"
    )


def resolve(
    entries: list[AllowedAddress],
    cfg: WithdrawalsConfig,
    asset: str,
    address: str,
    network: str | None,
    tag: str | None,
) -> AllowedAddress:
    """The recorded entry for this destination and tag, or AuthorizationError (exit 8)."""
    wanted = tag or None
    found = find_entry([e for e in entries if e.tag == wanted], asset, address, network)
    if found is not None:
        return found
    where = f"{asset} address {address}" + (f" on network {network}" if network else "")
    other = [e for e in entries if e.asset == asset and e.address == address]
    if any(find_entry([e], asset, address, network) for e in other):
        tags = ", ".join(sorted(repr(e.tag) if e.tag else "no tag" for e in other))
        raise AuthorizationError(
            f"{where} is allowlisted with {tags}, but this request has "
            f"{'tag ' + repr(wanted) if wanted else 'no tag'}: a destination tag must equal "
            f"the entry's exactly; if the tag is right, add it with "
            f"{add_hint(asset, address, network, wanted)}"
        )
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
        f"{add_hint(asset, address, network, wanted)} (usable after new_address_delay_hours)"
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
    tag: str | None = None,
) -> AllowedAddress:
    """Add an address (with its tag) after a fresh TOTP code; usable once its cool-off passed."""
    from ccxtkit.auth.totp import verify_code

    now = now or datetime.now(UTC)
    asset, address, network = norm_asset(asset), norm_address(address), norm_network(network)
    tag = norm_tag(tag)
    label = label.strip() or None if label else None
    with ws.open_ledger() as ledger:
        _refuse_duplicate(replay(ledger, ws)[0], asset, address, network, tag)
    verified = verify_code(ws, code, approver, purpose="withdraw.allowlist.add", now=now)
    return record_added(ws, asset, address, network, label, verified, now, tag)


def record_added(
    ws: Workspace,
    asset: str,
    address: str,
    network: str | None,
    label: str | None,
    verified: Verified,
    now: datetime,
    tag: str | None = None,
) -> AllowedAddress:
    """Record one (normalised) entry, sealed, on the strength of a code this process verified."""
    from ccxtkit.auth.mac import seal

    approver = verified.approver
    details: dict[str, object] = {
        "asset": asset,
        "address": address,
        "network": network,
        "tag": tag,
        "label": label,
        "approver": approver,
        "step": verified.step,
    }
    with ws.open_ledger() as ledger:
        _refuse_duplicate(replay(ledger, ws)[0], asset, address, network, tag)
        details["mac"] = seal(ws, SEAL_KIND, seal_fields(details), ledger)
        ledger.record_event(
            ADDED,
            details,
            actor=default_actor(),
            subject=_subject(asset, address),
            timestamp=now,
        )
    entry = AllowedAddress(asset, address, network, label, now, default_actor(), tag)
    ready = entry.usable_from(Policy.from_config(ws.config.withdrawals).new_address_delay)
    _alert(
        ws,
        "Withdrawal allowlist: address added",
        f"{asset} {address}"
        + (f" ({network})" if network else "")
        + (f" tag {tag}" if tag else " (no tag)")
        + (f" label {label}" if label else "")
        + f" was added by {default_actor()} (approver {approver}); usable from "
        f"{ready:%Y-%m-%d %H:%M} UTC. If this was not you, activate the kill switch and remove "
        f"it: `vhc withdraw allowlist remove {asset} {address} --auth-code CODE`.",
    )
    return entry


def _refuse_duplicate(
    entries: list[AllowedAddress], asset: str, address: str, network: str | None, tag: str | None
) -> None:
    for e in entries:
        same_net = (e.network or "").upper() == (network or "").upper()
        if e.asset == asset and e.address == address and same_net and e.tag == tag:
            raise UsageError(f"{asset} {address} is already on the allowlist (since {e.added_at})")


def remove_entry(
    ws: Workspace,
    asset: str,
    address: str,
    network: str | None,
    code: str,
    approver: str = "admin",
    now: datetime | None = None,
    tag: str | None = None,
) -> AllowedAddress:
    """Remove an address (and tag) after a fresh TOTP code; a forged entry can be removed too."""
    from ccxtkit.auth.totp import verify_code

    now = now or datetime.now(UTC)
    asset, address, network = norm_asset(asset), norm_address(address), norm_network(network)
    tag = norm_tag(tag)
    with ws.open_ledger() as ledger:
        entry = _existing(in_force(ledger, ws), asset, address, network, tag)
    verify_code(ws, code, approver, purpose="withdraw.allowlist.remove", now=now)
    with ws.open_ledger() as ledger:
        entry = _existing(in_force(ledger, ws), asset, address, entry.network, entry.tag)
        details = {
            "asset": asset,
            "address": address,
            "network": entry.network,
            "tag": entry.tag,
        }
        ledger.record_event(
            REMOVED,
            {**details, "approver": approver},
            actor=default_actor(),
            subject=_subject(asset, address),
            timestamp=now,
        )
    _alert(
        ws,
        "Withdrawal allowlist: address removed",
        f"{asset} {address}" + (f" tag {entry.tag}" if entry.tag else "") + " was removed.",
    )
    return entry


def _existing(
    entries: list[AllowedAddress],
    asset: str,
    address: str,
    network: str | None,
    tag: str | None,
) -> AllowedAddress:
    tagged = [e for e in entries if e.tag == tag]
    found = find_entry(tagged, asset, address, network)
    if found is None and tag is None:
        found = find_entry(entries, asset, address, network)  # the only entry, whatever its tag
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
        entries, bad = replay(ledger, ws)
    forged = [e for e, _ in bad]
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
            e.tag,
        )
        for e in entries
    ]
    rows += [
        AllowlistRow(e.asset, e.address, e.network, e.label, "forged", e.added_at, None,
                     e.added_by, e.tag)
        for e in forged
    ]  # fmt: skip
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
