"""The paper exchange: exact Decimal fills and fees, resting limits, persistence, locking."""

from __future__ import annotations

import decimal
import json
import multiprocessing
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ccxtkit.config import PaperSettings
from ccxtkit.errors import ExchangeError
from ccxtkit.exchanges.factory import open_exchange
from ccxtkit.exchanges.paper import PaperExchange
from ccxtkit.exchanges.paper_feed import usd_price
from ccxtkit.workspace import Workspace

D = Decimal
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_floats() -> Iterator[None]:
    """Any float mixed into Decimal arithmetic raises (STYLE: the FloatOperation trap)."""
    ctx = decimal.getcontext()
    before = ctx.traps[decimal.FloatOperation]
    ctx.traps[decimal.FloatOperation] = True
    yield
    ctx.traps[decimal.FloatOperation] = before


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def paper(path: Path, clock: Clock | None = None, **settings: object) -> PaperExchange:
    ex = PaperExchange("paper", PaperSettings.model_validate(settings), path, clock or Clock())
    return ex


@pytest.fixture
def ex(tmp_path: Path) -> PaperExchange:
    """USD 100000, fee 0.1%, slippage 5 bps, BTC pinned at 60000."""
    e = paper(tmp_path / "state" / "paper_p.json")
    e.set_price("BTC/USD", D("60000"))
    return e


def test_market_buy_and_sell_move_balances_and_fees_exactly(ex: PaperExchange) -> None:
    buy = ex.create_order("BTC/USD", "buy", "market", D("0.1"), None, "c1")
    # 60000 + 5 bps = 60030; cost 6003; fee 0.1% = 6.003 USD
    assert (buy.status, buy.filled, buy.average, buy.fee) == (
        "closed",
        D("0.1"),
        D("60030"),
        D("6.003"),
    )
    [fill] = buy.trades
    assert (fill.price, fill.cost, fill.fee, fill.fee_currency) == (
        D("60030"), D("6003.0"), D("6.003"), "USD"
    )  # fmt: skip
    bal = ex.fetch_balance()
    assert bal["USD"].total == D("100000") - D("6003") - D("6.003") == D("93990.997")
    assert bal["BTC"].total == D("0.1")
    sell = ex.create_order("BTC/USD", "sell", "market", D("0.04"), None, "c2")
    # 60000 - 5 bps = 59970; cost 2398.8; fee 2.3988
    assert (sell.average, sell.fee) == (D("59970"), D("2.3988"))
    bal = ex.fetch_balance()
    assert bal["USD"].total == D("93990.997") + D("2398.8") - D("2.3988") == D("96387.3982")
    assert bal["BTC"].total == D("0.06")
    assert [t.client_order_id for t in ex.fetch_my_trades(T0)] == ["c1", "c2"]


def test_limit_order_rests_then_fills_when_price_crosses(ex: PaperExchange) -> None:
    order = ex.create_order("BTC/USD", "buy", "limit", D("0.1"), D("59000"), "lim")
    assert order.status == "open" and order.remaining == D("0.1")
    usd = ex.fetch_balance()["USD"]
    assert usd.used == D("5905.9") and usd.free == D("94094.1")  # 5900 + fee held
    ex.set_price("BTC/USD", D("59500"))  # not crossed yet
    assert ex.fetch_order(order.id, "BTC/USD").status == "open"
    ex.set_price("BTC/USD", D("58900"))
    filled = ex.fetch_order(order.id, "BTC/USD")
    assert (filled.status, filled.average, filled.fee) == ("closed", D("59000"), D("5.9"))
    bal = ex.fetch_balance()
    assert bal["USD"].total == D("100000") - D("5905.9") and bal["USD"].used == 0
    assert bal["BTC"].total == D("0.1")


def test_marketable_limit_fills_at_once_no_worse_than_its_price(ex: PaperExchange) -> None:
    order = ex.create_order("BTC/USD", "buy", "limit", D("0.01"), D("61000"), "mkt-lim")
    assert order.status == "closed" and order.average == D("60030")


def test_state_persists_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    a = paper(path)
    a.set_price("ETH/USD", D("3000"))
    a.create_order("ETH/USD", "buy", "market", D("2"), None, "p1")
    a.create_order("ETH/USD", "buy", "limit", D("1"), D("2500"), "p2")
    a.simulate_deposit("SOL", D("10"))
    b = paper(path)
    assert b.fetch_balance() == a.fetch_balance()
    assert b.fetch_balance()["ETH"].total == D("2")
    assert [o.client_order_id for o in b.fetch_open_orders()] == ["p2"]
    assert b.fetch_ticker("ETH/USD").last == D("3000")  # the override persisted
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert all(isinstance(v, str) for v in stored["balances"].values())  # Decimal as text


def test_insufficient_funds_is_refused_like_an_exchange(ex: PaperExchange) -> None:
    with pytest.raises(ExchangeError, match="insufficient funds") as info:
        ex.create_order("BTC/USD", "buy", "market", D("2"), None, "big")
    assert info.value.exit_code == 5
    with pytest.raises(ExchangeError, match="insufficient funds"):
        ex.create_order("BTC/USD", "sell", "market", D("0.001"), None, "nothing-to-sell")
    # Funds held by a resting order are not available to the next one.
    ex.create_order("BTC/USD", "buy", "limit", D("1.6"), D("50000"), "hold")  # holds 80080
    with pytest.raises(ExchangeError, match="insufficient funds"):
        ex.create_order("BTC/USD", "buy", "market", D("0.4"), None, "too-much")
    assert ex.fetch_balance()["USD"].total == D("100000")
    assert ex.find_order_by_client_id("big", "BTC/USD") is None


def test_client_order_ids_are_unique_among_all_orders(ex: PaperExchange) -> None:
    ex.create_order("BTC/USD", "buy", "market", D("0.01"), None, "once")  # closed now
    with pytest.raises(ExchangeError, match="duplicate client order id"):
        ex.create_order("BTC/USD", "buy", "market", D("0.01"), None, "once")
    assert len(ex.fetch_my_trades(T0)) == 1
    assert ex.fetch_balance()["BTC"].total == D("0.01")


def test_find_order_by_client_id_open_and_closed(ex: PaperExchange) -> None:
    closed = ex.create_order("BTC/USD", "buy", "market", D("0.01"), None, "closed-1")
    rest = ex.create_order("BTC/USD", "buy", "limit", D("0.01"), D("50000"), "open-1")
    found_closed = ex.find_order_by_client_id("closed-1", "BTC/USD")
    found_open = ex.find_order_by_client_id("open-1", "BTC/USD")
    assert found_closed is not None and (found_closed.id, found_closed.status) == (
        closed.id,
        "closed",
    )
    assert found_open is not None and (found_open.id, found_open.status) == (rest.id, "open")
    assert ex.find_order_by_client_id("never", "BTC/USD") is None


def test_cancel_and_cancel_all(ex: PaperExchange) -> None:
    a = ex.create_order("BTC/USD", "buy", "limit", D("0.1"), D("50000"), "a")
    b = ex.create_order("BTC/USD", "buy", "limit", D("0.1"), D("51000"), "b")
    ex.set_price("ETH/USD", D("3000"))
    ex.create_order("ETH/USD", "buy", "market", D("1"), None, "eth")
    c = ex.create_order("ETH/USD", "sell", "limit", D("1"), D("4000"), "c")
    ex.cancel_order(a.id, "BTC/USD")
    assert ex.fetch_order(a.id, "BTC/USD").status == "canceled"
    ex.cancel_order(a.id, "BTC/USD")  # already cancelled: fine
    assert ex.fetch_balance()["USD"].used == D("5105.1")  # only b holds funds now
    assert sorted(ex.cancel_all_orders()) == sorted([b.id, c.id])
    assert ex.fetch_open_orders() == [] and ex.cancel_all_orders() == []
    bal = ex.fetch_balance()
    assert bal["USD"].used == 0 and bal["ETH"].free == D("1")
    with pytest.raises(ExchangeError, match="it is closed"):
        ex.cancel_order(ex.find_order_by_client_id("eth", "ETH/USD").id, "ETH/USD")  # type: ignore[union-attr]


def test_a_cancel_all_confirms_itself_until_the_next_call(ex: PaperExchange) -> None:
    """The kill switch reads no open orders after paper's atomic cancel-all: it answered
    every id it cancelled. Any later call ends that confirmation."""
    assert ex.open_orders_after_cancel() is None
    ex.create_order("BTC/USD", "buy", "limit", D("0.1"), D("50000"), "a")
    assert ex.open_orders_after_cancel() is None
    assert len(ex.cancel_all_orders()) == 1
    assert ex.open_orders_after_cancel() == []
    ex.create_order("BTC/USD", "buy", "limit", D("0.1"), D("50000"), "b")
    assert ex.open_orders_after_cancel() is None
    with pytest.raises(ExchangeError, match="not found"):
        ex.cancel_order("P-999", "BTC/USD")


def test_simulated_transfers_are_reported(tmp_path: Path) -> None:
    clock = Clock()
    ex = paper(tmp_path / "p.json", clock)
    dep = ex.simulate_deposit("BTC", D("0.5"), txid="tx-in")
    clock.now = T0 + timedelta(hours=1)
    out = ex.simulate_withdrawal("BTC", D("0.2"), "bc1qexternal")
    sent = ex.withdraw("USD", D("1000"), "bank-1")
    assert ex.fetch_deposits(T0) == [dep] and dep.txid == "tx-in" and dep.kind == "deposit"
    assert ex.fetch_withdrawals(T0) == [out, sent]
    assert ex.fetch_withdrawals(T0, until=T0 + timedelta(minutes=30)) == []
    assert out.address == "bc1qexternal" and out.amount == D("0.2")
    bal = ex.fetch_balance()
    assert bal["BTC"].total == D("0.3") and bal["USD"].total == D("99000")
    with pytest.raises(ExchangeError, match="insufficient funds"):
        ex.withdraw("BTC", D("0.31"), "bc1q")


def test_feed_is_deterministic_and_bounded(tmp_path: Path) -> None:
    a = paper(tmp_path / "a.json").fetch_ticker("BTC/USD")
    b = paper(tmp_path / "b.json").fetch_ticker("BTC/USD")
    assert a.last == b.last  # same minute, same price, in any run
    assert usd_price("BTC", T0) == usd_price("BTC", T0 + timedelta(seconds=59))
    prices = [usd_price("ETH", T0 + timedelta(minutes=17 * i)) for i in range(300)]
    assert len(set(prices)) > 250  # it moves
    assert all(D("2690") < p < D("3310") for p in prices)  # within ±10.2% of 3000
    assert usd_price("USDC", T0) == 1
    eth_btc = paper(tmp_path / "c.json").fetch_ticker("ETH/BTC").last
    assert abs(eth_btc - usd_price("ETH", T0) / usd_price("BTC", T0)) < D("0.00001")
    candles = paper(tmp_path / "d.json").fetch_ohlcv("BTC/USD", "1h", T0 - timedelta(hours=5))
    assert len(candles) == 6 and candles[0].timestamp == T0 - timedelta(hours=5)
    assert all(c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high for c in candles)


def test_markets_include_the_configured_quote(tmp_path: Path) -> None:
    ex = paper(tmp_path / "p.json", quote="USDT", starting_balances={"USDT": D("500")})
    assert {"BTC/USD", "ETH/BTC", "USDC/USD", "BTC/USDT", "USDC/USDT"} <= set(ex.load_markets())
    order = ex.create_order("USDC/USDT", "buy", "market", D("100"), None, "usdc")
    assert order.average == D("1.0005")  # 1 + 5 bps on the 0.0001 tick


def test_fault_hooks(tmp_path: Path) -> None:
    with pytest.raises(ExchangeError, match="did not answer"):
        paper(tmp_path / "f.json", fail_calls=True).fetch_balance()
    slow = paper(tmp_path / "s.json", latency_ms=D("50"))
    start = time.monotonic()
    slow.fetch_balance()
    assert time.monotonic() - start >= 0.05


def test_factory_opens_paper_from_the_workspace(tmp_path: Path) -> None:
    config = tmp_path / "config" / "trading_config.yaml"
    config.parent.mkdir()
    config.write_text(
        "exchanges:\n  sim:\n    id: paper\n    secrets: none\n"
        "    paper:\n      starting_balances: {USD: 2500.50}\n"
    )
    config.chmod(0o600)
    ws = Workspace.locate(str(tmp_path))
    client = open_exchange(ws, "sim")
    assert isinstance(client._inner, PaperExchange)  # type: ignore[attr-defined]  # timed wrapper
    assert client.fetch_balance()["USD"].total == D("2500.50")
    # Every call is timed for the metrics: the latency file has the balance read.
    latency = (ws.state_dir / "api_latency.jsonl").read_text()
    assert '"exchange": "sim"' in latency and '"method": "fetch_balance"' in latency
    state = ws.state_dir / "paper_sim.json"
    assert state.exists() and stat.S_IMODE(state.stat().st_mode) == 0o600


def _place_orders(path: str, worker: int, count: int, go: Any) -> None:
    ex = PaperExchange("paper", PaperSettings(), Path(path))
    go.wait(30)  # both processes start placing at the same moment
    for i in range(count):
        ex.create_order("BTC/USD", "buy", "market", D("0.001"), None, f"w{worker}-{i}")


def test_two_processes_placing_orders_leave_a_consistent_state(tmp_path: Path) -> None:
    path = tmp_path / "shared.json"
    paper(path).set_price("BTC/USD", D("60000"))
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_place_orders, args=(str(path), w, 15, go)) for w in (1, 2)]
    for p in procs:
        p.start()
    time.sleep(0.5)
    go.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ex = paper(path)
    trades = ex.fetch_my_trades(T0 - timedelta(days=3650))
    assert len(trades) == 30 and len({t.id for t in trades}) == 30
    assert len({t.client_order_id for t in trades}) == 30
    bal = ex.fetch_balance()
    assert bal["BTC"].total == D("0.030")
    assert bal["USD"].total == D("100000") - sum((t.cost + t.fee for t in trades), D(0))
    assert bal["USD"].total == D("100000") - 30 * (D("60.03") + D("0.06003"))
