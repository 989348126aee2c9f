"""The kill switch's orders on the record without ever waiting on the ledger lock.

An emergency order (a flatten sell) is journalled before it is sent: one fsynced line in
`state/emergency_orders.jsonl` with its client order id. The ledger is then tried for at most
`LEDGER_WAIT_SECONDS`; when free, the journal's lines become `orders` rows (the intent) and the
outcome and fills are recorded as for any order. When busy, the sweep goes on regardless, and
the next writer that calls `adopt` (the trade path, `vhc trade recover`) turns the lines into
intents, which the ordinary pending-order resolution then looks up on the exchange by client
id: nothing is lost (the line is on disk before the send) and nothing is doubled (an intent
already in the ledger is not added again, fills are keyed by trade id, nothing is resent).

A forged journal line can only create an intent that the exchange lookup declares not found.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..ledger.store import Ledger, open_ledger
from ..logs import log
from ..workspace import Workspace

#: How long an emergency write waits for the ledger before leaving it to the next writer.
LEDGER_WAIT_SECONDS = 0.5
_FIELDS = ("timestamp", "client_order_id", "exchange", "symbol", "side", "type", "amount")


def journal_path(ws: Workspace) -> Path:
    """Where emergency intents wait for the ledger."""
    return ws.state_dir / "emergency_orders.jsonl"


@contextmanager
def _locked(path: Path) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def journal(ws: Workspace, row: dict[str, Any]) -> None:
    """Durably note an emergency intent (an `orders` row) before its order is sent."""
    entry = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    line = json.dumps(entry, sort_keys=True, default=str) + "\n"
    with _locked(journal_path(ws)) as fd:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line  # never glue a line onto one a crash cut short
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)


def _parse(raw: str) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or any(not data.get(k) for k in _FIELDS):
            return None
        return {
            "timestamp": datetime.fromisoformat(str(data["timestamp"])),
            "client_order_id": str(data["client_order_id"]),
            "exchange": str(data["exchange"]),
            "symbol": str(data["symbol"]),
            "side": "sell" if data["side"] == "sell" else "buy",
            "type": "limit" if data["type"] == "limit" else "market",
            "amount": Decimal(str(data["amount"])),
            "price": None if data.get("price") is None else Decimal(str(data["price"])),
            "strategy": None,
            "source": "kill_switch",
            "live": bool(data.get("live", True)),
        }
    except (ValueError, ArithmeticError, TypeError):
        return None


def adopt(ws: Workspace, ledger: Ledger) -> list[str]:
    """Turn journalled emergency intents into `orders` rows (once each); returns their ids."""
    path = journal_path(ws)
    if not path.exists() or path.stat().st_size == 0:
        return []
    added: list[str] = []
    with _locked(path) as fd:
        text = os.pread(fd, os.fstat(fd).st_size, 0).decode("utf-8", errors="replace")
        rows = [r for r in (_parse(line) for line in text.splitlines() if line.strip()) if r]
        with ledger.transaction():
            for row in rows:
                known = ledger.query(
                    "SELECT 1 FROM orders WHERE exchange = ? AND client_order_id = ? LIMIT 1",
                    [row["exchange"], row["client_order_id"]],
                )
                if not known:
                    ledger.append("orders", [row])
                    added.append(row["client_order_id"])
        os.ftruncate(fd, 0)
        os.fsync(fd)
    if added:
        log.info("emergency order intent(s) moved into the ledger: %s", ", ".join(added))
    return added


@contextmanager
def open_briefly(ws: Workspace) -> Iterator[Ledger]:
    """The ledger within LEDGER_WAIT_SECONDS (else LedgerBusyError), journal adopted first."""
    with open_ledger(ws.ledger_path, wait_seconds=LEDGER_WAIT_SECONDS) as ledger:
        adopt(ws, ledger)
        yield ledger
