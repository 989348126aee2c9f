"""The exposure snapshot, built from a real DuckDB ledger in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from ccxtkit.config import RiskConfig
from ccxtkit.ledger.store import Ledger, open_ledger
from ccxtkit.risk.exposure import (
    build_exposure,
    day_bounds_utc,
    day_start_utc,
    realised_pnl_today,
)
from ccxtkit.risk.limits import OrderProposal, drawdown_pct, first_refusal

NOW = datetime(2025, 1, 2, 15, 0, tzinfo=UTC)
_ids = count()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(tmp_path / "l.duckdb") as led:
        yield led


def trade(
    ts: datetime,
    side: str,
    amount: str,
    price: str,
    *,
    exchange: str = "kraken",
    symbol: str = "BTC/USD",
    fee: str = "0",
    total_usd: str | None = None,
) -> dict[str, Any]:
    base, quote = symbol.split("/")
    return {
        "timestamp": ts,
        "exchange": exchange,
        "symbol": symbol,
        "asset": base,
        "quote": quote,
        "side": side,
        "amount": D(amount),
        "price": D(price),
        "cost": D(amount) * D(price),
        "fee": D(fee),
        "fee_currency": quote,
        "trade_id": f"T{next(_ids)}",
        "source": "test",
        "total_usd": None if total_usd is None else D(total_usd),
    }


def snapshot(ts: datetime, exchange: str, **totals: str) -> list[dict[str, Any]]:
    return [
        {"timestamp": ts, "exchange": exchange, "asset": a, "total": D(t), "source": "test"}
        for a, t in totals.items()
    ]


def test_day_start_in_utc_and_in_a_configured_zone() -> None:
    assert day_start_utc(NOW) == datetime(2025, 1, 2)
    assert day_bounds_utc(NOW) == (datetime(2025, 1, 2), datetime(2025, 1, 3))
    # The day clocks go forward in New York is 23 hours long.
    spring = datetime(2025, 3, 9, 15, tzinfo=UTC)
    assert day_bounds_utc(spring, "America/New_York") == (
        datetime(2025, 3, 9, 5),
        datetime(2025, 3, 10, 4),
    )
    # 03:00 UTC on Jan 2 is still Jan 1 in New York, whose day began at 05:00 UTC.
    assert day_start_utc(datetime(2025, 1, 2, 3, tzinfo=UTC), "America/New_York") == datetime(
        2025, 1, 1, 5
    )


def test_daily_volume_counts_today_only_in_the_configured_zone(ledger: Ledger) -> None:
    """
    Jan 1 23:00 UTC  buy 1000 USD  (yesterday in UTC; today in New York, whose Jan 2 begins 05:00)
    Jan 2 04:00 UTC  buy 2000 USD  (today in UTC; Jan 1 evening in New York)
    Jan 2 10:00 UTC  sell 500 USD  (today everywhere)
    """
    ledger.append(
        "trades",
        [
            trade(datetime(2025, 1, 1, 23), "buy", "0.01", "100000"),
            trade(datetime(2025, 1, 2, 4), "buy", "0.02", "100000"),
            trade(datetime(2025, 1, 2, 10), "sell", "0.005", "100000"),
        ],
    )
    utc = build_exposure(ledger, {"BTC": D("100000")}, NOW)
    assert utc.daily_volume_usd == D("2500")
    ny = build_exposure(ledger, {"BTC": D("100000")}, NOW, "America/New_York")
    assert ny.daily_volume_usd == D("500")
    ny_evening = build_exposure(
        ledger, {"BTC": D("100000")}, datetime(2025, 1, 2, 4, 30, tzinfo=UTC), "America/New_York"
    )
    assert ny_evening.daily_volume_usd == D("3000")


def test_daily_volume_of_a_non_usd_quote(ledger: Ledger) -> None:
    ledger.append(
        "trades",
        [
            trade(datetime(2025, 1, 2, 9), "buy", "10", "0.05", symbol="ETH/BTC"),  # 0.5 BTC
            trade(datetime(2025, 1, 2, 9), "buy", "1", "0.05", symbol="ETH/BTC", total_usd="7"),
            trade(datetime(2025, 1, 2, 9), "buy", "100", "1", symbol="SOL/USDT"),
        ],
    )
    e = build_exposure(ledger, {"BTC": D("60000")}, NOW)
    assert e.daily_volume_usd == D("30000") + D("7") + D("100")
    assert e.volume_unpriced == frozenset()
    # Without a BTC price the 0.5 BTC trade cannot be valued: named, and the limit refuses.
    blind = build_exposure(ledger, {}, NOW)
    assert blind.volume_unpriced == frozenset({"BTC"})
    p = OrderProposal("kraken", "SOL/USDT", "SOL", "USDT", "buy", "market", D("1"), D("1"))
    refusal = first_refusal(p, blind, RiskConfig())
    assert refusal is not None and "max_daily_volume" in str(refusal)


def test_positions_from_latest_snapshot_plus_later_trades_and_transfers(ledger: Ledger) -> None:
    """
    kraken: snapshot Jan 1 (old) then Jan 2 00:00 USD 10000 BTC 1; trades at the snapshot
    time are inside it; a buy after it; a deposit after it; a failed withdrawal (ignored).
    paper: never snapshotted, so its whole trade history counts.
    """
    t0 = datetime(2025, 1, 2)
    ledger.append("balance_snapshots", snapshot(datetime(2025, 1, 1), "kraken", USD="1", BTC="9"))
    ledger.append("balance_snapshots", snapshot(t0, "kraken", USD="10000", BTC="1"))
    ledger.append(
        "trades",
        [
            trade(datetime(2024, 12, 31), "buy", "5", "1000"),  # before: in the snapshot
            trade(t0, "buy", "5", "1000"),  # at the snapshot time: in the snapshot
            trade(datetime(2025, 1, 2, 8), "buy", "0.1", "50000", fee="5"),
            trade(datetime(2024, 6, 1), "buy", "2", "100", exchange="paper", symbol="ETH/USD"),
            trade(
                datetime(2025, 1, 2, 9), "sell", "0.5", "120", exchange="paper", symbol="ETH/USD"
            ),
        ],
    )
    ledger.append(
        "transfers",
        [
            {"timestamp": datetime(2025, 1, 2, 9), "exchange": "kraken", "kind": "deposit",
             "asset": "USD", "amount": D("1000"), "status": "ok", "source": "test"},
            {"timestamp": datetime(2025, 1, 2, 9), "exchange": "kraken", "kind": "withdrawal",
             "asset": "BTC", "amount": D("1"), "status": "failed", "source": "test"},
        ],
    )  # fmt: skip
    e = build_exposure(ledger, {"BTC": D("50000"), "ETH": D("100")}, NOW)
    assert e.quantities["BTC"] == D("1.1")
    assert e.quantities["USD"] == D("10000") - D("5000") - D("5") + D("1000") - D("200") + D("60")
    assert e.quantities["ETH"] == D("1.5")
    assert e.positions_usd["BTC"] == D("55000")
    assert e.positions_usd["ETH"] == D("150")
    assert e.portfolio_usd == D("55000") + D("150") + D("5855")


def test_held_asset_without_price_is_named_not_zeroed(ledger: Ledger) -> None:
    ledger.append("balance_snapshots", snapshot(datetime(2025, 1, 1), "kraken", USD="5", DOGE="9"))
    e = build_exposure(ledger, {}, NOW)
    assert e.unpriced == frozenset({"DOGE"})
    assert "DOGE" not in e.positions_usd and e.portfolio_usd == D("5")
    p = OrderProposal("kraken", "DOGE/USD", "DOGE", "USD", "buy", "limit", D("1"), D("1"))
    refusal = first_refusal(p, e, RiskConfig())
    assert refusal is not None and "no USD price for DOGE" in str(refusal)


def _order(cid: str, exchange: str = "kraken") -> dict[str, Any]:
    return {"timestamp": NOW, "client_order_id": cid, "exchange": exchange, "symbol": "BTC/USD",
            "side": "buy", "type": "limit", "amount": D("1"), "price": D("1"), "source": "test",
            "live": False}  # fmt: skip


def _event(
    cid: str, event: str, status: str | None = None, exchange: str = "kraken"
) -> dict[str, Any]:
    return {"timestamp": NOW, "client_order_id": cid, "exchange": exchange, "event": event,
            "status": status}  # fmt: skip


def test_open_orders_are_those_whose_latest_event_is_not_terminal(ledger: Ledger) -> None:
    ledger.append(
        "orders",
        [_order(c) for c in ("intent", "sent", "filled", "cxl", "nf", "closed", "reopen")]
        + [_order("sent", exchange="paper")],
    )
    ledger.append(
        "order_events",
        [
            _event("sent", "sent", "open"),
            _event("filled", "sent", "open"),
            _event("filled", "filled", "closed"),
            _event("cxl", "canceled"),
            _event("nf", "not_found"),
            _event("closed", "update", "closed"),
            _event("reopen", "failed"),
            _event("reopen", "sent", "open"),  # latest by seq wins
            _event("sent", "rejected", exchange="paper"),
        ],
    )
    e = build_exposure(ledger, {}, NOW)
    # open: intent (no event yet: may be live), sent, reopen
    assert e.open_orders == 3


def test_high_water_mark_from_snapshots_valued_with_recorded_prices(ledger: Ledger) -> None:
    """
    Jan 1 00:00  kraken USD 50000 BTC 1   (BTC 50000 in `prices`)  -> 100000
    Jan 1 00:00  paper  USD 20000                                   -> portfolio 120000
    Jan 1 12:00  kraken USD 50000 BTC 1   (BTC 30000)               -> 100000 with paper
    now          BTC at 40000                                       -> 110000
    """
    ledger.append(
        "prices",
        [
            {"timestamp": datetime(2024, 12, 31), "asset": "BTC", "quote": "USD",
             "price": D("50000"), "source": "t"},
            {"timestamp": datetime(2025, 1, 1, 6), "asset": "BTC", "quote": "USD",
             "price": D("30000"), "source": "t"},
        ],
    )  # fmt: skip
    ledger.append(
        "balance_snapshots", snapshot(datetime(2025, 1, 1), "kraken", USD="50000", BTC="1")
    )
    ledger.append("balance_snapshots", snapshot(datetime(2025, 1, 1), "paper", USD="20000"))
    ledger.append(
        "balance_snapshots", snapshot(datetime(2025, 1, 1, 12), "kraken", USD="50000", BTC="1")
    )
    e = build_exposure(ledger, {"BTC": D("40000")}, NOW)
    assert e.portfolio_usd == D("110000")
    assert e.high_water_usd == D("120000")
    assert drawdown_pct(e.portfolio_usd, e.high_water_usd).quantize(D("0.0001")) == D("8.3333")


def test_withdrawal_is_not_a_drawdown(ledger: Ledger) -> None:
    ledger.append("balance_snapshots", snapshot(datetime(2025, 1, 1), "kraken", USD="100000"))
    ledger.append(
        "transfers",
        [{"timestamp": datetime(2025, 1, 1, 6), "exchange": "kraken", "kind": "withdrawal",
          "asset": "USD", "amount": D("30000"), "status": "ok", "source": "test"}],
    )  # fmt: skip
    e = build_exposure(ledger, {}, NOW)
    assert e.portfolio_usd == D("70000")
    assert e.high_water_usd == D("70000")
    risk = RiskConfig(max_drawdown_pct=D("15"))
    p = OrderProposal("kraken", "BTC/USD", "BTC", "USD", "buy", "limit", D("0.01"), D("100"))
    assert first_refusal(p, replace(e, free_balances={"USD": D(10)}), risk) is None


def test_realised_pnl_today_average_cost(ledger: Ledger) -> None:
    """Bought 1 @ 50000 and 1 @ 70000 (average 60000); today sold 0.5 @ 65000 with a $5 fee."""
    ledger.append(
        "trades",
        [
            trade(datetime(2024, 5, 1), "buy", "1", "50000"),
            trade(datetime(2024, 6, 1), "buy", "1", "70000"),
            trade(datetime(2025, 1, 2, 9), "sell", "0.5", "65000", fee="5"),
        ],
    )
    assert build_exposure(ledger, {"BTC": D("65000")}, NOW).realised_pnl_today_usd is None
    e = build_exposure(ledger, {"BTC": D("65000")}, NOW, with_pnl=True)
    assert e.realised_pnl_today_usd == D("32500") - D("30000") - D("5")
    assert realised_pnl_today(ledger, {}, NOW) == D("2495")
    # Tomorrow nothing was sold yet.
    assert realised_pnl_today(ledger, {}, datetime(2025, 1, 3, 1, tzinfo=UTC)) == 0


def test_end_to_end_refusal_from_the_ledger(ledger: Ledger) -> None:
    """49,500 USD traded today: a 600 USD order breaks the 50,000 daily volume limit."""
    ledger.append("balance_snapshots", snapshot(datetime(2025, 1, 1), "kraken", USD="100000"))
    ledger.append("trades", [trade(datetime(2025, 1, 2, 9), "buy", "0.99", "50000")])
    e = build_exposure(ledger, {"BTC": D("50000")}, NOW, free_balances={"USD": D("50500")})
    p = OrderProposal("kraken", "BTC/USD", "BTC", "USD", "buy", "market", D("0.012"), D("50000"))
    risk = RiskConfig(max_position_size=D("1E6"))
    refusal = first_refusal(p, e, risk)
    assert refusal is not None and refusal.exit_code == 3
    assert str(refusal) == (
        "daily volume $49,500.00 + order $600.00 = $50,100.00 exceeds risk.max_daily_volume "
        "$50,000.00 (headroom $500.00)"
    )
    p_ok = OrderProposal("kraken", "BTC/USD", "BTC", "USD", "buy", "market", D("0.01"), D("50000"))
    assert first_refusal(p_ok, e, risk) is None
