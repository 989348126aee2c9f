"""The paper exchange (`id: paper`): a simulated account with the gateway's interface.

State lives in one JSON file in the workspace (see paper_store). Market orders fill at
once at the current price moved against the taker by `slippage_bps`; limit orders rest
and fill at their limit price as soon as a call finds the price has crossed them. Fees
are `fee_rate` × cost, in the quote currency. Client order ids must be unique among ALL
orders of the account (stricter than kraken, which only checks open orders).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path

from ccxtkit.config import PaperSettings
from ccxtkit.errors import ExchangeError
from ccxtkit.money import fmt, to_decimal

from .base import Balance, Candle, LedgerEntry, Market, Order, Ticker, Trade, Transfer
from .errors_map import ExchangeOrderNotFound
from .paper_feed import TickerSource, simulated_candles, simulated_price
from .paper_store import PaperOrder, PaperState, locked_state

ZERO = Decimal(0)
AMOUNT_STEP = Decimal("0.00000001")
_MIN_AMOUNT = {"BTC": Decimal("0.0001"), "ETH": Decimal("0.001"), "SOL": Decimal("0.01")}
_TIMEFRAMES = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}


def paper_markets(quote: str) -> dict[str, Market]:
    """BTC, ETH, SOL and USDC against USD and the configured quote, and ETH/BTC."""
    markets: dict[str, Market] = {}
    for q in dict.fromkeys(["USD", quote.upper()]):
        for base in ("BTC", "ETH", "SOL", "USDC"):
            if base == q:
                continue
            step = Decimal("0.0001") if base == "USDC" else Decimal("0.01")
            minimum = _MIN_AMOUNT.get(base, Decimal("1"))
            markets[f"{base}/{q}"] = Market(f"{base}/{q}", base, q, AMOUNT_STEP, step, minimum)
    markets["ETH/BTC"] = Market(
        "ETH/BTC", "ETH", "BTC", AMOUNT_STEP, Decimal("0.00001"), _MIN_AMOUNT["ETH"]
    )
    return markets


class PaperExchange:
    """A simulated account that persists in the workspace; implements ExchangeClient."""

    def __init__(
        self,
        name: str,
        settings: PaperSettings,
        path: Path,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.path = path
        self.clock = clock or (lambda: datetime.now(UTC))
        self.markets = paper_markets(settings.quote)
        self._slip = settings.slippage_bps / Decimal(10000)
        source = settings.price_source
        self._ticker = None if source in ("simulated", "paper") else TickerSource(source)
        self._swept = False  # the last call was a cancel_all_orders

    # -- plumbing ------------------------------------------------------------------------

    def _initial(self) -> PaperState:
        return PaperState(balances=dict(self.settings.starting_balances))

    @contextmanager
    def _account(self) -> Iterator[tuple[PaperState, datetime]]:
        """Fault hooks, then the locked state with resting orders matched at current prices."""
        self._swept = False
        if self.settings.latency_ms > 0:
            time.sleep(float(self.settings.latency_ms / 1000))
        if self.settings.fail_calls:
            raise ExchangeError(
                f"{self.name}: the exchange did not answer (paper `fail_calls` is set)"
            )
        now = self.clock()
        with locked_state(self.path, self._initial) as state:
            self._match_resting(state, now)
            yield state, now

    def _market(self, symbol: str) -> Market:
        market = self.markets.get(symbol)
        if market is None:
            known = ", ".join(sorted(self.markets))
            raise ExchangeError(f"{self.name}: unknown market {symbol} (paper has {known})")
        return market

    def _price(self, state: PaperState, symbol: str, now: datetime) -> Decimal:
        market = self._market(symbol)
        price = state.prices.get(symbol)
        if price is None:
            if self._ticker is not None:
                price = self._ticker.price(symbol)
            else:
                price = simulated_price(market.base, market.quote, now, market.price_step or ZERO)
        state.last_prices[symbol] = price
        return price

    def _free(self, state: PaperState, asset: str) -> Decimal:
        return state.balances.get(asset, ZERO) - self._reserved(state).get(asset, ZERO)

    def _reserved(self, state: PaperState) -> dict[str, Decimal]:
        """What open orders hold: quote (with fees) for buys, base for sells."""
        held: dict[str, Decimal] = {}
        for o in state.orders.values():
            if o.status != "open":
                continue
            m = self.markets[o.symbol]
            left = o.amount - o.filled
            if o.side == "buy":
                assert o.price is not None
                held[m.quote] = held.get(m.quote, ZERO) + self._with_fee(left * o.price)
            else:
                held[m.base] = held.get(m.base, ZERO) + left
        return held

    def _with_fee(self, cost: Decimal) -> Decimal:
        return cost + cost * self.settings.fee_rate

    def _fill(self, state: PaperState, order: PaperOrder, price: Decimal, now: datetime) -> None:
        m = self.markets[order.symbol]
        amount = order.amount - order.filled
        cost = amount * price
        fee = cost * self.settings.fee_rate
        if order.side == "buy":
            self._add(state, m.quote, -(cost + fee))
            self._add(state, m.base, amount)
        else:
            self._add(state, m.base, -amount)
            self._add(state, m.quote, cost - fee)
        trade = Trade(
            id=state.new_id("PT"),
            order_id=order.id,
            symbol=order.symbol,
            side=order.side,
            amount=amount,
            price=price,
            cost=cost,
            fee=fee,
            fee_currency=m.quote,
            timestamp=now,
            client_order_id=order.client_order_id,
        )
        state.trades.append(trade)
        order.filled += amount
        order.cost += cost
        order.fee += fee
        order.status = "closed"

    @staticmethod
    def _add(state: PaperState, asset: str, delta: Decimal) -> None:
        state.balances[asset] = state.balances.get(asset, ZERO) + delta

    def _match_resting(self, state: PaperState, now: datetime) -> None:
        for order in list(state.orders.values()):
            if order.status != "open" or order.price is None:
                continue
            price = self._price(state, order.symbol, now)
            crossed = price <= order.price if order.side == "buy" else price >= order.price
            if crossed:
                self._fill(state, order, order.price, now)

    def _to_order(self, state: PaperState, o: PaperOrder) -> Order:
        trades = tuple(t for t in state.trades if t.order_id == o.id)
        return Order(
            id=o.id,
            client_order_id=o.client_order_id,
            symbol=o.symbol,
            side=o.side,
            type=o.type,
            amount=o.amount,
            price=o.price,
            status=o.status,
            filled=o.filled,
            remaining=o.amount - o.filled if o.status == "open" else ZERO,
            average=o.cost / o.filled if o.filled else None,
            fee=o.fee,
            fee_currency=o.fee_currency,
            timestamp=o.timestamp,
            trades=trades,
        )

    # -- reads ---------------------------------------------------------------------------

    def ping(self) -> None:
        """The health probe's call: as cheap as it gets, and failing like the other calls."""
        with self._account():
            pass

    def load_markets(self) -> dict[str, Market]:
        """The paper markets."""
        return dict(self.markets)

    def market(self, symbol: str) -> Market | None:
        """One paper market, or None."""
        return self.markets.get(symbol.upper())

    def fetch_ticker(self, symbol: str) -> Ticker:
        """The current price, with bid/ask one slippage away."""
        with self._account() as (state, now):
            last = self._price(state, symbol, now)
        step = self._market(symbol).price_step or ZERO
        bid = (last * (1 - self._slip)).quantize(step, rounding=ROUND_FLOOR)
        ask = (last * (1 + self._slip)).quantize(step, rounding=ROUND_CEILING)
        return Ticker(symbol=symbol, last=last, bid=bid, ask=ask, timestamp=now)

    def fetch_balance(self) -> dict[str, Balance]:
        """Balances by asset; used = what open orders hold."""
        with self._account() as (state, _):
            held = self._reserved(state)
            assets = sorted(set(state.balances) | set(held))
            out = {}
            for a in assets:
                total = state.balances.get(a, ZERO)
                used = held.get(a, ZERO)
                if total or used:
                    out[a] = Balance(asset=a, free=total - used, used=used, total=total)
            return out

    def fetch_order(self, order_id: str, symbol: str) -> Order:
        """One order by id."""
        with self._account() as (state, _):
            order = state.orders.get(order_id)
            if order is None:
                raise ExchangeOrderNotFound(f"{self.name}: order {order_id} not found")
            return self._to_order(state, order)

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open orders, of one symbol or all."""
        with self._account() as (state, _):
            return [
                self._to_order(state, o)
                for o in state.orders.values()
                if o.status == "open" and (symbol is None or o.symbol == symbol)
            ]

    def find_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
        """Look among open AND closed orders; None when no order carries the id."""
        with self._account() as (state, _):
            for o in state.orders.values():
                if o.client_order_id == client_order_id:
                    return self._to_order(state, o)
            return None

    def fetch_my_trades(self, since: datetime, until: datetime | None = None) -> list[Trade]:
        """All fills in [since, until)."""
        with self._account() as (state, _):
            return [t for t in state.trades if _in_range(t.timestamp, since, until)]

    def fetch_deposits(self, since: datetime, until: datetime | None = None) -> list[Transfer]:
        """Deposits in [since, until)."""
        with self._account() as (state, _):
            return [t for t in state.deposits if _in_range(t.timestamp, since, until)]

    def fetch_withdrawals(self, since: datetime, until: datetime | None = None) -> list[Transfer]:
        """Withdrawals in [since, until)."""
        with self._account() as (state, _):
            return [t for t in state.withdrawals if _in_range(t.timestamp, since, until)]

    def fetch_ledger(
        self, since: datetime, until: datetime | None = None
    ) -> list[LedgerEntry] | None:
        """None: paper fees are always in the quote, as its trades say; there is no other ledger."""
        return None

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: datetime, limit: int | None = None
    ) -> list[Candle]:
        """Candles of the simulated feed (overrides are not history), up to now."""
        minutes = _TIMEFRAMES.get(timeframe)
        if minutes is None:
            known = ", ".join(_TIMEFRAMES)
            raise ExchangeError(f"{self.name}: unknown timeframe {timeframe} (use {known})")
        return simulated_candles(self._market(symbol), minutes, since, self.clock(), limit or 100)

    # -- writes --------------------------------------------------------------------------

    def create_order(
        self,
        symbol: str,
        side: str,
        type: str,
        amount: Decimal,
        price: Decimal | None,
        client_order_id: str,
    ) -> Order:
        """Place an order: market fills now, limit fills now if marketable, else rests."""
        market = self._market(symbol)
        amount = to_decimal(amount, "amount")
        where = f"{self.name}: create_order {side} {fmt(amount)} {symbol}"
        if side not in ("buy", "sell") or type not in ("market", "limit"):
            raise ExchangeError(f"{where}: unsupported order {side} {type}")
        if amount <= 0 or amount != amount.quantize(AMOUNT_STEP):
            raise ExchangeError(f"{where}: invalid amount (positive, step {fmt(AMOUNT_STEP)})")
        if market.min_amount is not None and amount < market.min_amount:
            raise ExchangeError(f"{where}: below the minimum order {fmt(market.min_amount)}")
        if type == "limit":
            step = market.price_step or ZERO
            if price is None or price <= 0 or price != price.quantize(step):
                raise ExchangeError(f"{where}: a limit order needs a price in steps of {step}")
        with self._account() as (state, now):
            if any(o.client_order_id == client_order_id for o in state.orders.values()):
                raise ExchangeError(f"{where}: duplicate client order id {client_order_id}")
            current = self._price(state, symbol, now)
            step = market.price_step or ZERO
            if side == "buy":
                taker = (current * (1 + self._slip)).quantize(step, rounding=ROUND_CEILING)
            else:
                taker = (current * (1 - self._slip)).quantize(step, rounding=ROUND_FLOOR)
            if type == "market":
                fill_at: Decimal | None = taker
            else:
                assert price is not None
                marketable = taker <= price if side == "buy" else taker >= price
                fill_at = taker if marketable else None
            # Funds: a buy needs its cost and fee in quote; a sell needs its amount in base.
            need_price = price if fill_at is None else fill_at
            assert need_price is not None
            if side == "buy":
                need, asset = self._with_fee(amount * need_price), market.quote
            else:
                need, asset = amount, market.base
            free = self._free(state, asset)
            if free < need:
                raise ExchangeError(
                    f"{where}: insufficient funds: needs {fmt(need)} {asset}, "
                    f"{fmt(free)} {asset} available"
                )
            order = PaperOrder(
                id=state.new_id("P"),
                client_order_id=client_order_id,
                symbol=symbol,
                side=side,
                type=type,
                amount=amount,
                price=price if type == "limit" else None,
                status="open",
                filled=ZERO,
                cost=ZERO,
                fee=ZERO,
                fee_currency=market.quote,
                timestamp=now,
            )
            state.orders[order.id] = order
            if fill_at is not None:
                self._fill(state, order, fill_at, now)
            return self._to_order(state, order)

    def cancel_order(self, order_id: str, symbol: str) -> None:
        """Cancel an open order (an already cancelled one counts as done)."""
        with self._account() as (state, _):
            order = state.orders.get(order_id)
            if order is None:
                raise ExchangeOrderNotFound(f"{self.name}: order {order_id} not found")
            if order.status == "open":
                order.status = "canceled"
            elif order.status != "canceled":
                raise ExchangeError(f"{self.name}: cannot cancel {order_id}: it is {order.status}")

    def cancel_all_orders(self) -> list[str]:
        """Cancel every open order; returns the ids cancelled."""
        with self._account() as (state, _):
            ids = [o.id for o in state.orders.values() if o.status == "open"]
            for oid in ids:
                state.orders[oid].status = "canceled"
        self._swept = True  # the state with every one of them cancelled is on disk
        return ids

    def open_orders_after_cancel(self) -> list[Order] | None:
        """[] right after `cancel_all_orders`: one atomic cancel of every open order, under
        the state's lock, answering each id (like Binance's cancel-all), confirms itself."""
        return [] if self._swept else None

    def withdraw(
        self,
        asset: str,
        amount: Decimal,
        address: str,
        tag: str | None = None,
        network: str | None = None,
        label: str | None = None,
    ) -> Transfer:
        """Send an (approved) withdrawal: it leaves the balance at once."""
        return self._withdraw(asset, amount, address, tag, network, "PW")

    def _withdraw(
        self,
        asset: str,
        amount: Decimal,
        address: str,
        tag: str | None,
        network: str | None,
        prefix: str,
    ) -> Transfer:
        amount = to_decimal(amount, "amount")
        if amount <= 0:
            raise ExchangeError(f"{self.name}: withdraw {fmt(amount)} {asset}: must be positive")
        with self._account() as (state, now):
            free = self._free(state, asset)
            if free < amount:
                raise ExchangeError(
                    f"{self.name}: withdraw {fmt(amount)} {asset}: insufficient funds "
                    f"({fmt(free)} {asset} available)"
                )
            self._add(state, asset, -amount)
            tid = state.new_id(prefix)
            transfer = Transfer(
                id=tid,
                kind="withdrawal",
                asset=asset,
                amount=amount,
                fee=ZERO,
                fee_currency=asset,
                status="ok",
                timestamp=now,
                txid=f"paper-tx-{tid}",
                address=address,
                network=network,
                tag=tag,
            )
            state.withdrawals.append(transfer)
            return transfer

    # -- simulation hooks ----------------------------------------------------------------

    def simulate_deposit(self, asset: str, amount: Decimal, txid: str | None = None) -> Transfer:
        """An external deposit arrives (for reconciliation to find)."""
        amount = to_decimal(amount, "amount")
        if amount <= 0:
            raise ExchangeError(f"{self.name}: deposit {fmt(amount)} {asset}: must be positive")
        with self._account() as (state, now):
            self._add(state, asset, amount)
            tid = state.new_id("PD")
            transfer = Transfer(
                id=tid,
                kind="deposit",
                asset=asset,
                amount=amount,
                fee=ZERO,
                fee_currency=asset,
                status="ok",
                timestamp=now,
                txid=txid or f"paper-tx-{tid}",
            )
            state.deposits.append(transfer)
            return transfer

    def simulate_withdrawal(self, asset: str, amount: Decimal, address: str) -> Transfer:
        """A withdrawal made outside vhc (e.g. on the website), for reconciliation to find."""
        return self._withdraw(asset, amount, address, None, None, "PX")

    def set_price(self, symbol: str, price: Decimal | None) -> None:
        """Pin a symbol's price (persisted), or None to return to the feed."""
        self._market(symbol)
        with self._account() as (state, _):
            if price is None:
                state.prices.pop(symbol, None)
            else:
                state.prices[symbol] = to_decimal(price, "price")
                state.last_prices[symbol] = state.prices[symbol]
            # Resting orders see the new price right away, as a real book would.
            self._match_resting(state, self.clock())

    def close(self) -> None:
        """Nothing to release: every call opens and closes the state file."""


def _in_range(when: datetime, since: datetime, until: datetime | None) -> bool:
    return when >= since and (until is None or when < until)
