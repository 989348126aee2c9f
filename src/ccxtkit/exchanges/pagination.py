"""Following an exchange's history endpoints to the end, whatever way it pages.

Exchanges page differently: most return the oldest entries from `since` (walk forward),
kraken returns the newest first (walk back with `until`, or use its `ofs` offset), and
some support ccxt's own `paginate: True`. Entries are deduplicated by id, so overlapping
pages never double a trade.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ccxtkit.errors import ExchangeError

from .errors_map import CallContext

Raw = dict[str, Any]
Page = Callable[[int | None, dict[str, Any]], list[Raw]]

MAX_PAGES = 10_000


@dataclass(frozen=True)
class Pager:
    """How one endpoint pages: mode, and its page size when known (a short page is the last)."""

    mode: Literal["forward", "backward", "offset", "ccxt"]
    page_size: int | None = None


#: (ccxt id, unified method) → how it pages. Anything not listed walks forward from `since`.
PAGINATION: dict[tuple[str, str], Pager] = {
    # TradesHistory: newest first, 50 per page, `ofs` offset (Kraken REST docs).
    ("kraken", "fetchMyTrades"): Pager("offset", 50),
    ("kraken", "fetchLedger"): Pager("offset", 50),  # Ledgers: same paging as TradesHistory
    # DepositStatus / WithdrawStatus: newest first; walk back with `end`.
    ("kraken", "fetchDeposits"): Pager("backward"),
    ("kraken", "fetchWithdrawals"): Pager("backward"),
}


def _key(raw: Raw) -> str:
    ident = raw.get("id") or raw.get("txid")
    if ident is None:
        # No id at all: fall back to the content, so identical repeats still collapse.
        return repr(sorted((k, repr(v)) for k, v in raw.items() if k != "info"))
    return str(ident)


def collect(
    page: Page, pager: Pager, since_ms: int, until_ms: int | None, ctx: CallContext
) -> list[Raw]:
    """Every entry with since_ms <= timestamp < until_ms, deduplicated by id, oldest first."""
    seen: dict[str, Raw] = {}

    def add(rows: list[Raw]) -> int:
        fresh = 0
        for row in rows:
            key = _key(row)
            if key not in seen:
                seen[key] = row
                fresh += 1
        return fresh

    def short(rows: list[Raw]) -> bool:
        return pager.page_size is not None and len(rows) < pager.page_size

    upper = {} if until_ms is None else {"until": until_ms}
    if pager.mode == "ccxt":
        add(page(since_ms, {"paginate": True, **upper}))
    elif pager.mode == "offset":
        offset = 0
        for _ in range(MAX_PAGES):
            rows = page(since_ms, {"ofs": offset, **upper})
            if not add(rows) or short(rows):
                break
            offset += len(rows)
        else:
            _too_many(ctx)
    elif pager.mode == "backward":
        bound = until_ms
        for _ in range(MAX_PAGES):
            rows = page(since_ms, {} if bound is None else {"until": bound})
            if not add(rows) or short(rows):
                break
            oldest = min(_ts(r) for r in rows)
            if oldest <= since_ms or (bound is not None and oldest >= bound):
                break
            bound = oldest  # inclusive on purpose: same-millisecond entries are deduplicated
        else:
            _too_many(ctx)
    else:
        lower = since_ms
        for _ in range(MAX_PAGES):
            rows = page(lower, dict(upper))
            if not add(rows) or short(rows):
                break
            newest = max(_ts(r) for r in rows)
            if newest <= lower or (until_ms is not None and newest >= until_ms):
                break
            lower = newest  # inclusive on purpose, as above
        else:
            _too_many(ctx)
    rows = [
        r
        for r in seen.values()
        # An entry without a time (e.g. a pending transfer) is kept: never drop money.
        if r.get("timestamp") is None
        or (_ts(r) >= since_ms and (until_ms is None or _ts(r) < until_ms))
    ]
    return sorted(rows, key=_ts)


def _ts(raw: Raw) -> int:
    value = raw.get("timestamp")
    return 0 if value is None else int(value)


def _too_many(ctx: CallContext) -> None:
    raise ExchangeError(
        f"{ctx.describe()}: history did not end after {MAX_PAGES} pages; "
        "narrow the date range and try again"
    )
