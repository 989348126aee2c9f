"""Pre-trade risk limits: every limit at, just under and just over its boundary, in Decimal."""

from __future__ import annotations

import decimal
import re
from collections.abc import Iterator
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccxtkit.config import RiskConfig
from ccxtkit.errors import InputError, RiskLimitError
from ccxtkit.risk.limits import (
    Exposure,
    OrderProposal,
    check_order,
    drawdown_pct,
    enforce,
    first_refusal,
    open_positions,
    order_value_usd,
)

TICK = D("1E-18")  # the smallest amount the ledger can hold
RISK = RiskConfig(
    max_order_value=D("10000"),
    max_daily_volume=D("50000"),
    max_position_size=D("25000"),
    max_drawdown_pct=D("15"),
    max_open_orders=5,
)
RICH = {"USD": D("1E9"), "USDT": D("1E9"), "BTC": D("1E6"), "ETH": D("1E6")}


@pytest.fixture(autouse=True)
def _no_floats() -> Iterator[None]:
    """Any float creeping into Decimal arithmetic raises instead of rounding silently."""
    with decimal.localcontext() as ctx:
        ctx.traps[decimal.FloatOperation] = True
        yield


def order(
    amount: str | D,
    price: str | D = "1",
    side: str = "buy",
    symbol: str = "BTC/USD",
    quote_usd: D | None = None,
    fee_rate: str = "0",
) -> OrderProposal:
    base, quote = symbol.split("/")
    return OrderProposal(
        "kraken", symbol, base, quote, side, "limit", D(amount), D(price), quote_usd, D(fee_rate)
    )


def exposure(**kw: object) -> Exposure:
    base: dict[str, object] = {
        "daily_volume_usd": D(0),
        "positions_usd": {},
        "portfolio_usd": D("100000"),
        "high_water_usd": D("100000"),
        "open_orders": 0,
        "free_balances": RICH,
    }
    base.update(kw)
    return Exposure(**base)  # type: ignore[arg-type]


def verdict(p: OrderProposal, e: Exposure, name: str) -> bool:
    (result,) = [r for r in check_order(p, e, RISK) if r.name == name]
    return result.ok


EDGES = [(-TICK, True), (D(0), True), (TICK, False)]  # just under, at, just over


@pytest.mark.parametrize(("delta", "ok"), EDGES)
def test_max_order_value_boundary(delta: D, ok: bool) -> None:
    p = order(D("10000") + delta)
    assert verdict(p, exposure(), "risk.max_order_value") is ok
    refusal = first_refusal(p, exposure(), RISK)
    assert (refusal is None) is ok


@pytest.mark.parametrize(("delta", "ok"), EDGES)
def test_max_order_value_boundary_at_a_real_price(delta: D, ok: bool) -> None:
    # 0.2 BTC at 50,000 is exactly 10,000; one smallest BTC unit more is 5E-14 USD over.
    p = order(D("0.2") + delta, "50000")
    assert verdict(p, exposure(), "risk.max_order_value") is ok


def test_order_value_refusal_message_names_limit_value_and_headroom() -> None:
    with pytest.raises(RiskLimitError) as err:
        enforce(order("12000"), exposure(), RISK)
    assert err.value.exit_code == 3
    assert str(err.value) == (
        "order value $12,000.00 exceeds risk.max_order_value $10,000.00 (headroom $10,000.00)"
    )


def test_one_unit_over_is_visible_in_the_message() -> None:
    """At cents both would print $10,000.00; the message keeps the digits that differ."""
    refusal = first_refusal(order(D("10000") + TICK), exposure(), RISK)
    assert refusal is not None
    assert "$10,000.000000000000000001 exceeds risk.max_order_value" in str(refusal)


@pytest.mark.parametrize(("delta", "ok"), EDGES)
def test_max_daily_volume_boundary(delta: D, ok: bool) -> None:
    e = exposure(daily_volume_usd=D("49000"))
    p = order(D("1000") + delta)
    assert verdict(p, e, "risk.max_daily_volume") is ok
    refusal = first_refusal(p, e, RISK)
    assert (refusal is None) is ok
    if not ok:
        assert "risk.max_daily_volume" in str(refusal)
        assert "headroom $1,000.00" in str(refusal)


def test_daily_volume_counts_sells_too() -> None:
    e = exposure(daily_volume_usd=D("49999"))
    assert not verdict(order("2", side="sell"), e, "risk.max_daily_volume")


def test_daily_volume_refuses_when_todays_trades_cannot_be_valued() -> None:
    e = exposure(volume_unpriced=frozenset({"EUR"}))
    refusal = first_refusal(order("1"), e, RISK)
    assert refusal is not None and "EUR" in str(refusal) and "max_daily_volume" in str(refusal)


@pytest.mark.parametrize(("delta", "ok"), EDGES)
def test_max_position_size_boundary(delta: D, ok: bool) -> None:
    e = exposure(positions_usd={"BTC": D("24000")})
    p = order(D("1000") + delta)
    assert verdict(p, e, "risk.max_position_size") is ok
    assert (first_refusal(p, e, RISK) is None) is ok


def test_position_sell_into_usd_reduces_and_passes_even_over_the_limit() -> None:
    e = exposure(positions_usd={"BTC": D("90000")})
    assert verdict(order("1000", side="sell"), e, "risk.max_position_size")
    assert not verdict(order("1"), e, "risk.max_position_size")


def test_position_sell_for_a_non_usd_quote_grows_the_quote_position() -> None:
    # Selling ETH for BTC acquires BTC: the BTC position is what the limit watches.
    e = exposure(positions_usd={"BTC": D("24000"), "ETH": D("0")})
    p = order("20", "0.05", side="sell", symbol="ETH/BTC", quote_usd=D("1000"))  # $1,000
    assert verdict(p, e, "risk.max_position_size")
    p = order(D("20") + TICK, "0.05", side="sell", symbol="ETH/BTC", quote_usd=D("1000"))
    assert not verdict(p, e, "risk.max_position_size")


def test_position_of_an_unpriced_held_asset_is_refused_not_zero() -> None:
    e = exposure(unpriced=frozenset({"BTC"}))
    refusal = first_refusal(order("1"), e, RISK)
    assert refusal is not None and "no USD price for BTC" in str(refusal)


@pytest.mark.parametrize(
    ("portfolio", "ok"),
    [
        (D("85000") + TICK, True),  # just under 15 % down
        (D("85000"), False),  # exactly 15 % down: stop (the documented rule)
        (D("85000") - TICK, False),  # just over
    ],
)
def test_max_drawdown_boundary(portfolio: D, ok: bool) -> None:
    e = exposure(portfolio_usd=portfolio, high_water_usd=D("100000"))
    assert verdict(order("1"), e, "risk.max_drawdown_pct") is ok
    if not ok:
        refusal = first_refusal(order("1"), e, RISK)
        assert refusal is not None and "risk.max_drawdown_pct" in str(refusal)
        assert "headroom 0%" in str(refusal)


def test_drawdown_still_allows_a_sell_that_reduces_a_position() -> None:
    e = exposure(portfolio_usd=D("50000"), high_water_usd=D("100000"))
    assert first_refusal(order("1", side="sell"), e, RISK) is None
    # ... but not a sell into a non-USD quote, which takes a new BTC position.
    p = order("1", "0.05", side="sell", symbol="ETH/BTC", quote_usd=D("60000"))
    refusal = first_refusal(p, e, RISK)
    assert refusal is not None and "max_drawdown_pct" in str(refusal)


def test_drawdown_limit_zero_disables_the_check() -> None:
    risk = RISK.model_copy(update={"max_drawdown_pct": D(0)})
    e = exposure(portfolio_usd=D("1"), high_water_usd=D("100000"))
    assert first_refusal(order("1"), e, risk) is None


def test_drawdown_pct() -> None:
    assert drawdown_pct(D("85000"), D("100000")) == D("15")
    assert drawdown_pct(D("120000"), D("100000")) == 0
    assert drawdown_pct(D("5"), D("0")) == 0


@pytest.mark.parametrize(("delta", "ok"), EDGES)
def test_buy_balance_boundary_includes_the_fee(delta: D, ok: bool) -> None:
    # 1,000 USD of BTC at a 0.26 % fee needs 1,002.60 USD free.
    e = exposure(free_balances={"USD": D("1002.6") - delta})
    p = order("0.02", "50000", fee_rate="0.0026")
    assert verdict(p, e, "available balance") is ok
    if not ok:
        refusal = first_refusal(p, e, RISK)
        assert refusal is not None
        assert "buy needs 1,002.6 USD (cost 1,000 + est. fee 2.6)" in str(refusal)


@pytest.mark.parametrize(("delta", "ok"), EDGES)
def test_sell_balance_boundary(delta: D, ok: bool) -> None:
    e = exposure(free_balances={"BTC": D("0.5") - delta, "USD": D(0)})
    assert verdict(order("0.5", "100", side="sell"), e, "available balance") is ok


def test_missing_balance_counts_as_zero() -> None:
    refusal = first_refusal(order("1", side="sell"), exposure(free_balances={}), RISK)
    assert refusal is not None and "available balance of 0 BTC on kraken" in str(refusal)


@pytest.mark.parametrize(("open_now", "ok"), [(3, True), (4, True), (5, False)])
def test_max_open_orders_boundary(open_now: int, ok: bool) -> None:
    # limit 5: with 4 open this order makes 5 (at the limit), with 5 open it makes 6.
    e = exposure(open_orders=open_now)
    assert verdict(order("1"), e, "risk.max_open_orders") is ok
    if not ok:
        refusal = first_refusal(order("1"), e, RISK)
        assert str(refusal) == (
            "open orders 5 + this order = 6 exceeds risk.max_open_orders 5 (headroom 0)"
        )


def test_non_usd_quote_without_a_price_is_refused_not_valued_at_zero() -> None:
    p = order("1", "0.05", symbol="ETH/BTC")
    assert order_value_usd(p) is None
    refusal = first_refusal(p, exposure(), RISK)
    assert refusal is not None
    assert "no USD price for BTC, the quote currency of ETH/BTC" in str(refusal)


def test_non_usd_quote_is_valued_with_its_usd_price_and_stablecoins_at_one() -> None:
    assert order_value_usd(order("2", "0.05", symbol="ETH/BTC", quote_usd=D("60000"))) == D("6000")
    assert order_value_usd(order("2", "150", symbol="SOL/USDT")) == D("300")


def test_all_checks_pass_and_report_headroom() -> None:
    results = check_order(order("1000"), exposure(daily_volume_usd=D("100")), RISK)
    assert all(r.ok for r in results)
    assert {r.name for r in results} >= {
        "risk.max_order_value",
        "risk.max_daily_volume",
        "risk.max_position_size",
        "risk.max_drawdown_pct",
        "available balance",
        "risk.max_open_orders",
    }
    vol = next(r for r in results if r.name == "risk.max_daily_volume")
    assert vol.headroom == D("49900") and vol.value == D("1100")


@pytest.mark.parametrize(
    ("kw", "what"),
    [({"amount": D(0)}, "amount"), ({"price": D("-1")}, "price"), ({"side": "short"}, "side")],
)
def test_bad_proposals_are_input_errors(kw: dict[str, object], what: str) -> None:
    args: dict[str, object] = {
        "exchange": "k",
        "symbol": "BTC/USD",
        "base": "BTC",
        "quote": "USD",
        "side": "buy",
        "type": "market",
        "amount": D(1),
        "price": D(1),
    }
    args.update(kw)
    with pytest.raises(InputError, match=what):
        OrderProposal(**args)  # type: ignore[arg-type]


def test_open_positions_counts_non_cash_assets_above_dust() -> None:
    e = exposure(quantities={"BTC": D("0.1"), "ETH": D("1E-9"), "USD": D("5"), "SOL": D("-1")})
    assert open_positions(e) == 2
    assert open_positions(e, dust=D("1E-8")) == 1


amounts = st.decimals(min_value=D("1E-8"), max_value=D("1E4"), places=8)
money = st.decimals(min_value=D(0), max_value=D("1E6"), places=2)


@settings(max_examples=200, deadline=None)
@given(
    amount=amounts,
    price=st.decimals(min_value=D("0.01"), max_value=D("1E5"), places=2),
    volume=money,
    position=money,
    free=money,
    open_orders=st.integers(0, 8),
    portfolio=money,
    side=st.sampled_from(["buy", "sell"]),
)
def test_refusals_always_name_a_limit_and_never_show_negative_headroom(
    amount: D,
    price: D,
    volume: D,
    position: D,
    free: D,
    open_orders: int,
    portfolio: D,
    side: str,
) -> None:
    e = exposure(
        daily_volume_usd=volume,
        positions_usd={"BTC": position},
        free_balances={"USD": free, "BTC": free},
        open_orders=open_orders,
        portfolio_usd=portfolio,
    )
    p = order(amount, price, side=side)
    results = check_order(p, e, RISK)
    assert all(r.headroom >= 0 for r in results)
    refusal = first_refusal(p, e, RISK)
    failed = [r for r in results if not r.ok]
    assert (refusal is None) == (not failed)
    if refusal is not None:
        text = str(refusal)
        assert text == failed[0].message
        assert re.search(r"risk\.max_\w+|available balance", text)
        assert "headroom" in text
        assert not re.search(r"headroom -|headroom \$-", text)
    # The order-value verdict is exactly value <= limit, whatever the other limits say.
    value_ok = next(r for r in results if r.name == "risk.max_order_value").ok
    assert value_ok == (amount * price <= RISK.max_order_value)


# -- worst fill price (issue 13, finding 1) ---------------------------------------------------
def _priced(side: str, kind: str, price: str, **kw: D) -> OrderProposal:
    return OrderProposal(
        "kraken",
        "BTC/USD",
        "BTC",
        "USD",
        side,
        kind,
        D("1"),
        D(price),
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("side", "kind", "price", "expected"),
    [
        ("buy", "market", "60000", D("60030")),  # at the ask
        ("buy", "limit", "59000", D("59000")),  # at its limit
        ("buy", "limit", "70000", D("70000")),  # the limit is the worst it can pay
        ("sell", "market", "60000", D("59970")),  # at the bid
        ("sell", "limit", "0.01", D("59970")),  # marketable: fills at the bid, not its limit
        ("sell", "limit", "65000", D("65000")),  # resting above the bid: at its limit
    ],
)
def test_orders_are_valued_at_their_worst_fill_price(
    side: str, kind: str, price: str, expected: D
) -> None:
    from ccxtkit.risk.limits import fill_price

    p = _priced(side, kind, price, bid=D("59970"), ask=D("60030"))
    assert fill_price(p) == expected
    assert order_value_usd(p) == expected


def test_a_buy_creates_a_position_valued_at_the_market() -> None:
    from ccxtkit.risk.limits import position_added_usd

    p = _priced("buy", "limit", "90000", base_usd=D("60000"))
    assert order_value_usd(p) == D("90000") and position_added_usd(p) == D("60000")
    eth_for_btc = OrderProposal(
        "kraken", "ETH/BTC", "ETH", "BTC", "sell", "limit", D("1"), D("0.00001"),
        quote_usd=D("60000"), bid=D("0.05"),
    )  # fmt: skip
    assert position_added_usd(eth_for_btc) == D("3000")  # the BTC it acquires, at the bid


def test_pending_orders_count_against_position_and_volume() -> None:
    e = exposure(
        positions_usd={"BTC": D("10000")},
        pending_usd={"BTC": D("15000")},
        pending_volume_usd=D("40000"),
    )
    refusal = first_refusal(order("1", "1"), e, RISK)  # $1: position 25,001 > 25,000
    assert refusal is not None and "max_position_size" in refusal.message
    e = exposure(pending_volume_usd=D("49999.5"))
    refusal = first_refusal(order("1", "1"), e, RISK)
    assert refusal is not None and "max_daily_volume" in refusal.message
