"""`--auto-sync`: append what the exchange shows and the ledger lacks; adopt a funded account.

Only appends, never edits or deletes: missing trades become `trades` rows and unknown
deposits/withdrawals `transfers` rows (source `reconcile`, transfer_id = the exchange's id, with
its txid and fee), each checked against the ledger first, so a second run adds nothing.
Phantoms and mismatches are only reported: the ledger is the record and a person decides.
Transfers still pending on the exchange are not recorded (a row is never updated later);
they are picked up by the reconcile after they complete.

Adoption (first reconcile of an account with --auto-sync, when it has no `opening_balance`
row yet): the whole history the exchange gives is imported as above, and what the exchange
holds beyond that becomes one `opening_balance` transfer per asset, stamped just before the
account's earliest known movement and flagged as unknown cost basis for the tax report. A
negative remainder (the ledger holds more than the exchange) cannot be an opening balance:
it stays a finding.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ccxtkit import crashpoints
from ccxtkit.exchanges.base import Transfer
from ccxtkit.ledger.store import Ledger
from ccxtkit.trading.recording import record_fills

from .matching import Finding

ZERO = Decimal(0)
SOURCE = "reconcile"
#: How far back adoption asks for history (before any exchange vhc talks to existed).
ADOPT_SINCE = datetime.fromisoformat("2010-01-01T00:00:00+00:00")
OPENING_NOTE = (
    "opening balance adopted by vhc reconcile --auto-sync (exchange balance minus imported "
    "history); cost basis unknown"
)
_CHUNK = 1000


def transfer_row(exchange: str, t: Transfer, note: str) -> dict[str, Any]:
    """The ledger row of an exchange deposit or withdrawal."""
    return {
        "timestamp": t.timestamp,
        "exchange": exchange,
        "kind": t.kind,
        "asset": t.asset,
        "amount": t.amount,
        "fee": t.fee,
        "fee_currency": t.fee_currency,
        "transfer_id": t.id,
        "txid": t.txid,
        "address": t.address,
        "network": t.network,
        "tag": t.tag,
        "status": t.status,
        "source": SOURCE,
        "notes": note,
    }


def _known_transfer_ids(ledger: Ledger, exchange: str, ids: Sequence[str]) -> set[str]:
    known: set[str] = set()
    for i in range(0, len(ids), _CHUNK):
        part = ids[i : i + _CHUNK]
        marks = ", ".join("?" for _ in part)
        known |= {
            r[0]
            for r in ledger.query(
                f"SELECT transfer_id FROM transfers WHERE exchange = ? AND transfer_id IN ({marks})",
                [exchange, *part],
            )
        }
    return known


def sync_findings(ledger: Ledger, exchange: str, findings: Sequence[Finding]) -> list[Finding]:
    """Append the missing trades and completed unknown transfers; mark them synced."""
    trades = [f.trade for f in findings if f.kind == "missing_trade" and f.trade is not None]
    recorded = 0
    for i in range(0, len(trades), _CHUNK):
        recorded += record_fills(ledger, exchange, trades[i : i + _CHUNK], SOURCE)
        crashpoints.reach("reconcile.sync.mid_batch")  # rows appended, transaction open
    transfers = [
        f.transfer
        for f in findings
        if f.kind in ("unknown_deposit", "unknown_withdrawal")
        and f.transfer is not None
        and f.transfer.status == "ok"
    ]
    known = _known_transfer_ids(ledger, exchange, [t.id for t in transfers])
    rows = {
        t.id: transfer_row(
            exchange,
            t,
            f"recorded by vhc reconcile --auto-sync: {t.kind} "
            "found on the exchange, not made through vhc",
        )  # fmt: skip
        for t in transfers
        if t.id not in known
    }
    ledger.append("transfers", list(rows.values()))
    synced_ids = {t.id for t in trades} | {t.id for t in transfers}
    return [
        f.with_(action="synced")
        if f.ref in synced_ids
        and f.kind in ("missing_trade", "unknown_deposit", "unknown_withdrawal")
        else f
        for f in findings
    ]


def synced_effect(findings: Iterable[Finding]) -> dict[str, Decimal]:
    """What the synced findings added to each asset's ledger balance."""
    out: dict[str, Decimal] = {}
    for f in findings:
        if f.action in ("synced", "adopted"):
            for asset, delta in f.effect:
                out[asset] = out.get(asset, ZERO) + delta
    return out


def opening_rows(
    exchange: str,
    local: Mapping[str, Decimal],
    actual: Mapping[str, Decimal],
    earliest: datetime,
) -> list[dict[str, Any]]:
    """One opening_balance transfer per asset the exchange holds beyond the ledger's history."""
    rows = []
    for asset in sorted(actual):
        extra = actual[asset] - local.get(asset, ZERO)
        if extra > 0:
            rows.append(
                {
                    "timestamp": earliest - timedelta(seconds=1),
                    "exchange": exchange,
                    "kind": "opening_balance",
                    "asset": asset,
                    "amount": extra,
                    "transfer_id": f"opening-{exchange}-{asset}",
                    "status": "ok",
                    "source": SOURCE,
                    "notes": OPENING_NOTE,
                }
            )
    return rows


def earliest_movement(ledger: Ledger, exchange: str, seen: Iterable[datetime]) -> datetime | None:
    """The earliest time of the account's movements, in the ledger or just read."""
    from datetime import UTC

    times = [t for t in seen]
    for (ts,) in ledger.query(
        "SELECT min(timestamp) FROM trades WHERE exchange = ? UNION ALL "
        "SELECT min(timestamp) FROM transfers WHERE exchange = ?",
        [exchange, exchange],
    ):
        if ts is not None:
            times.append(ts.replace(tzinfo=UTC))
    return min(times) if times else None
