"""Reading a risk figure's checkpoint: the latest chained control event of its kind.

A checkpoint records a figure's running state through a seq (`through_seq`), so readers go
on from there instead of reading the whole history (`risk.cost_basis`, `risk.high_water`).
"""

from __future__ import annotations

import json
from decimal import InvalidOperation
from typing import Any

from ccxtkit.ledger.store import Ledger
from ccxtkit.logs import log

#: What a checkpoint's own fields may raise when the row is not what vhc wrote.
UNREADABLE = (TypeError, ValueError, KeyError, AttributeError, InvalidOperation)


def latest(ledger: Ledger, kind: str) -> tuple[int, int, dict[str, Any]] | None:
    """The latest checkpoint of `kind`: (its seq, its through_seq, its details), or None."""
    if "control_events" not in ledger.tables:
        return None
    rows = ledger.query(
        "SELECT seq, details FROM control_events WHERE kind = ? ORDER BY seq DESC LIMIT 1",
        [kind],
    )
    if not rows:
        return None
    seq, details = int(rows[0][0]), rows[0][1]
    try:
        data = json.loads(details)
        through = int(data["through_seq"])
        if not 0 <= through < seq:
            raise ValueError("through_seq is not before the checkpoint itself")
    except UNREADABLE as exc:
        ignored(kind, seq, exc)
        return None
    return seq, through, data


def ignored(kind: str, seq: int, exc: Exception) -> None:
    """Log that a checkpoint could not be used (the reader then reads the whole history)."""
    log.warning("%s checkpoint at seq %s ignored (%s): reading the whole history", kind, seq, exc)
