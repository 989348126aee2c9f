"""The risk figures, computed in one place: exposure, drawdown and today's PnL.

The pre-trade limits, the kill switch's triggers (`--check`), the metrics exporter and
`kill-switch --status` all read `compute`, so they cannot disagree:

- prices: each asset's latest USD(-like) quoted row of the `prices` table, latest by
  timestamp (then by seq for rows stamped alike), overlaid by fresher prices the caller has
  (tickers);
- exposure, holdings, pending orders, high-water mark: `risk.exposure.build_exposure`
  (the high-water mark is flow-adjusted: withdrawing capital is not a drawdown);
- drawdown: `risk.limits.drawdown_pct` of the portfolio against that mark; None when a held
  asset has no USD price (never a guess) or nothing has been valued yet;
- PnL today: realised (sells against the average cost basis, minus fees), per exchange and
  in total; the daily-loss trigger and the `trading_pnl_daily_usd` metric are this figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from ccxtkit.ledger.store import Ledger
from ccxtkit.money import USD_LIKE, is_usd_like

from .exposure import build_exposure
from .limits import Exposure, drawdown_pct

if TYPE_CHECKING:
    from ccxtkit.workspace import Workspace

_USD_LIST = ", ".join(f"'{c}'" for c in sorted(USD_LIKE))
_LATEST_PRICES_SQL = f"""
SELECT asset, price FROM (
    SELECT upper(asset) AS asset, price,
           row_number() OVER (PARTITION BY upper(asset) ORDER BY timestamp DESC, seq DESC) AS n
    FROM prices WHERE upper(quote) IN ({_USD_LIST})
) WHERE n = 1
"""


@dataclass(frozen=True)
class RiskFigures:
    """What every reader of risk figures sees."""

    exposure: Exposure
    prices: Mapping[str, Decimal]
    drawdown_pct: Decimal | None
    pnl_today_usd: Decimal | None
    pnl_by_exchange: Mapping[str, Decimal] = field(default_factory=dict)
    unpriced_held: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (Decimals as strings)."""
        e = self.exposure

        def text(v: Decimal | None) -> str | None:
            return None if v is None else str(v)

        return {
            "portfolio_usd": str(e.portfolio_usd),
            "high_water_usd": str(e.high_water_usd),
            "drawdown_pct": text(self.drawdown_pct),
            "pnl_today_usd": text(self.pnl_today_usd),
            "daily_volume_usd": str(e.daily_volume_usd),
            "open_orders": e.open_orders,
            "positions_usd": {a: str(v) for a, v in sorted(e.positions_usd.items())},
            "unpriced": list(self.unpriced_held),
        }


def latest_prices(ledger: Ledger) -> dict[str, Decimal]:
    """Each asset's latest USD price from the ledger (stablecoin quotes count as USD)."""

    def read() -> dict[str, Decimal]:
        return {str(a): Decimal(p) for a, p in ledger.query(_LATEST_PRICES_SQL)}

    return dict(ledger.remembered("risk.latest_prices", ("prices",), read))


def compute(
    ledger: Ledger,
    now: datetime,
    tz: str | None = None,
    prices_usd: Mapping[str, Decimal] | None = None,
    free_balances: Mapping[str, Decimal] | None = None,
    with_pnl: bool = True,
) -> RiskFigures:
    """Read the ledger once into the figures (see the module docstring for each rule)."""
    prices = {**latest_prices(ledger), **dict(prices_usd or {})}
    exposure = build_exposure(ledger, prices, now, tz, free_balances, with_pnl=with_pnl)
    return figures_of(exposure, prices)


def figures_of(exposure: Exposure, prices: Mapping[str, Decimal]) -> RiskFigures:
    """The figures of an exposure already built (the rules of the module docstring)."""
    unpriced = tuple(sorted(a for a in exposure.unpriced if not is_usd_like(a)))
    valued = exposure.high_water_usd > 0
    drawdown = (
        None
        if unpriced or not valued
        else drawdown_pct(exposure.portfolio_usd, exposure.high_water_usd)
    )
    return RiskFigures(
        exposure=exposure,
        prices=prices,
        drawdown_pct=drawdown,
        pnl_today_usd=exposure.realised_pnl_today_usd,
        pnl_by_exchange=dict(exposure.realised_pnl_by_exchange),
        unpriced_held=unpriced,
    )


def status_figures(ws: Workspace, now: datetime | None = None) -> dict[str, object] | None:
    """The figures for `kill-switch --status` (read-only, brief lock wait); None if unreadable."""
    from ccxtkit.errors import VhcError
    from ccxtkit.ledger.store import open_ledger

    if not ws.ledger_path.exists():
        return None
    moment = now or datetime.now(UTC)
    try:
        with open_ledger(ws.ledger_path, wait_seconds=0.5, read_only=True) as ledger:
            return compute(ledger, moment, ws.config.timezone).to_dict()
    except VhcError:
        return None  # busy or unreadable: the status must still answer
