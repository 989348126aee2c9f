"""Reading a risk figure's checkpoint: the latest chained control event of its kind.

A checkpoint records a figure's running state through a seq (`through_seq`), so readers go
on from there instead of reading the whole history (`risk.cost_basis`, `risk.high_water`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import InvalidOperation
from typing import Any, TypeVar

from ccxtkit.ledger.store import Ledger
from ccxtkit.logs import log

T = TypeVar("T")

#: What a checkpoint's own fields may raise when the row is not what vhc wrote.
UNREADABLE = (TypeError, ValueError, KeyError, AttributeError, InvalidOperation)


#: Every checkpoint kind: one query reads the latest of each.
KINDS = ("risk.cost_basis", "risk.high_water", "risk.open_orders")


def latest(ledger: Ledger, kind: str, parse: Callable[[dict[str, Any]], T]) -> tuple[int, T] | None:
    """The latest checkpoint of `kind`: (its through_seq, `parse` of its details), or None
    when there is none or it cannot be read (then it is logged and ignored)."""
    if "control_events" not in ledger.tables:
        return None
    found = _latest_of_each(ledger).get(kind)
    if found is None:
        return None
    seq, details = found
    try:
        data = json.loads(details)
        through = int(data["through_seq"])
        if not 0 <= through < seq:
            raise ValueError("through_seq is not before the checkpoint itself")
        return through, parse(data)
    except UNREADABLE as exc:
        ignored(kind, seq, exc)
        return None


def ignored(kind: str, seq: int, exc: Exception) -> None:
    """Log that a checkpoint could not be used (the reader then reads the whole history)."""
    log.warning("%s checkpoint at seq %s ignored (%s): reading the whole history", kind, seq, exc)


def _latest_of_each(ledger: Ledger) -> dict[str, tuple[int, str]]:
    """The latest checkpoint row of each kind, read once while no control event is written
    (an order's figures ask for each several times per visit)."""

    def read() -> dict[str, tuple[int, str]]:
        marks = ", ".join("?" for _ in KINDS)
        rows = ledger.query(
            f"SELECT kind, max(seq), arg_max(details, seq) FROM control_events "
            f"WHERE kind IN ({marks}) GROUP BY kind",
            list(KINDS),
        )
        return {str(k): (int(seq), str(details)) for k, seq, details in rows}

    return ledger.remembered("risk.checkpoints", ("control_events",), read)
