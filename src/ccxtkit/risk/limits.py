"""Pre-trade risk limits as pure rules: a proposal and an exposure snapshot in, verdicts out.

No I/O and no clock: the caller builds the `Exposure` (see `risk.exposure`) and passes the
USD price of the order's quote currency. Every limit passes *at* its value and refuses one
smallest unit over it. The checks, in the order they are reported:

- valuation: an order whose quote is not USD-like needs `quote_usd`; without it nothing can
  be valued, so it is refused rather than valued at zero. Every order is valued at the worst
  price it can fill at (`fill_price`): a market buy at the ask, a limit buy at its limit, a
  market sell at the bid, a limit sell at max(limit, bid) (a marketable sell fills at the
  bid, not at its limit).
- risk.max_order_value: order value in USD (amount x fill price x quote_usd).
- risk.max_daily_volume: today's traded volume across all exchanges + the remainders of
  every non-terminal order and unresolved intent (`Exposure.pending_volume_usd`) + this order.
- risk.max_position_size: the position in the asset the order *acquires*, after the order,
  counting what non-terminal orders would add (`Exposure.pending_usd`); the position an
  order creates is valued at the market price (a buy: amount x base_usd; a sell whose quote
  is not USD-like acquires the quote, e.g. selling ETH for BTC grows the BTC position by its
  proceeds). Selling into USD-like cash only reduces risk, and USD-like assets are cash,
  never a position.
- risk.max_position_pct: the same position as a percentage of the portfolio's value
  (capital); 0 or unset disables it.
- risk.max_drawdown_pct: once the portfolio is this far (or further) below its high-water
  mark, orders that add risk are refused. This one limit refuses *at* its value, because
  "stop when the portfolio is this far down" includes "exactly this far", and it matches
  the kill switch's trigger (risk.triggers.max_drawdown); a limit of 0 disables it, as
  there. A sell into USD-like cash (which only reduces a position) is still allowed: a
  desk lets you close out during a drawdown.
- available balance: a buy needs quote free >= cost + estimated fee (cost x fee_rate); a
  sell needs base free >= amount. Balances the exchange does not report count as zero
  (ccxt leaves empty balances out).
- risk.max_open_orders: open orders across all accounts + this order.
- risk.max_open_positions: a buy that opens a position in an asset not yet held (above the
  dust) when that many are already held or pending is refused; unset disables it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING

from ccxtkit.errors import InputError, RiskLimitError
from ccxtkit.money import fmt, is_usd_like

from .texts import pct, qty, same_cents, usd

if TYPE_CHECKING:
    from ccxtkit.config import RiskConfig

ZERO = Decimal(0)
HUNDRED = Decimal(100)
#: Enough digits that amount (38 digits) x price x rate never rounds near a boundary.
_PRECISION = 120


@dataclass(frozen=True)
class OrderProposal:
    """An order about to be sent: amounts in base units, `price` in quote per base.

    For a market order `price` is the current ticker price; for a limit order, its limit.
    `bid`/`ask` are the book's best prices (None when unknown: `price` stands in), `quote_usd`
    the USD price of one unit of the quote currency (ignored when the quote is USD-like),
    `base_usd` the base's USD market price (None: valued through price x quote_usd), and
    `fee_rate` the expected taker fee as a fraction (0.0026 = 0.26 %).
    """

    exchange: str
    symbol: str
    base: str
    quote: str
    side: str  # "buy" | "sell"
    type: str  # "market" | "limit"
    amount: Decimal
    price: Decimal
    quote_usd: Decimal | None = None
    fee_rate: Decimal = ZERO
    bid: Decimal | None = None
    ask: Decimal | None = None
    base_usd: Decimal | None = None

    def __post_init__(self) -> None:
        if self.side not in ("buy", "sell"):
            raise InputError(f"side must be buy or sell, got {self.side!r}")
        if self.amount <= 0:
            raise InputError(f"amount must be greater than 0, got {fmt(self.amount)}")
        if self.price <= 0:
            raise InputError(f"price must be greater than 0, got {fmt(self.price)}")
        if self.fee_rate < 0:
            raise InputError(f"fee rate must not be negative, got {fmt(self.fee_rate)}")


@dataclass(frozen=True)
class Exposure:
    """What the firm holds and has done, as the limits see it (built by `risk.exposure`).

    positions_usd: holdings per asset across accounts valued in USD (only priced assets);
    quantities: the same holdings in units; unpriced: assets held (or traded today) that
    had no USD price, so they are not in positions_usd / portfolio_usd / daily_volume_usd;
    free_balances: free amount per asset on the order's exchange, as the exchange reported;
    realised_pnl_today_usd: None unless asked for (it costs a scan; the limits never use it);
    pending_usd: per asset, what non-terminal orders and unresolved intents would add to its
    position; pending_volume_usd: their unfilled value (it trades today if they fill).
    """

    daily_volume_usd: Decimal
    positions_usd: Mapping[str, Decimal]
    portfolio_usd: Decimal
    high_water_usd: Decimal
    open_orders: int
    free_balances: Mapping[str, Decimal] = field(default_factory=dict)
    realised_pnl_today_usd: Decimal | None = None
    realised_pnl_by_exchange: Mapping[str, Decimal] = field(default_factory=dict)
    quantities: Mapping[str, Decimal] = field(default_factory=dict)
    unpriced: frozenset[str] = frozenset()
    volume_unpriced: frozenset[str] = frozenset()
    as_of: datetime | None = None
    pending_usd: Mapping[str, Decimal] = field(default_factory=dict)
    pending_volume_usd: Decimal = ZERO
    pending_assets: frozenset[str] = frozenset()


@dataclass(frozen=True)
class CheckResult:
    """One limit's verdict: the value it saw, the limit, the headroom left before this order."""

    name: str
    ok: bool
    value: Decimal
    limit: Decimal
    headroom: Decimal
    message: str


def fill_price(p: OrderProposal) -> Decimal:
    """The worst price (quote per base) the order can fill at, for valuing it."""
    if p.side == "buy":
        if p.type == "limit":
            return p.price
        return p.ask if p.ask is not None and p.ask > 0 else p.price
    bid = p.bid if p.bid is not None and p.bid > 0 else None
    if p.type == "limit":
        # A limit sell below the bid is marketable: it fills at the bid, not at its limit.
        return p.price if bid is None else max(p.price, bid)
    return p.price if bid is None else bid


def _quote_rate(p: OrderProposal) -> Decimal | None:
    rate = Decimal(1) if is_usd_like(p.quote) else p.quote_usd
    return None if rate is None or rate <= 0 else rate


def order_value_usd(p: OrderProposal) -> Decimal | None:
    """The order's value in USD at its worst fill price; None when its quote has no price."""
    rate = _quote_rate(p)
    if rate is None:
        return None
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return p.amount * fill_price(p) * rate


def position_added_usd(p: OrderProposal) -> Decimal | None:
    """What the order adds to the position it grows, valued at the market price, in USD."""
    if acquired_asset(p) is None:
        return ZERO
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        if p.side == "buy" and p.base_usd is not None and p.base_usd > 0:
            return p.amount * p.base_usd
        if p.side == "buy":
            rate = _quote_rate(p)
            market = p.ask if p.type == "market" and p.ask else p.price
            return None if rate is None else p.amount * market * rate
        return order_value_usd(p)  # a sell for a non-USD quote acquires its proceeds


def acquired_asset(p: OrderProposal) -> str | None:
    """The non-cash asset whose position this order grows, or None if it only reduces risk."""
    asset = p.base if p.side == "buy" else p.quote
    return None if is_usd_like(asset) else asset


def drawdown_pct(portfolio_usd: Decimal, high_water_usd: Decimal) -> Decimal:
    """How far (in %) the portfolio is below its high-water mark; 0 at or above it."""
    if high_water_usd <= 0 or portfolio_usd >= high_water_usd:
        return ZERO
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        return (high_water_usd - portfolio_usd) / high_water_usd * HUNDRED


def _valuation(p: OrderProposal) -> CheckResult:
    value = order_value_usd(p)
    if value is not None:
        return CheckResult("valuation", True, value, ZERO, ZERO, "order valued in USD")
    return CheckResult(
        "valuation",
        False,
        ZERO,
        ZERO,
        ZERO,
        f"no USD price for {p.quote}, the quote currency of {p.symbol}: cannot value the "
        f"order against the limits (fetch the {p.quote}/USD ticker and pass its price)",
    )


def _cap(name: str, what: str, used: Decimal, add: Decimal, limit: Decimal) -> CheckResult:
    """A USD cap on used + add; headroom is what was left before this order, never < 0."""
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        total = used + add
        headroom = max(limit - used, ZERO)
    ok = total <= limit
    exact = same_cents(total, limit) or same_cents(headroom, ZERO)
    if used == 0 and what == "order value":
        text = f"{what} {usd(total, exact)}"
    else:
        text = f"{what} {usd(used, exact)} + order {usd(add, exact)} = {usd(total, exact)}"
    verb = "within" if ok else "exceeds"
    message = f"{text} {verb} {name} {usd(limit, exact)} (headroom {usd(headroom, exact)})"
    return CheckResult(name, ok, total, limit, headroom, message)


def held_usd(e: Exposure, asset: str) -> Decimal:
    """The position in `asset` the limits count: holdings + what pending orders would add."""
    return max(e.positions_usd.get(asset, ZERO), ZERO) + e.pending_usd.get(asset, ZERO)


def _position(p: OrderProposal, e: Exposure, value: Decimal, risk: RiskConfig) -> CheckResult:
    name = "risk.max_position_size"
    limit = risk.max_position_size
    asset = acquired_asset(p)
    if asset is None:
        return CheckResult(name, True, ZERO, limit, limit, "order reduces risk: no position grows")
    if asset in e.unpriced and asset not in e.positions_usd:
        return CheckResult(
            name,
            False,
            ZERO,
            limit,
            ZERO,
            f"no USD price for {asset}, which is held: cannot check {name} "
            f"(pass a {asset}/USD price when building the exposure)",
        )
    what = f"{asset} position" + (" incl. open orders" if e.pending_usd.get(asset) else "")
    return _cap(name, what, held_usd(e, asset), value, limit)


def _position_pct(p: OrderProposal, e: Exposure, value: Decimal, risk: RiskConfig) -> CheckResult:
    """risk.max_position_pct: the acquired position after the order as a % of the portfolio."""
    name = "risk.max_position_pct"
    limit = risk.max_position_pct or ZERO
    asset = acquired_asset(p)
    if limit <= 0:
        return CheckResult(name, True, ZERO, limit, limit, f"{name} is unset: disabled")
    if asset is None:
        return CheckResult(name, True, ZERO, limit, limit, "order reduces risk: no position grows")
    capital = e.portfolio_usd
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        after = held_usd(e, asset) + value
        share = after / capital * HUNDRED if capital > 0 else None
        cap_usd = capital * limit / HUNDRED if capital > 0 else ZERO
        headroom = max(cap_usd - held_usd(e, asset), ZERO)
    if share is None:
        message = f"portfolio value is {usd(capital)}: a {asset} position cannot fit {name}"
        return CheckResult(name, False, after, limit, ZERO, message)
    ok = share <= limit
    verb = "within" if ok else "exceeds"
    exact = share != limit and pct(share, False) == pct(limit, False)
    message = (
        f"{asset} position {usd(after)} after this order is {pct(share, exact)} of the portfolio "
        f"{usd(capital)}, {verb} {name} {pct(limit, exact)} (headroom {usd(headroom)})"
    )
    return CheckResult(name, ok, share, limit, headroom, message)


def _open_positions(p: OrderProposal, e: Exposure, risk: RiskConfig) -> CheckResult:
    """risk.max_open_positions: a new position is refused when the maximum is already open."""
    name = "risk.max_open_positions"
    maximum = risk.max_open_positions
    asset = acquired_asset(p)
    held = held_assets(e)
    count = Decimal(len(held))
    if maximum is None:
        return CheckResult(name, True, count, ZERO, ZERO, f"{name} is unset: disabled")
    limit = Decimal(maximum)
    headroom = max(limit - count, ZERO)
    if asset is None or asset in held:
        msg = f"{len(held)} open position(s); this order opens no new one ({name} {maximum})"
        return CheckResult(name, True, count, limit, headroom, msg)
    ok = count + 1 <= limit
    verb = "within" if ok else "exceeds"
    message = (
        f"open positions {len(held)} + new {asset} position = {len(held) + 1} {verb} {name} "
        f"{maximum} (headroom {headroom})"
    )
    return CheckResult(name, ok, count + 1, limit, headroom, message)


def _drawdown(p: OrderProposal, e: Exposure, risk: RiskConfig) -> CheckResult:
    name = "risk.max_drawdown_pct"
    limit = risk.max_drawdown_pct
    dd = drawdown_pct(e.portfolio_usd, e.high_water_usd)
    headroom = max(limit - dd, ZERO)
    if limit <= 0:
        return CheckResult(name, True, dd, limit, headroom, f"{name} is 0: disabled")
    if dd < limit:
        msg = f"drawdown {pct(dd, False)} within {name} {pct(limit, False)}"
        return CheckResult(name, True, dd, limit, headroom, msg)
    if acquired_asset(p) is None and p.side == "sell":
        msg = f"drawdown {pct(dd, False)} at {name}, but this sell only reduces a position"
        return CheckResult(name, True, dd, limit, headroom, msg)
    exact = dd != limit and pct(dd, False) == pct(limit, False)
    message = (
        f"portfolio {usd(e.portfolio_usd)} is {pct(dd, exact)} below its high-water mark "
        f"{usd(e.high_water_usd)}, at or over {name} {pct(limit, exact)} (headroom 0%): "
        "only sells that reduce a position are allowed until the portfolio recovers"
    )
    return CheckResult(name, False, dd, limit, ZERO, message)


def _balance(p: OrderProposal, e: Exposure) -> CheckResult:
    name = "available balance"
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        if p.side == "buy":
            asset = p.quote
            cost = p.amount * fill_price(p)
            fee = cost * p.fee_rate
            need = cost + fee
            detail = f" (cost {qty(cost)} + est. fee {qty(fee)})"
        else:
            asset, need, detail = p.base, p.amount, ""
    free = max(e.free_balances.get(asset, ZERO), ZERO)
    ok = need <= free
    verb = "is within" if ok else "exceeds"
    message = (
        f"{p.side} needs {qty(need)} {asset}{detail}, which {verb} the {name} of "
        f"{qty(free)} {asset} on {p.exchange} (headroom {qty(free)} {asset})"
    )
    return CheckResult(name, ok, need, free, free, message)


def _open_orders(e: Exposure, risk: RiskConfig) -> CheckResult:
    name = "risk.max_open_orders"
    limit = Decimal(risk.max_open_orders)
    current = Decimal(e.open_orders)
    after = current + 1
    headroom = max(limit - current, ZERO)
    ok = after <= limit
    verb = "within" if ok else "exceeds"
    message = (
        f"open orders {e.open_orders} + this order = {after} {verb} {name} "
        f"{risk.max_open_orders} (headroom {headroom})"
    )
    return CheckResult(name, ok, after, limit, headroom, message)


def check_order(p: OrderProposal, e: Exposure, risk: RiskConfig) -> list[CheckResult]:
    """Every limit's verdict for this order, in a fixed order (valuation first)."""
    valuation = _valuation(p)
    results = [valuation]
    value = order_value_usd(p)
    if value is not None:
        results.append(
            _cap("risk.max_order_value", "order value", ZERO, value, risk.max_order_value)
        )
        results.append(daily_volume_check(e, value, risk))
        added = position_added_usd(p)
        if added is None:
            added = value
        results.append(_position(p, e, added, risk))
        results.append(_position_pct(p, e, added, risk))
    results.append(_open_positions(p, e, risk))
    results.append(_drawdown(p, e, risk))
    results.append(_balance(p, e))
    results.append(_open_orders(e, risk))
    return results


def daily_volume_check(e: Exposure, value: Decimal, risk: RiskConfig) -> CheckResult:
    """risk.max_daily_volume: today's volume + this order; unvalued trades today refuse."""
    name = "risk.max_daily_volume"
    if e.volume_unpriced:
        assets = ", ".join(sorted(e.volume_unpriced))
        return CheckResult(
            name,
            False,
            e.daily_volume_usd,
            risk.max_daily_volume,
            ZERO,
            f"today's trades in {assets} have no USD value: cannot check {name} "
            "(pass a USD price for them when building the exposure)",
        )
    used = e.daily_volume_usd + e.pending_volume_usd
    what = "daily volume incl. open orders" if e.pending_volume_usd else "daily volume"
    return _cap(name, what, used, value, risk.max_daily_volume)


def first_refusal(p: OrderProposal, e: Exposure, risk: RiskConfig) -> RiskLimitError | None:
    """The first failing check as a RiskLimitError (exit 3), or None if the order may go."""
    for result in check_order(p, e, risk):
        if not result.ok:
            return RiskLimitError(result.message)
    return None


def enforce(p: OrderProposal, e: Exposure, risk: RiskConfig) -> None:
    """Raise the first refusal; return quietly when every limit passes."""
    refusal = first_refusal(p, e, risk)
    if refusal is not None:
        raise refusal


def open_positions(e: Exposure, dust: Decimal = ZERO) -> int:
    """How many non-cash assets are held above `dust` units (risk.max_open_positions)."""
    return sum(1 for a, q in e.quantities.items() if not is_usd_like(a) and q > dust)


def held_assets(e: Exposure, dust: Decimal = ZERO) -> frozenset[str]:
    """Non-cash assets held above `dust`, or that a pending order would acquire."""
    held = {a for a, q in e.quantities.items() if not is_usd_like(a) and q > dust}
    return frozenset(held | {a for a in e.pending_assets if not is_usd_like(a)})
