"""All-time buys per asset (the daily-loss approximation's cost basis), read incrementally.

Summing every buy of a million-trade ledger costs 40-100 ms, and the kill switch's triggers
need it after every order and every minute. The ledger is append-only, so the sums through a
sequence number never change: a chained `risk.cost_basis` control event records them
(through_seq and, per asset and quote, the three sums), and a reader adds only the buys with a
higher seq (DuckDB skips the older row groups by their seq zone maps). The checkpoint is a
chained row like the trades it sums, so an edit to it breaks the chain as an edit to a trade
does; a checkpoint that cannot be read is ignored and the whole history summed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ccxtkit.ledger.store import Ledger
from ccxtkit.money import USD_LIKE

from . import checkpoints
from .pending import sql_in

CHECKPOINT_KIND = "risk.cost_basis"
#: Buys after the latest checkpoint before a writer records a new one.
CHECKPOINT_EVERY = 10_000

_USD_QUOTE = f"upper(quote) IN {sql_in(tuple(sorted(USD_LIKE)))}"
#: A trade's USD value where the ledger knows it; NULL means "cost x the quote's price now".
TRADE_USD_SQL = f"coalesce(total_usd, CASE WHEN {_USD_QUOTE} THEN cost END)"
#: The cost of the trades whose USD value must come from the quote's price now.
COST_UNVALUED_SQL = f"sum(cost) FILTER (total_usd IS NULL AND NOT {_USD_QUOTE})"
_SUMS = f"sum(amount), sum({TRADE_USD_SQL}), {COST_UNVALUED_SQL}"


@dataclass(frozen=True)
class BuySums:
    """Of one (asset, quote): units bought, their USD value where the ledger knows it, and the
    cost (in the quote) of those whose USD value must come from the quote's price now."""

    amount: Decimal
    known_usd: Decimal
    unvalued_cost: Decimal

    def __add__(self, other: BuySums) -> BuySums:
        return BuySums(
            self.amount + other.amount,
            self.known_usd + other.known_usd,
            self.unvalued_cost + other.unvalued_cost,
        )


_NONE = BuySums(Decimal(0), Decimal(0), Decimal(0))


def buy_sums(ledger: Ledger, assets: Iterable[str]) -> dict[tuple[str, str], BuySums]:
    """Every buy of these assets, all history and every account, summed per (asset, quote)."""
    wanted = sorted(set(assets))
    if not wanted:
        return {}
    through, sums = _checkpoint(ledger)
    out = {key: s for key, s in sums.items() if key[0] in wanted}
    for key, delta in _sums_after(ledger, through, wanted).items():
        out[key] = out.get(key, _NONE) + delta
    return out


def record_checkpoint_if_due(ledger: Ledger, every: int = CHECKPOINT_EVERY) -> int | None:
    """Record a new checkpoint when `every` buys came after the last; its seq, or None."""
    through, sums = _checkpoint(ledger)
    since = ledger.query("SELECT count(*) FROM trades WHERE side = 'buy' AND seq > ?", [through])
    if int(since[0][0]) < every:
        return None
    head = ledger.head().seq
    for key, delta in _sums_after(ledger, through, None, until=head).items():
        sums[key] = sums.get(key, _NONE) + delta
    rows = [
        [asset, quote, str(s.amount), str(s.known_usd), str(s.unvalued_cost)]
        for (asset, quote), s in sorted(sums.items())
    ]
    return ledger.record_event(CHECKPOINT_KIND, {"through_seq": head, "buys": rows})


def _sums_after(
    ledger: Ledger, through: int, assets: list[str] | None, until: int | None = None
) -> dict[tuple[str, str], BuySums]:
    where = ["side = 'buy'", "seq > ?"]
    params: list[object] = [through]
    if assets is not None:
        where.append(f"asset IN ({', '.join('?' for _ in assets)})")
        params += assets
    if until is not None:
        where.append("seq <= ?")
        params.append(until)
    sql = f"SELECT asset, quote, {_SUMS} FROM trades WHERE {' AND '.join(where)} GROUP BY ALL"
    zero = Decimal(0)
    return {
        (str(asset), str(quote)): BuySums(amount or zero, usd or zero, unvalued or zero)
        for asset, quote, amount, usd, unvalued in ledger.query(sql, params)
    }


def _checkpoint(ledger: Ledger) -> tuple[int, dict[tuple[str, str], BuySums]]:
    """The latest checkpoint (through_seq, sums), or (0, {}) when there is none usable."""
    found = checkpoints.latest(ledger, CHECKPOINT_KIND, _sums_of)
    return found if found is not None else (0, {})


def _sums_of(data: dict[str, Any]) -> dict[tuple[str, str], BuySums]:
    return {
        (str(a), str(q)): BuySums(Decimal(n), Decimal(u), Decimal(c))
        for a, q, n, u, c in data["buys"]
    }
