"""The allowlist as the ledger records it: entries replayed, each one's seal checked.

An `allowlist.added` event carries a MAC under the control key (auth.mac) over the entry's
asset, address, network, tag, label, approver and the step of the approver's code. A row
without a valid MAC, or a sealed row seen a second time (re-inserted after its removal), is
*forged*: it is never used, and `recorded_entries` refuses (exit 6, with an alert) while one
is in force. `vhc withdraw allowlist list` shows it, and `remove` can take it out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ccxtkit.errors import LedgerIntegrityError
from ccxtkit.ledger.store import Ledger
from ccxtkit.workspace import Workspace

from .policy import AllowedAddress
from .requests import aware

ADDED = "allowlist.added"
REMOVED = "allowlist.removed"
#: The MAC kind of an allowlist entry.
SEAL_KIND = "allowlist.entry"


def seal_fields(d: Mapping[str, object]) -> dict[str, object]:
    """What an entry's MAC covers (the approver and step make every MAC unique)."""
    keys = ("asset", "address", "network", "tag", "label", "approver", "step")
    return {k: d.get(k) for k in keys}


def replay(
    ledger: Ledger, ws: Workspace
) -> tuple[list[AllowedAddress], list[tuple[AllowedAddress, str]]]:
    """Entries in force (adds minus later removes): the sealed ones, and the forged ones (why)."""
    from ccxtkit.auth.mac import verify_seal
    from ccxtkit.auth.rowcheck import check_rows

    entries: dict[tuple[str, str, str, str], tuple[AllowedAddress, str | None, int]] = {}
    seen: set[str] = set()
    rows = ledger.query(
        "SELECT seq, kind, timestamp, actor, details FROM control_events WHERE kind IN (?, ?) "
        "ORDER BY seq",
        [ADDED, REMOVED],
    )
    for seq, kind, ts, actor, text in rows:
        d = json.loads(text or "{}")
        key = (d["asset"], d["address"], (d.get("network") or "").upper(), d.get("tag") or "")
        if kind != ADDED:
            entries.pop(key, None)
            continue
        entry = AllowedAddress(
            d["asset"], d["address"], d.get("network"), d.get("label"), aware(ts), actor,
            d.get("tag"),
        )  # fmt: skip
        what = f"allowlist entry {d['asset']} {d['address']} (ledger seq {seq})"
        problem: str | None = None
        try:
            verify_seal(ws, SEAL_KIND, seal_fields(d), d.get("mac"), ledger, what=what)
        except LedgerIntegrityError as exc:
            problem = exc.message
        if problem is None and str(d.get("mac")) in seen:
            problem = f"{what} is a copy of an earlier entry (re-inserted after its removal?)"
        seen.add(str(d.get("mac")))
        entries[key] = (entry, problem, int(seq))
    check_rows(ledger, [q for _, p, q in entries.values() if p is None], "the allowlist")
    good = [e for e, p, _ in entries.values() if p is None]
    forged = [(e, p) for e, p, _ in entries.values() if p is not None]
    return good, forged


def recorded_entries(ledger: Ledger, ws: Workspace) -> list[AllowedAddress]:
    """The entries in force, every seal checked: any forged entry is exit 6 (and an alert)."""
    entries, forged = replay(ledger, ws)
    if forged:
        from ccxtkit.auth.mac import tamper_alert

        more = f" (and {len(forged) - 1} more)" if len(forged) > 1 else ""
        exc = LedgerIntegrityError(forged[0][1] + more)
        tamper_alert(ws, exc, key="withdraw.allowlist.forged")
        raise exc
    return entries


def in_force(ledger: Ledger, ws: Workspace) -> list[AllowedAddress]:
    """Every entry in force, sealed or not (removing a forged one must stay possible)."""
    good, forged = replay(ledger, ws)
    return good + [e for e, _ in forged]
