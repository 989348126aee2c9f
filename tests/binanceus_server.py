"""A local stand-in for Binance.US's spot REST API, good enough for *unmodified* ccxt.binanceus.

Point ccxt at it with ``ccxt.binanceus({**server.credentials(), **server.ccxt_config()})``
(or deep-merge ``ccxt_config()`` into an account's ``ccxt:`` mapping). One account on
127.0.0.1 with an OS-chosen port: balances, orders, fills, deposits and withdrawals, in
Decimal, formatted as Binance's fixed 8-decimal strings.

What ccxt 4.5.x does against Binance.US (read from its binance.py / binanceus.py):
- load_markets calls ``GET /api/v3/exchangeInfo`` only (binanceus sets
  ``fetchCurrencies: False``, ``fetchMarkets.types: [spot]``, ``fetchMargins: False``).
- Private calls carry ``X-MBX-APIKEY`` and ``timestamp``/``recvWindow`` (10 000 ms) plus an
  HMAC-SHA256 ``signature`` (hex) of the query string (GET/DELETE) or form body (POST);
  checked here as Binance does: signature over query + body, timestamp within recvWindow.
- create_order sends ``newClientOrderId`` (ours) and ``newOrderRespType=FULL``: the reply
  carries the fills. fetch_order with ``{"origClientOrderId": id}`` queries by client id;
  an unknown order is HTTP 400 ``{"code": -2013, "msg": "Order does not exist."}``.
- fetch_open_orders(None) is refused by ccxt itself unless
  ``options.warnOnFetchOpenOrdersWithoutSymbol`` is False; fetch_my_trades, fetch_orders
  (allOrders) and cancel_all_orders (DELETE openOrders) need a symbol.
- allOrders / myTrades return the most recent ``limit`` (default 500, max 1000) unless
  ``orderId``/``fromId`` or ``startTime`` is given, then ascending from there.
- HTTP 429 (``-1003``) raises ccxt.DDoSProtection; 5xx raises ExchangeNotAvailable; a
  dropped reply raises NetworkError (ccxt does not resend the POST).

Test control is plain Python: set_price, set_balance, add_deposit, add_withdrawal,
add_closed_orders, fail_next, drop_reply_next (performed, reply lost), drop_request_next (not
performed), ``latency``, and the ``orders``/``trades``/
``transfers``/``requests`` lists. Headers (API key, signature) are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.servers import LocalExchangeServer, Request

ZERO = Decimal(0)
EIGHT = Decimal("0.00000001")
CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


@dataclass(frozen=True)
class Pair:
    """One spot symbol as exchangeInfo describes it."""

    symbol: str
    base: str
    quote: str
    tick: str
    step: str
    min_qty: str
    min_notional: str
    price: Decimal

    @property
    def unified(self) -> str:
        """ccxt's symbol, e.g. BTC/USD."""
        return f"{self.base}/{self.quote}"


PAIRS = [
    Pair("BTCUSD", "BTC", "USD", "0.01", "0.00001", "0.00001", "10", Decimal(50000)),
    Pair("ETHUSD", "ETH", "USD", "0.01", "0.0001", "0.0001", "10", Decimal(3000)),
    Pair("ETHBTC", "ETH", "BTC", "0.000001", "0.0001", "0.0001", "0.0001", Decimal("0.06")),
    Pair("USDCUSD", "USDC", "USD", "0.0001", "0.01", "1", "1", Decimal(1)),
]


def s8(value: Decimal) -> str:
    """Binance's fixed 8-decimal string."""
    return f"{value.quantize(EIGHT):f}"


class BinanceError(Exception):
    """An error Binance answers as ``{"code": code, "msg": msg}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


@dataclass
class Order:
    """An order as the server keeps it."""

    order_id: int
    client_id: str
    pair: Pair
    side: str
    type: str
    qty: Decimal
    price: Decimal | None
    time: int
    status: str = "NEW"
    executed: Decimal = ZERO
    quote_qty: Decimal = ZERO
    update_time: int = 0
    fills: list[Trade] = field(default_factory=list)


@dataclass
class Trade:
    """One fill."""

    trade_id: int
    order: Order
    time: int
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    maker: bool


@dataclass
class Transfer:
    """A deposit or withdrawal (``amount`` net; a withdrawal's fee is on top)."""

    kind: str
    id: str
    coin: str
    amount: Decimal
    fee: Decimal
    time: int
    status: int  # deposit: 0 pending, 1 success; withdrawal: 6 completed, 4 processing...
    address: str
    tx_id: str
    network: str = "BTC"
    name: str | None = None


class BinanceUSServer(LocalExchangeServer):
    """An in-process Binance.US look-alike; use as a context manager or start()/stop()."""

    http_methods = frozenset({"GET", "POST", "DELETE"})
    content_type = "application/json;charset=UTF-8"

    def __init__(self, *, fee_rate: str = "0.001") -> None:
        super().__init__()
        rng = random.Random()
        self.api_key = "vhc-test-" + "".join(rng.choices("abcdefghijklmnop", k=40))
        self.api_secret = "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=64))
        self.fee_rate = Decimal(fee_rate)
        self.pairs = {p.symbol: p for p in PAIRS}
        self.prices = {p.symbol: p.price for p in PAIRS}
        self.balances: dict[str, Decimal] = {}
        self.orders: list[Order] = []
        self.trades: list[Trade] = []
        self.transfers: list[Transfer] = []
        self._seq = 1000

    # ----------------------------------------------------------------- pointing
    def ccxt_config(self) -> dict[str, Any]:
        """The part of ccxt.binanceus's constructor config that points it here."""
        u = self.url
        return {
            "urls": {
                "api": {
                    "public": f"{u}/api/v3",
                    "private": f"{u}/api/v3",
                    "sapi": f"{u}/sapi/v1",
                    "sapiV2": f"{u}/sapi/v2",
                    "sapiV3": f"{u}/sapi/v3",
                }
            }
        }

    def credentials(self) -> dict[str, str]:
        """apiKey and secret of the account's key."""
        return {"apiKey": self.api_key, "secret": self.api_secret}

    # ------------------------------------------------------------- test control
    def pair(self, name: str) -> Pair:
        """A pair by exchange symbol (BTCUSD) or unified symbol (BTC/USD)."""
        up = name.upper()
        for p in self.pairs.values():
            if up in (p.symbol, p.unified):
                return p
        raise BinanceError(-1121, "Invalid symbol.")

    def set_price(self, pair: str, price: Decimal | str | int) -> None:
        """Move a pair's price and fill resting limit orders it crosses (as maker)."""
        with self._lock:
            p = self.pair(pair)
            px = Decimal(price)
            self.prices[p.symbol] = px
            for o in self.open_orders():
                assert o.price is not None
                crossed = px <= o.price if o.side == "BUY" else px >= o.price
                if o.pair is p and crossed:
                    self._fill(o, o.price, maker=True)

    def set_balance(self, asset: str, amount: Decimal | str | int) -> None:
        """Set a free balance outright."""
        with self._lock:
            self.balances[asset.upper()] = Decimal(amount)

    def balance(self, asset: str) -> Decimal:
        """Current total balance of an asset (free + locked)."""
        with self._lock:
            return self.balances.get(asset.upper(), ZERO)

    def open_orders(self) -> list[Order]:
        """Orders still open."""
        with self._lock:
            return [o for o in self.orders if o.status in ("NEW", "PARTIALLY_FILLED")]

    def add_closed_orders(self, pair: str, count: int, status: str = "CANCELED") -> None:
        """Append `count` closed orders of someone busy (no balance moves)."""
        with self._lock:
            p = self.pair(pair)
            for i in range(count):
                now = self._now()
                self.orders.append(
                    Order(self._next(), f"other-{self._seq}-{i}", p, "BUY", "LIMIT",
                          Decimal("0.001"), self.prices[p.symbol] / 2, now, status,
                          update_time=now)
                )  # fmt: skip

    def add_deposit(
        self, coin: str, amount: Decimal | str, *, address: str = "bc1qdeposit", status: int = 1
    ) -> str:
        """A deposit; credited at once when its status is 1 (success)."""
        with self._lock:
            t = Transfer("deposit", str(self._next()), coin.upper(), Decimal(amount), ZERO,
                         self._now(), status, address, f"tx{self._seq}")  # fmt: skip
            if status == 1:
                self._credit(t.coin, t.amount)
            self.transfers.append(t)
            return t.id

    def add_withdrawal(
        self, coin: str, amount: Decimal | str, *, address: str = "bc1qsomeoneelse"
    ) -> str:
        """A completed withdrawal the user never made."""
        with self._lock:
            t = Transfer("withdrawal", f"w{self._next()}", coin.upper(), Decimal(amount), ZERO,
                         self._now(), 6, address, f"tx{self._seq}")  # fmt: skip
            self._credit(t.coin, -t.amount)
            self.transfers.append(t)
            return t.id

    def fail_next(
        self,
        path: str,
        *,
        method: str | None = None,
        status: int = 503,
        times: int = 1,
        code: int | None = None,
        msg: str = "Service Unavailable",
    ) -> None:
        """The next `times` calls to `path` (e.g. "/api/v3/order") fail before doing anything:
        a plain-text HTTP error, or (``code=``) Binance's JSON error with that status."""
        self._add_fault("fail", path, method=method, times=times, status=status, code=code, msg=msg)

    def drop_request_next(self, path: str, *, method: str | None = None, times: int = 1) -> None:
        """The next `times` calls to `path` are NOT performed; the connection is just closed."""
        self._add_fault("lost", path, method=method, times=times)

    def perform_late_next(self, path: str, delay: float, *, method: str | None = None) -> None:
        """The next call to `path` gets no reply and is performed `delay` seconds later (what
        Binance's -1007 "execution status unknown" allows): a first lookup finds nothing."""
        self._add_fault("late", path, method=method, delay=delay)

    def requests_to(self, path: str, method: str | None = None) -> list[Request]:
        """Logged requests to `path` (e.g. "/api/v3/order"), of one method or all."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path == path and (method is None or r.method == method)
            ]

    # --------------------------------------------------------------- HTTP layer
    def _respond(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        body = self._body(h)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        params.update(parse_qsl(body, keep_blank_values=True))
        logged = {k: v for k, v in params.items() if k != "signature"}
        req = Request(h.command, split.path, logged)
        with self._lock:
            self.requests.append(req)
            fault = self._take_fault(h.command, split.path)
        if fault is not None and fault["kind"] == "fail":
            req.outcome = f"fail {fault['status']}"
            if fault["code"] is None:
                self._send(h, fault["status"], fault["msg"], "text/plain")
            else:
                error = {"code": fault["code"], "msg": fault["msg"]}
                self._send(h, fault["status"], json.dumps(error))
            return
        if fault is not None and fault["kind"] == "late":
            req.outcome = "late"
            route = _ROUTES[(h.command, split.path)]
            self._authenticate(h, split.query, body, params)

            def perform() -> None:
                with self._lock:
                    route[0](self, params)

            timer = threading.Timer(fault["delay"], perform)
            timer.daemon = True
            timer.start()
            self._hang_up(h)
            return
        if fault is not None and fault["kind"] == "lost":
            req.outcome = "lost"
            self._hang_up(h)
            return
        try:
            result = self._dispatch(h, split.path, split.query, body, params)
            status, payload = 200, json.dumps(result)
        except BinanceError as exc:
            req.outcome = f"error {exc.code}"
            status, payload = exc.status, json.dumps({"code": exc.code, "msg": exc.msg})
        if fault is not None and fault["kind"] == "drop":
            req.outcome = "dropped"
            self._hang_up(h)
            return
        self._send(h, status, payload)

    def _dispatch(
        self, h: BaseHTTPRequestHandler, path: str, query: str, body: str, p: dict[str, str]
    ) -> Any:
        route = _ROUTES.get((h.command, path))
        if route is None:
            raise BinanceError(-1000, f"Unknown endpoint {h.command} {path}", 404)
        handler, signed = route
        if signed:
            self._authenticate(h, query, body, p)
        with self._lock:
            return handler(self, p)

    def _authenticate(
        self, h: BaseHTTPRequestHandler, query: str, body: str, p: dict[str, str]
    ) -> None:
        key = h.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if key != self.api_key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        sent = p.get("signature")
        if not sent:
            raise BinanceError(-1102, "Mandatory parameter 'signature' was not sent.")
        # Binance signs the query string and the body as sent, signature removed.
        payload = _unsigned(query) + _unsigned(body)
        want = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sent):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        ts, window = int(p.get("timestamp") or 0), int(p.get("recvWindow") or 5000)
        if window > 60000:
            raise BinanceError(-1131, "recvWindow must be less than 60000")
        now = self._now()
        if ts >= now + 1000 or now - ts > window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")

    # ----------------------------------------------------------------- public
    def _exchange_info(self, p: dict[str, str]) -> Any:
        return {
            "timezone": "UTC",
            "serverTime": self._now(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 1200,
                },
            ],  # fmt: skip
            "exchangeFilters": [],
            "symbols": [_symbol_info(pr) for pr in self.pairs.values()],
        }

    def _ticker_24hr(self, p: dict[str, str]) -> Any:
        pr = self.pair(p.get("symbol") or "")
        px = self.prices[pr.symbol]
        now = self._now()
        return {
            "symbol": pr.symbol, "priceChange": "0.00000000", "priceChangePercent": "0.000",
            "weightedAvgPrice": s8(px), "prevClosePrice": s8(px), "lastPrice": s8(px),
            "lastQty": "0.10000000", "bidPrice": s8(px), "bidQty": "1.00000000",
            "askPrice": s8(px), "askQty": "1.00000000", "openPrice": s8(px), "highPrice": s8(px),
            "lowPrice": s8(px), "volume": "100.00000000", "quoteVolume": s8(px * 100),
            "openTime": now - 86_400_000, "closeTime": now, "firstId": 1, "lastId": 100,
            "count": 100,
        }  # fmt: skip

    def _time(self, p: dict[str, str]) -> Any:
        return {"serverTime": self._now()}

    # ---------------------------------------------------------------- private
    def _account(self, p: dict[str, str]) -> Any:
        locked = self._locked()
        assets = sorted(set(self.balances) | set(locked))
        return {
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0, "canTrade": True, "canWithdraw": True, "canDeposit": True,
            "updateTime": self._now(), "accountType": "SPOT", "permissions": ["SPOT"],
            "balances": [
                {"asset": a, "free": s8(self.balances.get(a, ZERO) - locked.get(a, ZERO)),
                 "locked": s8(locked.get(a, ZERO))}
                for a in assets
            ],
        }  # fmt: skip

    def _locked(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for o in self.open_orders():
            assert o.price is not None
            left = o.qty - o.executed
            asset, amount = (
                (o.pair.quote, left * o.price) if o.side == "BUY" else (o.pair.base, left)
            )
            out[asset] = out.get(asset, ZERO) + amount
        return out

    def _new_order(self, p: dict[str, str]) -> Any:
        pr = self.pair(_required(p, "symbol"))
        side, otype = _required(p, "side"), _required(p, "type")
        if side not in ("BUY", "SELL") or otype not in ("MARKET", "LIMIT"):
            raise BinanceError(-1116, "Invalid orderType.")
        qty = _dec(_required(p, "quantity"), "quantity")
        price = _dec(p["price"], "price") if otype == "LIMIT" else None
        if otype == "LIMIT" and p.get("timeInForce") != "GTC":
            raise BinanceError(-1102, "Mandatory parameter 'timeInForce' was not sent.")
        cid = p.get("newClientOrderId") or f"srv{self._seq}"
        if not CLIENT_ID.match(cid):
            raise BinanceError(-1100, "Illegal characters found in parameter 'newClientOrderId'.")
        if any(o.client_id == cid for o in self.open_orders()):
            raise BinanceError(-2010, "Duplicate order sent.")
        if qty < Decimal(pr.min_qty) or (qty / Decimal(pr.step)) % 1 != 0:
            raise BinanceError(-1013, "Filter failure: LOT_SIZE")
        if price is not None and (price / Decimal(pr.tick)) % 1 != 0:
            raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        last = self.prices[pr.symbol]
        if qty * (price or last) < Decimal(pr.min_notional):
            raise BinanceError(-1013, "Filter failure: NOTIONAL")
        need_asset, need = (pr.quote, qty * (price or last)) if side == "BUY" else (pr.base, qty)
        free = self.balances.get(need_asset, ZERO) - self._locked().get(need_asset, ZERO)
        if need > free:
            raise BinanceError(-2010, "Account has insufficient balance for requested action.")
        now = self._now()
        o = Order(self._next(), cid, pr, side, otype, qty, price, now, update_time=now)
        self.orders.append(o)
        crosses = price is None or (price >= last if side == "BUY" else price <= last)
        if crosses:
            self._fill(o, last, maker=False)
        out = self._order_json(o)
        del out["time"], out["updateTime"], out["isWorking"], out["stopPrice"]
        out["transactTime"] = now
        if p.get("newOrderRespType", "FULL") == "FULL":
            out["fills"] = [
                {"price": s8(t.price), "qty": s8(t.qty), "commission": s8(t.commission),
                 "commissionAsset": t.commission_asset, "tradeId": t.trade_id}
                for t in o.fills
            ]  # fmt: skip
        return out

    def _fill(self, o: Order, price: Decimal, maker: bool) -> None:
        qty = o.qty - o.executed
        cost = qty * price
        # Binance takes its commission from what the order receives.
        fee_asset = o.pair.base if o.side == "BUY" else o.pair.quote
        fee = ((qty if o.side == "BUY" else cost) * self.fee_rate).quantize(EIGHT)
        if o.side == "BUY":
            self._credit(o.pair.quote, -cost)
            self._credit(o.pair.base, qty - fee)
        else:
            self._credit(o.pair.base, -qty)
            self._credit(o.pair.quote, cost - fee)
        t = Trade(self._next(), o, self._now(), price, qty, fee, fee_asset, maker)
        self.trades.append(t)
        o.fills.append(t)
        o.executed += qty
        o.quote_qty += cost
        o.status = "FILLED"
        o.update_time = t.time

    def _credit(self, asset: str, amount: Decimal) -> None:
        self.balances[asset] = self.balances.get(asset, ZERO) + amount

    def _order_json(self, o: Order) -> dict[str, Any]:
        return {
            "symbol": o.pair.symbol, "orderId": o.order_id, "orderListId": -1,
            "clientOrderId": o.client_id, "price": s8(o.price or ZERO), "origQty": s8(o.qty),
            "executedQty": s8(o.executed), "cummulativeQuoteQty": s8(o.quote_qty),
            "status": o.status, "timeInForce": "GTC", "type": o.type, "side": o.side,
            "stopPrice": "0.00000000", "time": o.time, "updateTime": o.update_time,
            "isWorking": True, "workingTime": o.time, "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }  # fmt: skip

    def _find(self, p: dict[str, str]) -> Order:
        pr = self.pair(_required(p, "symbol"))
        oid, cid = p.get("orderId"), p.get("origClientOrderId")
        if oid is None and cid is None:
            raise BinanceError(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        # A client id can be reused once the order is closed: the latest one answers.
        for o in reversed(self.orders):
            if o.pair is pr and (str(o.order_id) == oid or (oid is None and o.client_id == cid)):
                return o
        raise BinanceError(-2013, "Order does not exist.")

    def _query_order(self, p: dict[str, str]) -> Any:
        return self._order_json(self._find(p))

    def _cancel_order(self, p: dict[str, str]) -> Any:
        try:
            o = self._find(p)
        except BinanceError:
            raise BinanceError(-2011, "Unknown order sent.") from None
        if o not in self.open_orders():
            raise BinanceError(-2011, "Unknown order sent.")
        return self._cancel(o)

    def _cancel(self, o: Order) -> dict[str, Any]:
        o.status, o.update_time = "CANCELED", self._now()
        out = self._order_json(o)
        out["origClientOrderId"] = o.client_id
        out["clientOrderId"] = f"cancel{self._next()}"
        out["transactTime"] = o.update_time
        return out

    def _cancel_open(self, p: dict[str, str]) -> Any:
        pr = self.pair(_required(p, "symbol"))
        mine = [o for o in self.open_orders() if o.pair is pr]
        if not mine:
            raise BinanceError(-2011, "Unknown order sent.")
        return [self._cancel(o) for o in mine]

    def _open_orders(self, p: dict[str, str]) -> Any:
        sym = p.get("symbol")
        pr = self.pair(sym) if sym else None
        return [self._order_json(o) for o in self.open_orders() if pr is None or o.pair is pr]

    def _all_orders(self, p: dict[str, str]) -> Any:
        pr = self.pair(_required(p, "symbol"))
        rows = [o for o in self.orders if o.pair is pr]
        return [self._order_json(o) for o in _window(rows, p, "orderId", lambda o: o.order_id,
                                                       lambda o: o.time)]  # fmt: skip

    def _my_trades(self, p: dict[str, str]) -> Any:
        pr = self.pair(_required(p, "symbol"))
        rows = [t for t in self.trades if t.order.pair is pr]
        if p.get("orderId"):
            rows = [t for t in rows if str(t.order.order_id) == p["orderId"]]
        picked = _window(rows, p, "fromId", lambda t: t.trade_id, lambda t: t.time)
        return [
            {"symbol": pr.symbol, "id": t.trade_id, "orderId": t.order.order_id,
             "orderListId": -1, "price": s8(t.price), "qty": s8(t.qty),
             "quoteQty": s8(t.qty * t.price), "commission": s8(t.commission),
             "commissionAsset": t.commission_asset, "time": t.time,
             "isBuyer": t.order.side == "BUY", "isMaker": t.maker, "isBestMatch": True}
            for t in picked
        ]  # fmt: skip

    def _deposits(self, p: dict[str, str]) -> Any:
        rows = self._transfers("deposit", p)
        return [
            {"id": t.id, "amount": s8(t.amount), "coin": t.coin, "network": t.network,
             "status": t.status, "address": t.address, "addressTag": "", "txId": t.tx_id,
             "insertTime": t.time, "transferType": 0, "confirmTimes": "2/2"}
            for t in rows
        ]  # fmt: skip

    def _withdrawals(self, p: dict[str, str]) -> Any:
        rows = self._transfers("withdrawal", p)
        return [
            {"id": t.id, "amount": s8(t.amount), "transactionFee": s8(t.fee), "coin": t.coin,
             "status": t.status, "address": t.address, "txId": t.tx_id,
             "applyTime": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t.time / 1000)),
             "network": t.network, "transferType": 0}
            for t in rows
        ]  # fmt: skip

    def _transfers(self, kind: str, p: dict[str, str]) -> list[Transfer]:
        start, end = int(p.get("startTime") or 0), int(p.get("endTime") or 2**62)
        if end - start > 90 * 86_400_000 and p.get("startTime") and p.get("endTime"):
            raise BinanceError(-1127, "More than 90 days between startTime and endTime.")
        coin = p.get("coin")
        rows = [
            t for t in self.transfers
            if t.kind == kind and start <= t.time <= end and (coin is None or t.coin == coin)
        ]  # fmt: skip
        rows.sort(key=lambda t: t.time, reverse=True)  # newest first, as Binance lists them
        offset, limit = int(p.get("offset") or 0), int(p.get("limit") or 1000)
        return rows[offset : offset + limit]

    def _withdraw(self, p: dict[str, str]) -> Any:
        coin = _required(p, "coin").upper()
        amount = _dec(_required(p, "amount"), "amount")
        address = _required(p, "address")
        fee = Decimal("0.0001") if coin == "BTC" else ZERO
        if amount + fee > self.balances.get(coin, ZERO) - self._locked().get(coin, ZERO):
            raise BinanceError(-4026, "User has insufficient balance")
        t = Transfer("withdrawal", f"w{self._next()}", coin, amount, fee, self._now(), 4,
                     address, "", p.get("network") or coin, p.get("name"))  # fmt: skip
        self._credit(coin, -(amount + fee))
        self.transfers.append(t)
        return {"id": t.id}

    # ------------------------------------------------------------------ helpers
    def _next(self) -> int:
        self._seq += 1
        return self._seq

    @staticmethod
    def _now() -> int:
        return int(time.time() * 1000)


_ROUTES: dict[tuple[str, str], tuple[Any, bool]] = {
    ("GET", "/api/v3/exchangeInfo"): (BinanceUSServer._exchange_info, False),
    ("GET", "/api/v3/ticker/24hr"): (BinanceUSServer._ticker_24hr, False),
    ("GET", "/api/v3/time"): (BinanceUSServer._time, False),
    ("GET", "/api/v3/account"): (BinanceUSServer._account, True),
    ("POST", "/api/v3/order"): (BinanceUSServer._new_order, True),
    ("GET", "/api/v3/order"): (BinanceUSServer._query_order, True),
    ("DELETE", "/api/v3/order"): (BinanceUSServer._cancel_order, True),
    ("GET", "/api/v3/openOrders"): (BinanceUSServer._open_orders, True),
    ("DELETE", "/api/v3/openOrders"): (BinanceUSServer._cancel_open, True),
    ("GET", "/api/v3/allOrders"): (BinanceUSServer._all_orders, True),
    ("GET", "/api/v3/myTrades"): (BinanceUSServer._my_trades, True),
    ("GET", "/sapi/v1/capital/deposit/hisrec"): (BinanceUSServer._deposits, True),
    ("GET", "/sapi/v1/capital/withdraw/history"): (BinanceUSServer._withdrawals, True),
    ("POST", "/sapi/v1/capital/withdraw/apply"): (BinanceUSServer._withdraw, True),
}


def _symbol_info(pr: Pair) -> dict[str, Any]:
    return {
        "symbol": pr.symbol, "status": "TRADING", "baseAsset": pr.base,
        "baseAssetPrecision": 8, "quoteAsset": pr.quote, "quotePrecision": 8,
        "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": pr.tick, "maxPrice": "1000000.00",
             "tickSize": pr.tick},
            {"filterType": "LOT_SIZE", "minQty": pr.min_qty, "maxQty": "9000.00",
             "stepSize": pr.step},
            {"filterType": "NOTIONAL", "minNotional": pr.min_notional,
             "applyMinToMarket": True, "maxNotional": "9000000.00", "applyMaxToMarket": False,
             "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }  # fmt: skip


def _unsigned(raw: str) -> str:
    """A query string or body without its `signature=` part (kept byte for byte otherwise)."""
    parts = [part for part in raw.split("&") if part and not part.startswith("signature=")]
    return "&".join(parts)


def _required(p: dict[str, str], name: str) -> str:
    value = p.get(name)
    if not value:
        raise BinanceError(
            -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        )
    return value


def _dec(value: str, name: str) -> Decimal:
    try:
        out = Decimal(value)
    except ArithmeticError:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.") from None
    if not out.is_finite() or out <= 0:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'.")
    return out


def _window(rows: list[Any], p: dict[str, str], id_param: str, ident: Any, when: Any) -> list[Any]:
    """Binance's paging: from an id or startTime ascending, else the most recent `limit`."""
    limit = min(int(p.get("limit") or 500), 1000)
    if id_param == "fromId" and p.get("fromId") and (p.get("startTime") or p.get("endTime")):
        raise BinanceError(-1128, "Combination of optional parameters invalid.")
    if id_param == "fromId" and p.get("startTime"):
        # myTrades serves at most 24 hours from startTime (endTime defaults to start + 24 h).
        start = int(p["startTime"])
        end = int(p.get("endTime") or start + 86_400_000)
        if end - start > 86_400_000:
            raise BinanceError(-1127, "More than 24 hours between startTime and endTime.")
        p = {**p, "endTime": str(end)}
    if p.get("endTime"):
        rows = [r for r in rows if when(r) <= int(p["endTime"])]
    if p.get(id_param):
        return [r for r in rows if ident(r) >= int(p[id_param])][:limit]
    if p.get("startTime"):
        return [r for r in rows if when(r) >= int(p["startTime"])][:limit]
    return rows[-limit:]
