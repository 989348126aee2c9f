"""Who is enrolled, decided from the ledger: sealed `totp.enrolled` / `totp.removed` events.

Also the replay and lockout state, derived from `totp.verified` / `totp.failed` events, so
deleting `state/` resets nothing. Every enrolment and removal carries a MAC under the control
key (auth.mac): a row appended by someone who can write the DuckDB file but not read the
secrets backend is refused (exit 6), and so is a sealed row copied a second time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ccxtkit.errors import LedgerIntegrityError
from ccxtkit.ledger.chain import utc_naive
from ccxtkit.ledger.store import Ledger
from ccxtkit.workspace import Workspace

from .mac import key_record, verify_seal
from .rowcheck import check_rows

ENROLLED = "totp.enrolled"
REMOVED = "totp.removed"
VERIFIED = "totp.verified"
FAILED = "totp.failed"
#: Failure reasons that count towards the lockout (a locked-out attempt does not extend it).
COUNTED = ("wrong_code", "replayed")


@dataclass(frozen=True)
class Enrolled:
    """An enrolled approver: where the secret is and the ledger row that enrolled it."""

    approver: str
    backend: str
    location: str
    enrolled_at: datetime
    seq: int


def enrol_fields(d: Mapping[str, Any]) -> dict[str, object]:
    """What an enrolment's MAC covers."""
    keys = ("approver", "backend", "location", "replaced", "by", "nonce")
    return {k: d.get(k) for k in keys}


def removal_fields(d: Mapping[str, Any]) -> dict[str, object]:
    """What a removal's MAC covers."""
    return {k: d.get(k) for k in ("approver", "by", "nonce")}


def enrolled_in(ledger: Ledger, ws: Workspace) -> dict[str, Enrolled]:
    """The approvers in force, every enrolment/removal event's seal checked (exit 6 if forged)."""
    rows = ledger.query(
        "SELECT seq, kind, timestamp, details FROM control_events WHERE kind IN (?, ?) "
        "ORDER BY seq",
        [ENROLLED, REMOVED],
    )
    if rows:
        key_rows = ledger.query(
            "SELECT seq FROM control_events WHERE kind IN ('control_key.created', 'ledger.id')"
        )
        seqs = [int(r[0]) for r in rows] + [int(k[0]) for k in key_rows]
        check_rows(ledger, seqs, "the approvers' records")
    if rows and key_record(ledger) is None:
        raise LedgerIntegrityError(
            "the ledger records approvers but no control key: its first enrolment record was "
            "removed or these were inserted; restore the ledger from a backup"
        )
    out: dict[str, Enrolled] = {}
    seen: set[str] = set()
    for seq, kind, ts, text in rows:
        d = json.loads(text or "{}")
        mac = d.get("mac")
        what = f"the {kind} record of approver {d.get('approver')!r} (ledger seq {seq})"
        fields = enrol_fields(d) if kind == ENROLLED else removal_fields(d)
        verify_seal(ws, kind, fields, mac, ledger, what=what)
        if mac in seen:
            raise LedgerIntegrityError(f"{what} is a copy of an earlier record: refused")
        seen.add(str(mac))
        name = str(d["approver"])
        if kind == ENROLLED:
            when = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
            out[name] = Enrolled(name, str(d["backend"]), str(d["location"]), when, int(seq))
        else:
            out.pop(name, None)
    return out


def last_step(ledger: Ledger, who: Enrolled) -> int | None:
    """The last accepted step of this approver since its enrolment."""
    rows = ledger.query(
        "SELECT details FROM control_events WHERE kind = ? AND subject = ? AND seq > ?",
        [VERIFIED, who.approver, who.seq],
    )
    steps = [json.loads(t or "{}").get("step") for (t,) in rows]
    found = [int(s) for s in steps if isinstance(s, int)]
    return max(found) if found else None


def recent_failures(
    ledger: Ledger, approver: str, since_seq: int, after: datetime
) -> list[datetime]:
    """Times of counted failures of `approver` after `after` (and after its enrolment)."""
    rows = ledger.query(
        "SELECT timestamp, details FROM control_events WHERE kind = ? AND subject = ? "
        "AND seq > ? AND timestamp > ? ORDER BY timestamp",
        [FAILED, approver, since_seq, utc_naive(after)],
    )
    out = []
    for ts, text in rows:
        if json.loads(text or "{}").get("reason") in COUNTED:
            out.append(ts if ts.tzinfo else ts.replace(tzinfo=UTC))
    return out
