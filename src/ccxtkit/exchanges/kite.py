"""A Zerodha Kite Connect account (`id: kite`) behind vhc's `ExchangeClient` interface.

The official `kiteconnect` client does the talking; this module converts at the boundary
(floats to Decimal once, Kite's IST wall-clock times to UTC, Kite's names to vhc's) and maps
Kite's errors to vhc's exit codes and retry rules:

- TokenException (403): the daily session is missing, expired or revoked -> exit 8 with the
  command that renews it (`vhc kite login`), never a raw 403;
- InputException / OrderException: the request was refused, nothing was placed -> exit 5;
- NetworkException with HTTP 429: rate limited; reads are retried with backoff, an order was
  not accepted (exit 5, nothing placed);
- any other NetworkException/GeneralException/DataException, or a `requests` error: reads are
  retried; an order's outcome is unknown (`OrderOutcomeUnknown`): it is looked up by its tag,
  never resent blind.

Symbols are Kite's own (`NSE:INFY`), amounts are shares, prices INR. Each order carries vhc's
client order id as its Kite `tag` (at most 20 characters: `new_client_order_id` makes
`v` + YYMMDD (IST) + 13 hex digits). Kite's order book holds today's orders only, so a tag
can be proven absent only on the day it was made; an older tag's miss is unproven.
"""

from __future__ import annotations

import re
import secrets
import time as _time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from ccxtkit.config import KiteSettings
from ccxtkit.errors import (
    ExchangeAuthError,
    ExchangeError,
    InputError,
    OrderLookupUnproven,
    OrderOutcomeUnknown,
    VhcError,
)
from ccxtkit.logs import log, redact
from ccxtkit.money import fmt, to_decimal

from . import kite_hours
from .base import Balance, Candle, LedgerEntry, Market, Order, Ticker, Trade, Transfer
from .errors_map import ExchangeOrderNotFound, RetryPolicy
from .kite_symbols import QUOTE, is_kite_symbol
from .timing import not_an_exchange_call

T = TypeVar("T")

PRODUCTS = ("MIS", "CNC", "NRML")
VARIETIES = ("regular", "amo")
#: Kite order statuses that are still working (everything not final).
_FINAL = {"COMPLETE": "closed", "CANCELLED": "canceled", "REJECTED": "rejected"}
_TAG = re.compile(r"v(\d{6})[0-9a-f]{13}")
#: Seconds between the two misses that make a today's tag absent (an order may still be on
#: its way into Kite's order book when the first answer is given).
RECHECK_SECONDS = 2.0


class KiteSessionError(ExchangeAuthError):
    """The Kite session is missing, expired or revoked (exit 8): run `vhc kite login`.

    An exchange error (so a sweep or a recover of several accounts reports it for this
    account and goes on; an order refused by it is recorded as rejected), with exit 8.
    """

    exit_code = 8


def renew_hint(account: str) -> str:
    """How to get a new daily session."""
    return f"run `vhc kite login --exchange {account}` (Kite sessions end daily at 06:00 IST)"


class KiteClient:
    """An `ExchangeClient` on Kite Connect (plus positions, holdings and the order checks)."""

    broker = "kite"

    def __init__(
        self,
        name: str,
        settings: KiteSettings,
        api_key: str,
        access_token: str,
        *,
        expires_at: datetime | None = None,
        policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = _time.sleep,
    ) -> None:
        import requests
        from kiteconnect import KiteConnect

        self.name = name
        self.settings = settings
        self.expires_at = expires_at
        self._policy = policy or RetryPolicy()
        self._sleep = sleep
        self._kite = KiteConnect(
            api_key,
            access_token=access_token,
            root=settings.root,
            timeout=float(settings.timeout_seconds),
        )
        session = requests.Session()
        session.hooks["response"].append(self._on_response)
        self._kite.reqsession = session
        self._server_time: tuple[datetime, float] | None = None
        self._markets: dict[str, Market] = {}
        self._loaded: set[str] = set()
        self._last_history: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ clock
    def _on_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        date = response.headers.get("Date")
        if not date:
            return
        try:
            stamp = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        self._server_time = (stamp.astimezone(UTC), _time.monotonic())

    @not_an_exchange_call
    def now(self) -> datetime:
        """Kite's clock (its latest reply's Date, advanced since), else the local clock."""
        if self._server_time is None:
            return datetime.now(UTC)
        stamp, at = self._server_time
        return stamp + timedelta(seconds=_time.monotonic() - at)

    # ----------------------------------------------------------------- errors
    def _map(self, exc: BaseException, action: str) -> ExchangeError:
        kind = type(exc).__name__
        detail = redact(" ".join(str(exc).split()))[:300]
        where = f"{self.name}: {action}"
        if kind == "TokenException":
            expired = (
                f" (the session stored at login ended {self.expires_at.isoformat()})"
                if self.expires_at is not None
                else ""
            )
            return KiteSessionError(
                f"{where}: Kite refused the session{expired}: {detail}; {renew_hint(self.name)}"
            )
        if kind == "PermissionException":
            return ExchangeAuthError(f"{where}: Kite denied this call to the API key ({detail})")
        if kind in ("InputException", "OrderException"):
            return ExchangeError(f"{where}: rejected by Kite ({kind}: {detail})")
        if getattr(exc, "code", None) == 429:
            return ExchangeError(f"{where}: rate limited by Kite ({detail}); try again later")
        return ExchangeError(f"{where}: Kite did not answer usably ({kind}: {detail})")

    @staticmethod
    def _transient(exc: BaseException) -> bool:
        kind = type(exc).__name__
        if kind in ("NetworkException", "GeneralException", "DataException"):
            return True
        return type(exc).__module__.startswith("requests")

    def _safe(self, fn: Callable[[], T], action: str) -> T:
        """A read (or cancel): retried with backoff on transient failures only."""
        attempt = 1
        while True:
            try:
                return fn()
            except VhcError:
                raise
            except Exception as exc:
                if not self._is_client_error(exc):
                    # kiteconnect choked on a reply it did not expect: keep the traceback.
                    log.exception("%s: %s: unexpected failure", self.name, action)
                    raise ExchangeError(
                        f"{self.name}: {action}: unexpected reply from Kite "
                        f"({type(exc).__name__}: {redact(str(exc))[:200]})"
                    ) from None
                if self._transient(exc) and attempt < self._policy.tries:
                    wait = self._policy.delay(attempt)
                    log.warning(
                        "%s: %s: %s (attempt %d of %d), retrying in %.2fs",
                        self.name, action, type(exc).__name__, attempt, self._policy.tries, wait,
                    )  # fmt: skip
                    self._sleep(wait)
                    attempt += 1
                    continue
                raise self._map(exc, action) from None

    @staticmethod
    def _is_client_error(exc: BaseException) -> bool:
        module = type(exc).__module__
        return module.startswith(("kiteconnect", "requests", "urllib3"))

    def _once(self, fn: Callable[[], T], action: str) -> T:
        """An order placement: sent once; an answer we cannot trust is an unknown outcome."""
        try:
            return fn()
        except VhcError:
            raise
        except Exception as exc:
            # A Kite refusal placed nothing; anything else (no reply, a reply we could not
            # read, a failure while reading it) may have placed the order.
            refused = self._is_client_error(exc) and (
                getattr(exc, "code", None) == 429 or not self._transient(exc)
            )
            if refused:
                raise self._map(exc, action) from None
            raise OrderOutcomeUnknown(
                f"{self.name}: {action}: no reliable answer from Kite ({type(exc).__name__}: "
                f"{redact(str(exc))[:200]}); the order may have been placed: it is looked up "
                "by its tag, never resent blind (`vhc trade recover`)"
            ) from None

    # ---------------------------------------------------------------- markets
    def ping(self) -> None:
        self._safe(self._kite.profile, "profile")

    def _load(self, segment: str) -> None:
        if segment in self._loaded:
            return
        rows = self._safe(lambda: self._kite.instruments(segment), f"instruments {segment}")
        for row in rows:
            symbol = f"{row['exchange']}:{row['tradingsymbol']}"
            lot = to_decimal(row.get("lot_size") or 1, "lot_size")
            self._markets[symbol] = Market(
                symbol=symbol,
                base=symbol,
                quote=QUOTE,
                amount_step=lot,
                price_step=to_decimal(row["tick_size"], "tick_size"),
                min_amount=lot,
            )
        self._loaded.add(segment)

    def load_markets(self) -> dict[str, Market]:
        self._load("NSE")
        return dict(self._markets)

    def market(self, symbol: str) -> Market | None:
        if not is_kite_symbol(symbol):
            return None
        self._load(symbol.split(":", 1)[0])
        return self._markets.get(symbol)

    def fetch_ticker(self, symbol: str) -> Ticker:
        data = self._safe(lambda: self._kite.quote([symbol]), f"quote {symbol}")
        q = data.get(symbol)
        if not q:
            raise ExchangeError(f"{self.name}: Kite has no quote for {symbol}")
        depth = q.get("depth") or {}
        bids, asks = depth.get("buy") or [], depth.get("sell") or []
        bid = to_decimal(bids[0]["price"], "bid") if bids and bids[0].get("price") else None
        ask = to_decimal(asks[0]["price"], "ask") if asks and asks[0].get("price") else None
        return Ticker(
            symbol=symbol,
            last=to_decimal(q["last_price"], "last_price"),
            bid=bid,
            ask=ask,
            timestamp=_utc(q.get("timestamp")),
        )

    @not_an_exchange_call
    def configured_usd_rates(self) -> dict[str, Decimal]:
        """USD per INR from `kite.inr_per_usd` (the fallback after the ledger's recorded rate)."""
        rate = self.settings.inr_per_usd
        return {QUOTE: (Decimal(1) / rate).quantize(Decimal("1e-12"))} if rate else {}

    def instrument_prices(self, assets: Iterable[str]) -> dict[str, Decimal]:
        """INR last prices of the Kite instruments among `assets` (one quote call)."""
        wanted = sorted({a for a in assets if is_kite_symbol(a)})
        if not wanted:
            return {}
        data = self._safe(lambda: self._kite.ltp(wanted), "ltp")
        return {k: to_decimal(v["last_price"], "last_price") for k, v in data.items()}

    # ------------------------------------------------------------- portfolio
    def fetch_balance(self) -> dict[str, Balance]:
        """INR funds (equity margins) and every instrument held or in a day position."""
        equity = self._safe(lambda: self._kite.margins("equity"), "margins")
        net = to_decimal(equity.get("net", 0), "net")
        used = to_decimal((equity.get("utilised") or {}).get("debits", 0), "debits")
        out = {QUOTE: Balance(QUOTE, net, used, net + used)}
        for symbol, qty in self.holdings_and_positions().items():
            if qty != 0:
                out[symbol] = Balance(symbol, qty, Decimal(0), qty)
        return out

    def fetch_positions(self) -> list[dict[str, Any]]:
        """Today's net positions: symbol, product, quantity (signed), Decimal."""
        data = self._safe(self._kite.positions, "positions")
        return [
            {
                "symbol": f"{p['exchange']}:{p['tradingsymbol']}",
                "product": p["product"],
                "quantity": to_decimal(p["quantity"], "quantity"),
                "average_price": to_decimal(p.get("average_price") or 0, "average_price"),
                "last_price": to_decimal(p.get("last_price") or 0, "last_price"),
            }
            for p in data.get("net") or []
        ]

    def fetch_holdings(self) -> list[dict[str, Any]]:
        """Delivery (CNC) holdings: symbol, quantity (settled + T1), average price."""
        rows = self._safe(self._kite.holdings, "holdings")
        return [
            {
                "symbol": f"{h['exchange']}:{h['tradingsymbol']}",
                "quantity": to_decimal(h.get("quantity") or 0, "quantity")
                + to_decimal(h.get("t1_quantity") or 0, "t1_quantity"),
                "average_price": to_decimal(h.get("average_price") or 0, "average_price"),
            }
            for h in rows
        ]

    def holdings_and_positions(self) -> dict[str, Decimal]:
        """Shares per instrument: holdings plus today's net positions (a CNC sell nets here)."""
        total: dict[str, Decimal] = {}
        for h in self.fetch_holdings():
            total[h["symbol"]] = total.get(h["symbol"], Decimal(0)) + h["quantity"]
        for p in self.fetch_positions():
            total[p["symbol"]] = total.get(p["symbol"], Decimal(0)) + p["quantity"]
        return total

    # ----------------------------------------------------------------- orders
    @not_an_exchange_call
    def new_client_order_id(self) -> str:
        """A fresh Kite tag: `v` + YYMMDD (IST, Kite's day) + 13 hex digits = 20 characters."""
        day = self.now().astimezone(kite_hours.IST).strftime("%y%m%d")
        return f"v{day}{secrets.token_hex(7)[:13]}"

    def check_order(
        self,
        symbol: str,
        side: str,
        type: str,
        amount: Decimal,
        price: Decimal | None,
        *,
        product: str | None = None,
        variety: str | None = None,
        client_order_id: str | None = None,
    ) -> None:
        """Refuse, before anything is recorded, what Kite would refuse (exit 2)."""
        market = self.market(symbol)
        if market is None:
            raise InputError(f"{self.name}: Kite has no instrument {symbol!r} (e.g. NSE:INFY)")
        chosen_product = product or self.settings.product
        if chosen_product not in PRODUCTS:
            raise InputError(f"--product must be one of {', '.join(PRODUCTS)}")
        if (variety or "regular") not in VARIETIES:
            raise InputError(f"--variety must be one of {', '.join(VARIETIES)}")
        step = market.amount_step or Decimal(1)
        if amount != amount.to_integral_value() or amount % step != 0:
            raise InputError(
                f"{symbol}: quantity must be a whole number of shares in lots of {fmt(step)}"
            )
        if type == "limit" and price is not None and market.price_step:
            if price % market.price_step != 0:
                raise InputError(
                    f"{symbol}: price {fmt(price)} is not a multiple of the tick size "
                    f"{fmt(market.price_step)}"
                )
        if client_order_id is not None and (
            len(client_order_id) > 20 or not client_order_id.isalnum()
        ):
            raise InputError(
                "a Kite client id (tag) holds at most 20 letters and digits; omit --client-id "
                "to get one"
            )
        holidays = kite_hours.holiday_dates(self.settings.holidays)
        now = self.now()
        if (variety or "regular") == "regular" and not kite_hours.is_open(now, holidays):
            opens = kite_hours.next_open(now, holidays)
            raise InputError(
                f"{self.name}: NSE is closed now ({now.astimezone(kite_hours.IST):%Y-%m-%d %H:%M} "
                f"IST); it opens {opens:%Y-%m-%d %H:%M} IST. Use --variety amo to queue an "
                "after-market order"
            )
        if variety == "amo" and kite_hours.is_open(now, holidays):
            raise InputError(f"{self.name}: AMO orders are for outside market hours")

    def create_order(
        self,
        symbol: str,
        side: str,
        type: str,
        amount: Decimal,
        price: Decimal | None,
        client_order_id: str,
        *,
        product: str | None = None,
        variety: str | None = None,
    ) -> Order:
        segment, _, tradingsymbol = symbol.partition(":")
        chosen_variety = variety or "regular"
        params: dict[str, Any] = {
            "variety": chosen_variety,
            "exchange": segment,
            "tradingsymbol": tradingsymbol,
            "transaction_type": side.upper(),
            "quantity": int(amount),
            "product": product or self.settings.product,
            "order_type": type.upper(),
            "tag": client_order_id,
        }
        if type == "limit" and price is not None:
            params["price"] = str(price)
        action = f"place_order {side} {fmt(amount)} {symbol}"
        order_id = str(self._once(lambda: self._kite.place_order(**params), action))
        try:
            order = self.fetch_order(order_id, symbol)
        except ExchangeError as exc:
            log.warning("%s: order %s placed, state not read: %s", self.name, order_id, exc)
            return _placeholder(order_id, client_order_id, symbol, side, type, amount, price)
        if order.status == "rejected":
            raise ExchangeError(
                f"{self.name}: {action}: rejected by Kite (order {order_id}: "
                f"{order_rejection(self._last_history)})"
            )
        return order

    def fetch_order(self, order_id: str, symbol: str) -> Order:
        history = self._safe(lambda: self._kite.order_history(order_id), f"order {order_id}")
        if not history:
            raise ExchangeOrderNotFound(f"{self.name}: Kite does not know order {order_id}")
        self._last_history = history
        return self._order(history[-1])

    def _order(self, raw: dict[str, Any], with_trades: bool = True) -> Order:
        status = _FINAL.get(str(raw.get("status")), "open")
        filled = to_decimal(raw.get("filled_quantity") or 0, "filled_quantity")
        amount = to_decimal(raw.get("quantity") or 0, "quantity")
        trades: tuple[Trade, ...] = ()
        if with_trades and filled > 0:
            oid = str(raw["order_id"])
            rows = self._safe(lambda: self._kite.order_trades(oid), f"trades of {oid}")
            trades = tuple(self._trade(t, raw.get("tag")) for t in rows)
        price = to_decimal(raw.get("price") or 0, "price")
        average = to_decimal(raw.get("average_price") or 0, "average_price")
        return Order(
            id=str(raw["order_id"]),
            client_order_id=raw.get("tag"),
            symbol=f"{raw['exchange']}:{raw['tradingsymbol']}",
            side=str(raw["transaction_type"]).lower(),
            type=str(raw["order_type"]).lower(),
            amount=amount,
            price=price if price > 0 else None,
            status=status,
            filled=filled,
            remaining=amount - filled if status == "open" else Decimal(0),
            average=average if average > 0 else None,
            fee=None,
            fee_currency=None,
            timestamp=_utc(raw.get("order_timestamp")),
            trades=trades,
        )

    def _trade(self, t: dict[str, Any], tag: str | None = None) -> Trade:
        amount = to_decimal(t["quantity"], "quantity")
        price = to_decimal(t["average_price"], "average_price")
        stamp = _utc(t.get("fill_timestamp") or t.get("exchange_timestamp"))
        return Trade(
            id=str(t["trade_id"]),
            order_id=str(t["order_id"]),
            symbol=f"{t['exchange']}:{t['tradingsymbol']}",
            side=str(t["transaction_type"]).lower(),
            amount=amount,
            price=price,
            cost=amount * price,
            # Kite's trade book carries no charges: brokerage, STT and the rest are on the
            # contract note, not in the API. Recorded as zero INR.
            fee=Decimal(0),
            fee_currency=QUOTE,
            timestamp=stamp or self.now(),
            client_order_id=tag,
        )

    def _today_orders(self) -> list[dict[str, Any]]:
        return list(self._safe(self._kite.orders, "orders"))

    def find_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
        """Today's order book by tag; a miss is absence only for a tag made today, seen twice."""
        for attempt in (1, 2):
            for raw in self._today_orders():
                if raw.get("tag") == client_order_id:
                    return self._order(raw)
            match = _TAG.fullmatch(client_order_id)
            today = self.now().astimezone(kite_hours.IST).strftime("%y%m%d")
            if match is None or match.group(1) != today:
                raise OrderLookupUnproven(
                    f"{self.name}: no order tagged {client_order_id} in today's Kite order "
                    "book, but Kite keeps only today's orders, so an order from another day "
                    "cannot be proven absent: it stays unknown and is never resent; check "
                    "the order history on Kite (console.zerodha.com) by hand"
                )
            if attempt == 1:
                self._sleep(RECHECK_SECONDS)
        return None

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        return [
            self._order(r, with_trades=False)
            for r in self._today_orders()
            if str(r.get("status")) not in _FINAL
            and (symbol is None or f"{r['exchange']}:{r['tradingsymbol']}" == symbol)
        ]

    def cancel_order(self, order_id: str, symbol: str) -> None:
        raw = next((r for r in self._today_orders() if str(r["order_id"]) == order_id), None)
        if raw is None:
            raise ExchangeOrderNotFound(f"{self.name}: no order {order_id} in today's book")
        variety = str(raw.get("variety") or "regular")
        self._safe(lambda: self._kite.cancel_order(variety, order_id), f"cancel {order_id}")

    def cancel_all_orders(self) -> list[str]:
        cancelled = []
        for raw in self._today_orders():
            if str(raw.get("status")) in _FINAL:
                continue
            oid, variety = str(raw["order_id"]), str(raw.get("variety") or "regular")
            self._safe(lambda: self._kite.cancel_order(variety, oid), f"cancel {oid}")  # noqa: B023
            cancelled.append(oid)
        return cancelled

    def fetch_my_trades(self, since: datetime, until: datetime | None = None) -> list[Trade]:
        """Today's fills (Kite's trade book holds no other day) within the range."""
        tags = {str(r["order_id"]): r.get("tag") for r in self._today_orders()}
        rows = self._safe(self._kite.trades, "trades")
        out = []
        for row in rows:
            trade = self._trade(row, tags.get(str(row["order_id"])))
            if trade.timestamp >= since and (until is None or trade.timestamp < until):
                out.append(trade)
        return out

    # ------------------------------------------------------- not on Kite's API
    def fetch_deposits(self, since: datetime, until: datetime | None = None) -> list[Transfer]:
        return []  # fund transfers are not on the Kite Connect API

    def fetch_withdrawals(self, since: datetime, until: datetime | None = None) -> list[Transfer]:
        return []

    def fetch_ledger(
        self, since: datetime, until: datetime | None = None
    ) -> list[LedgerEntry] | None:
        return None

    def withdraw(
        self,
        asset: str,
        amount: Decimal,
        address: str,
        tag: str | None = None,
        network: str | None = None,
        label: str | None = None,
    ) -> Transfer:
        raise InputError(f"{self.name}: Kite Connect has no withdrawals; use the Kite console")

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: datetime, limit: int | None = None
    ) -> list[Candle]:
        raise ExchangeError(f"{self.name}: candles from Kite are not supported by vhc yet")

    def close(self) -> None:
        session = self._kite.reqsession
        if hasattr(session, "close"):
            session.close()


def order_rejection(history: list[dict[str, Any]]) -> str:
    """Kite's reason for a rejection, from the order's latest state."""
    if not history:
        return "no reason given"
    return str(history[-1].get("status_message") or "no reason given")


def _utc(value: Any) -> datetime | None:
    """Kite's times are IST wall clock without an offset (kiteconnect parses some of them)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=kite_hours.IST)
    moment: datetime = value.astimezone(UTC)
    return moment


def _placeholder(
    order_id: str,
    client_order_id: str,
    symbol: str,
    side: str,
    type: str,
    amount: Decimal,
    price: Decimal | None,
) -> Order:
    """An accepted order whose state could not be read yet: open, nothing filled."""
    return Order(
        id=order_id, client_order_id=client_order_id, symbol=symbol, side=side, type=type,
        amount=amount, price=price, status="open", filled=Decimal(0), remaining=amount,
        average=None, fee=None, fee_currency=None, timestamp=None,
    )  # fmt: skip
