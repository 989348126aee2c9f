"""The workspace's ledger id: a random name, recorded once in the chain, that secret names carry.

`vhc --home ~/scratch totp setup` makes a second ledger with its own id, so its secrets
(`totp_<id>_<approver>`, `control_<id>`) can never overwrite the real workspace's. The id is a
chained `ledger.id` control event; a ledger without one (new, or older than this) gets one the
first time a control needs it.
"""

from __future__ import annotations

import json
import re
import secrets

from ccxtkit.errors import LedgerIntegrityError
from ccxtkit.ledger.store import Ledger

KIND = "ledger.id"
_ID_RE = re.compile(r"^[0-9a-f]{16}$")


def ledger_id(ledger: Ledger) -> str | None:
    """The recorded id (the first `ledger.id` event wins), or None if there is none yet."""
    rows = ledger.query(
        "SELECT details FROM control_events WHERE kind = ? ORDER BY seq LIMIT 1", [KIND]
    )
    if not rows:
        return None
    value = str(json.loads(rows[0][0] or "{}").get("id", ""))
    if not _ID_RE.match(value):
        raise LedgerIntegrityError(
            f"the ledger's id record is malformed ({value!r}): the ledger was edited; "
            "restore it from a backup"
        )
    return value


def ensure_ledger_id(ledger: Ledger) -> str:
    """The recorded id, creating and recording one if the ledger has none."""
    found = ledger_id(ledger)
    if found is not None:
        return found
    new = secrets.token_hex(8)
    ledger.record_event(KIND, {"id": new}, subject=new)
    return new
