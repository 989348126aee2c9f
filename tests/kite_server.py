"""A local stand-in for Zerodha's Kite Connect v3 REST API, good enough for *unmodified* kiteconnect.

Point ``KiteConnect(api_key, root=server.url)`` at it (or ``kite: {root: server.url}`` on an
account). It runs in a thread on 127.0.0.1 with an OS-chosen port and simulates one account on
NSE: instruments, quotes, orders (regular and AMO, MIS/CNC/NRML), fills, positions, holdings and
funds, all in Decimal, answered as Kite answers (``{"status": "success", "data": ...}``).

What kiteconnect 5.x does (read from its connect.py; the tests pin it down):
- every call sends ``X-Kite-Version: 3`` and, once logged in, ``Authorization: token
  api_key:access_token``; a missing or wrong header is HTTP 403 ``TokenException``;
- ``generate_session`` POSTs ``/session/token`` (form) with ``checksum = sha256(api_key +
  request_token + api_secret)``; a request token works once, for a few minutes;
- an access token expires at 06:00 Asia/Kolkata the next day (``expire_sessions`` ends them
  early);
- an error body ``{"status": "error", "message": ..., "error_type": ...}`` raises the
  kiteconnect exception of that name; a non-JSON body raises DataException: every injected
  5xx/429 here answers JSON as Kite does;
- a dropped reply (``drop_reply_next``) reaches the client as a ``requests`` exception;
  kiteconnect does not resend.

Kite keeps the order book and the trade book for TODAY only: ``new_day()`` clears them (CNC
positions become holdings, intraday positions are squared off). The server's clock
(``now``, a UTC datetime, settable) decides market hours (NSE 09:15-15:30 IST, weekdays, not
``holidays``) and is sent in every reply's ``Date`` header.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from tests.servers import LocalExchangeServer, Request

IST = ZoneInfo("Asia/Kolkata")
ZERO = Decimal(0)
OPEN_AT = time(9, 15)
CLOSE_AT = time(15, 30)
PRODUCTS = ("MIS", "CNC", "NRML")
VARIETIES = ("regular", "amo")


@dataclass(frozen=True)
class Instrument:
    """One NSE equity as Kite's instruments CSV describes it."""

    token: int
    tradingsymbol: str
    name: str
    tick_size: Decimal
    price: Decimal  # starting last price
    exchange: str = "NSE"
    lot_size: int = 1


INSTRUMENTS = (
    Instrument(408065, "INFY", "INFOSYS", Decimal("0.05"), Decimal("1500")),
    Instrument(2953217, "TCS", "TATA CONSULTANCY SERV LT", Decimal("0.05"), Decimal("3500")),
    Instrument(779521, "SBIN", "STATE BANK OF INDIA", Decimal("0.05"), Decimal("800")),
)


class KiteError(Exception):
    """An error answer: HTTP status, Kite's error_type and message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


@dataclass
class Order:
    """One order in the day's book; ``history`` keeps every state it went through."""

    order_id: str
    variety: str
    exchange: str
    tradingsymbol: str
    transaction_type: str
    quantity: int
    product: str
    order_type: str
    price: Decimal
    tag: str | None
    placed: datetime
    status: str = "OPEN"
    status_message: str | None = None
    filled: int = 0
    average: Decimal = ZERO
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def symbol(self) -> str:
        return f"{self.exchange}:{self.tradingsymbol}"


@dataclass
class Trade:
    """One fill."""

    trade_id: str
    order_id: str
    exchange: str
    tradingsymbol: str
    transaction_type: str
    product: str
    quantity: int
    price: Decimal
    at: datetime


def _ist(moment: datetime) -> str:
    """Kite's timestamp format: IST wall time, no offset."""
    return moment.astimezone(IST).strftime("%Y-%m-%d %H:%M:%S")


def _num(value: Decimal) -> float | int:
    """A JSON number as Kite sends it."""
    return int(value) if value == value.to_integral_value() else float(value)


class KiteServer(LocalExchangeServer):
    """An in-process Kite Connect look-alike; use as a context manager or start()/stop()."""

    http_methods = frozenset({"GET", "POST", "PUT", "DELETE"})
    content_type = "application/json"

    def __init__(self) -> None:
        super().__init__()
        self.api_key = "kitetest" + secrets.token_hex(6)
        self.api_secret = secrets.token_hex(16)
        self.user_id = "ZV1234"
        # A Tuesday inside market hours, unless a test moves it.
        self.now = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)  # 10:30 IST
        self.holidays: set[date] = set()
        self.instruments = {i.tradingsymbol: i for i in INSTRUMENTS}
        self.prices = {i.tradingsymbol: i.price for i in INSTRUMENTS}
        self.cash = Decimal("1000000")
        self.orders: list[Order] = []
        self.trades: list[Trade] = []
        self.positions: dict[tuple[str, str], dict[str, Any]] = {}  # (symbol, product) -> agg
        self.holdings: dict[str, dict[str, Decimal]] = {}  # tradingsymbol -> quantity, average
        self.request_tokens: dict[str, datetime] = {}
        self.sessions: dict[str, datetime] = {}  # access token -> expiry (UTC)
        self._rejections: list[str] = []
        self._seq = 0

    def reply_date(self) -> datetime:
        """Every reply's Date header tells the server's clock, as Kite's own does."""
        return self.now

    # ------------------------------------------------------------- test control
    def issue_request_token(self) -> str:
        """What Kite's login page hands back on the redirect: valid once, for 5 minutes."""
        with self._lock:
            token = secrets.token_hex(16)
            self.request_tokens[token] = self.now + timedelta(minutes=5)
            return token

    def issue_access_token(self) -> str:
        """A session as if `generate_session` had run now (for tests of other things)."""
        with self._lock:
            token = secrets.token_hex(16)
            self.sessions[token] = self.session_expiry(self.now)
            return token

    @staticmethod
    def session_expiry(login: datetime) -> datetime:
        """06:00 IST after the login."""
        local = login.astimezone(IST)
        six = local.replace(hour=6, minute=0, second=0, microsecond=0)
        if local >= six:
            six += timedelta(days=1)
        return six.astimezone(UTC)

    def expire_sessions(self) -> None:
        """Every access token stops working (as at 06:00 IST)."""
        with self._lock:
            self.sessions.clear()

    def set_now_ist(self, text: str) -> None:
        """Move the server's clock, e.g. ``set_now_ist("2026-12-01 16:00")``."""
        local = datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=IST)
        with self._lock:
            self.now = local.astimezone(UTC)

    def market_open(self) -> bool:
        local = self.now.astimezone(IST)
        return (
            local.weekday() < 5
            and local.date() not in self.holidays
            and OPEN_AT <= local.time() < CLOSE_AT
        )

    def set_price(self, tradingsymbol: str, price: Decimal | str | int) -> None:
        """Move the last price and fill resting limit orders it crosses."""
        with self._lock:
            self.prices[tradingsymbol] = Decimal(price)
            for o in self.open_orders():
                if o.tradingsymbol == tradingsymbol and self.market_open():
                    self._try_fill(o)

    def set_holding(
        self, tradingsymbol: str, quantity: int, average: Decimal | str | int = 0
    ) -> None:
        with self._lock:
            self.holdings[tradingsymbol] = {
                "quantity": Decimal(quantity),
                "average": Decimal(average),
            }

    def open_orders(self) -> list[Order]:
        with self._lock:
            return [o for o in self.orders if o.status in ("OPEN", "AMO REQ RECEIVED")]

    def new_day(self, now_ist: str) -> None:
        """The next trading day: the books empty, CNC positions become holdings."""
        with self._lock:
            for (symbol, product), p in self.positions.items():
                if product == "CNC" and p["quantity"]:
                    h = self.holdings.setdefault(symbol, {"quantity": ZERO, "average": ZERO})
                    h["quantity"] += p["quantity"]
                    h["average"] = p["average"] if p["quantity"] > 0 else h["average"]
            self.positions.clear()
            self.orders.clear()
            self.trades.clear()
            self.set_now_ist(now_ist)

    def fail_next(
        self,
        path: str,
        status: int = 503,
        error_type: str = "NetworkException",
        message: str = "Upstream service unavailable",
        times: int = 1,
        method: str | None = None,
    ) -> None:
        """The next ``times`` calls whose path starts with ``path`` answer this JSON error."""
        self._add_fault("fail", path, method=method, times=times, status=status,
                        error_type=error_type, message=message)  # fmt: skip

    def reject_next(self, message: str) -> None:
        """The next order is accepted (an order id is returned), then REJECTED by the RMS."""
        with self._lock:
            self._rejections.append(message)

    def requests_to(self, path: str, method: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.startswith(path) and (method is None or r.method == method)
            ]

    # --------------------------------------------------------------- HTTP layer
    def _respond(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        path = split.path
        raw = self._body(h)
        query = parse_qs(split.query, keep_blank_values=True)
        form = parse_qs(raw, keep_blank_values=True) if raw else {}
        multi = {**query, **form}
        params = {k: v[-1] for k, v in multi.items()}
        rec = Request(h.command, path, params)
        with self._lock:
            self.requests.append(rec)
            fault = self._take_fault(h.command, path)
        try:
            if fault and fault["kind"] == "fail":
                raise KiteError(fault["status"], fault["error_type"], fault["message"])
            with self._lock:
                body, ctype = self._dispatch(h, path, params, multi)
        except KiteError as err:
            rec.outcome = f"{err.error_type}: {err.message}"
            doc = {"status": "error", "message": err.message, "data": None,
                   "error_type": err.error_type}  # fmt: skip
            return self._send(h, err.status, json.dumps(doc))
        except Exception as err:  # a server bug: say so instead of hanging up
            rec.outcome = f"server bug: {err!r}"
            doc = {"status": "error", "message": "Internal server error",
                   "error_type": "GeneralException"}  # fmt: skip
            return self._send(h, 500, json.dumps(doc))
        if fault and fault["kind"] == "drop":
            rec.outcome = "dropped"
            self._hang_up(h)
            return None
        return self._send(h, 200, body, ctype)

    def _fault_matches(self, wanted: str, path: str) -> bool:
        """A fault applies to its path and everything below it."""
        return path.startswith(wanted)

    def _dispatch(
        self, h: BaseHTTPRequestHandler, path: str, p: dict[str, str], multi: dict[str, list[str]]
    ) -> tuple[str, str]:
        if h.headers.get("X-Kite-Version") != "3":
            raise KiteError(400, "InputException", "Invalid or missing X-Kite-Version header")
        method = h.command
        if path == "/session/token" and method == "POST":
            return self._ok(self._session(p))
        self._authenticate(h.headers.get("Authorization"))
        parts = [x for x in path.split("/") if x]
        if parts == ["instruments"] or parts[:1] == ["instruments"] and len(parts) == 2:
            return self._instruments_csv(parts[1] if len(parts) == 2 else None), "text/csv"
        routes: dict[tuple[str, str], Any] = {
            ("GET", "/user/profile"): self._profile,
            ("GET", "/user/margins"): lambda: self._margins(None),
            ("GET", "/user/margins/equity"): lambda: self._margins("equity"),
            ("GET", "/orders"): lambda: [self._order_json(o) for o in self.orders],
            ("GET", "/trades"): lambda: [self._trade_json(t) for t in self.trades],
            ("GET", "/portfolio/positions"): self._positions,
            ("GET", "/portfolio/holdings"): self._holdings,
            ("GET", "/quote"): lambda: self._quote(multi.get("i", [])),
            ("GET", "/quote/ltp"): lambda: self._ltp(multi.get("i", [])),
        }
        handler = routes.get((method, path))
        if handler is not None:
            return self._ok(handler())
        if parts[:1] == ["orders"]:
            if method == "POST" and len(parts) == 2:
                return self._ok(self._place(parts[1], p))
            if method == "PUT" and len(parts) == 3:
                return self._ok(self._modify(parts[1], parts[2], p))
            if method == "DELETE" and len(parts) == 3:
                return self._ok(self._cancel(parts[1], parts[2]))
            if method == "GET" and len(parts) == 2:
                return self._ok(self._find(parts[1]).history)
            if method == "GET" and len(parts) == 3 and parts[2] == "trades":
                oid = self._find(parts[1]).order_id
                return self._ok([self._trade_json(t) for t in self.trades if t.order_id == oid])
        raise KiteError(404, "GeneralException", "Route not found")

    @staticmethod
    def _ok(data: Any) -> tuple[str, str]:
        return json.dumps({"status": "success", "data": data}), "application/json"

    def _authenticate(self, header: str | None) -> None:
        prefix = f"token {self.api_key}:"
        if not header or not header.startswith(prefix):
            raise KiteError(403, "TokenException", "Incorrect `api_key` or `access_token`.")
        expiry = self.sessions.get(header[len(prefix) :])
        if expiry is None or self.now >= expiry:
            raise KiteError(403, "TokenException", "Incorrect `api_key` or `access_token`.")

    def _session(self, p: dict[str, str]) -> dict[str, Any]:
        token = p.get("request_token", "")
        if p.get("api_key") != self.api_key:
            raise KiteError(403, "TokenException", "Invalid `api_key`.")
        expected = hashlib.sha256((self.api_key + token + self.api_secret).encode()).hexdigest()
        if p.get("checksum") != expected:
            raise KiteError(403, "TokenException", "Invalid `checksum`.")
        valid_until = self.request_tokens.pop(token, None)
        if valid_until is None or self.now >= valid_until:
            raise KiteError(403, "TokenException", "Token is invalid or has expired.")
        access = secrets.token_hex(16)
        self.sessions[access] = self.session_expiry(self.now)
        return {
            "user_type": "individual",
            "email": "trader@example.com",
            "user_name": "Test Trader",
            "user_shortname": "Trader",
            "broker": "ZERODHA",
            "exchanges": ["NSE", "BSE"],
            "products": list(PRODUCTS),
            "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
            "user_id": self.user_id,
            "api_key": self.api_key,
            "access_token": access,
            "public_token": secrets.token_hex(8),
            "refresh_token": "",
            "enctoken": "",
            "login_time": _ist(self.now),
        }

    def _profile(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "user_name": "Test Trader", "broker": "ZERODHA",
                "exchanges": ["NSE", "BSE"], "products": list(PRODUCTS)}  # fmt: skip

    def _used_margin(self) -> Decimal:
        return (
            sum(
                (o.price or self.prices[o.tradingsymbol]) * (o.quantity - o.filled)
                for o in self.open_orders()
                if o.transaction_type == "BUY"
            )
            or ZERO
        )

    def _margins(self, segment: str | None) -> Any:
        used = self._used_margin()
        equity = {
            "enabled": True,
            "net": _num(self.cash - used),
            "available": {"adhoc_margin": 0, "cash": _num(self.cash), "opening_balance":
                          _num(self.cash), "live_balance": _num(self.cash - used),
                          "collateral": 0, "intraday_payin": 0},
            "utilised": {"debits": _num(used), "exposure": 0, "m2m_realised": 0,
                         "m2m_unrealised": 0, "option_premium": 0, "payout": 0, "span": 0,
                         "holding_sales": 0, "turnover": 0},
        }  # fmt: skip
        if segment == "equity":
            return equity
        return {"equity": equity, "commodity": {"enabled": False, "net": 0,
                "available": {"cash": 0, "live_balance": 0}, "utilised": {"debits": 0}}}  # fmt: skip

    def _instruments_csv(self, exchange: str | None) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["instrument_token", "exchange_token", "tradingsymbol", "name", "last_price",
                    "expiry", "strike", "tick_size", "lot_size", "instrument_type", "segment",
                    "exchange"])  # fmt: skip
        for i in self.instruments.values():
            if exchange and i.exchange != exchange:
                continue
            w.writerow([i.token, i.token >> 8, i.tradingsymbol, i.name, "0", "", "0",
                        str(i.tick_size), i.lot_size, "EQ", i.exchange, i.exchange])  # fmt: skip
        return out.getvalue()

    def _instrument(self, key: str) -> Instrument | None:
        exchange, _, symbol = key.partition(":")
        i = self.instruments.get(symbol)
        return i if i is not None and i.exchange == exchange else None

    def _quote(self, keys: list[str]) -> dict[str, Any]:
        out = {}
        for key in keys:
            i = self._instrument(key)
            if i is None:
                continue  # Kite leaves unknown instruments out
            last = self.prices[i.tradingsymbol]
            bid, ask = last - i.tick_size, last + i.tick_size
            out[key] = {
                "instrument_token": i.token,
                "timestamp": _ist(self.now),
                "last_trade_time": _ist(self.now),
                "last_price": _num(last),
                "volume": 1000,
                "ohlc": {"open": _num(last), "high": _num(last), "low": _num(last),
                         "close": _num(last)},
                "depth": {"buy": [{"price": _num(bid), "quantity": 100, "orders": 3}],
                          "sell": [{"price": _num(ask), "quantity": 100, "orders": 2}]},
            }  # fmt: skip
        return out

    def _ltp(self, keys: list[str]) -> dict[str, Any]:
        return {
            k: {"instrument_token": i.token, "last_price": _num(self.prices[i.tradingsymbol])}
            for k in keys
            if (i := self._instrument(k)) is not None
        }

    # ------------------------------------------------------------------- orders
    def _next_id(self) -> str:
        self._seq += 1
        return f"2512{self._seq:011d}"

    def _place(self, variety: str, p: dict[str, str]) -> dict[str, str]:
        if variety not in VARIETIES:
            raise KiteError(400, "InputException", f"Invalid `variety`: {variety}.")
        exchange, symbol = p.get("exchange", ""), p.get("tradingsymbol", "")
        instrument = self._instrument(f"{exchange}:{symbol}")
        if instrument is None:
            raise KiteError(400, "InputException", "Invalid `tradingsymbol`.")
        side = p.get("transaction_type", "")
        if side not in ("BUY", "SELL"):
            raise KiteError(400, "InputException", "Invalid `transaction_type`.")
        product = p.get("product", "")
        if product not in PRODUCTS:
            raise KiteError(400, "InputException", "Invalid `product`.")
        order_type = p.get("order_type", "")
        if order_type not in ("MARKET", "LIMIT"):
            raise KiteError(400, "InputException", "Invalid `order_type`.")
        qty_text = p.get("quantity", "")
        if not qty_text.isdigit() or int(qty_text) <= 0:
            raise KiteError(400, "InputException", "Invalid `quantity`.")
        tag = p.get("tag")
        if tag is not None and (len(tag) > 20 or not tag.isalnum()):
            raise KiteError(400, "InputException", "Invalid `tag`: max 20 alphanumeric chars.")
        price = ZERO
        if order_type == "LIMIT":
            try:
                price = Decimal(p.get("price", ""))
            except ArithmeticError:
                raise KiteError(400, "InputException", "Invalid `price`.") from None
            if price <= 0 or price % instrument.tick_size != 0:
                raise KiteError(
                    400,
                    "InputException",
                    f"Tick size for this script is {instrument.tick_size}. Kindly enter price "
                    "in the multiple of tick size for this script",
                )
        if variety == "regular" and not self.market_open():
            raise KiteError(
                400,
                "InputException",
                "Markets are closed right now. Use GTT for placing long standing orders "
                "instead. [Read more.](https://support.zerodha.com/)",
            )
        if variety == "amo" and self.market_open():
            raise KiteError(
                400, "InputException", "AMO orders can be placed only outside market hours."
            )
        order = Order(
            order_id=self._next_id(), variety=variety, exchange=exchange, tradingsymbol=symbol,
            transaction_type=side, quantity=int(qty_text), product=product,
            order_type=order_type, price=price, tag=tag, placed=self.now,
        )  # fmt: skip
        self.orders.append(order)
        self._snapshot(order, "PUT ORDER REQ RECEIVED")
        if variety == "amo":
            self._snapshot(order, "AMO REQ RECEIVED")
            return {"order_id": order.order_id}
        self._snapshot(order, "VALIDATION PENDING")
        if self._rejections:
            order.status_message = self._rejections.pop(0)
            self._snapshot(order, "REJECTED")
            return {"order_id": order.order_id}
        if side == "BUY" and self._cost(order) > self.cash - self._used_margin():
            order.status_message = "Insufficient funds. Required margin is more than available."
            self._snapshot(order, "REJECTED")
            return {"order_id": order.order_id}
        if side == "SELL" and product == "CNC" and int(qty_text) > self._sellable(symbol):
            order.status_message = "Insufficient holdings to sell. Check your holdings."
            self._snapshot(order, "REJECTED")
            return {"order_id": order.order_id}
        self._snapshot(order, "OPEN")
        self._try_fill(order)
        return {"order_id": order.order_id}

    def _cost(self, o: Order) -> Decimal:
        return (o.price if o.order_type == "LIMIT" else self.prices[o.tradingsymbol]) * o.quantity

    def _sellable(self, symbol: str) -> int:
        held = self.holdings.get(symbol, {}).get("quantity", ZERO)
        day = self.positions.get((symbol, "CNC"), {}).get("quantity", ZERO)
        return int(held + day)

    def _try_fill(self, o: Order) -> None:
        last = self.prices[o.tradingsymbol]
        if o.order_type == "LIMIT":
            crosses = last <= o.price if o.transaction_type == "BUY" else last >= o.price
            if not crosses:
                return
        price = last
        qty = o.quantity - o.filled
        self._seq += 1
        trade = Trade(f"T{self._seq:08d}", o.order_id, o.exchange, o.tradingsymbol,
                      o.transaction_type, o.product, qty, price, self.now)  # fmt: skip
        self.trades.append(trade)
        o.average = ((o.average * o.filled) + price * qty) / (o.filled + qty)
        o.filled += qty
        signed = Decimal(qty) if o.transaction_type == "BUY" else -Decimal(qty)
        self.cash -= signed * price
        pos = self.positions.setdefault(
            (o.tradingsymbol, o.product),
            {"quantity": ZERO, "buy_qty": ZERO, "buy_value": ZERO, "sell_qty": ZERO,
             "sell_value": ZERO, "average": ZERO},
        )  # fmt: skip
        pos["quantity"] += signed
        side = "buy" if signed > 0 else "sell"
        pos[f"{side}_qty"] += abs(signed)
        pos[f"{side}_value"] += abs(signed) * price
        pos["average"] = price
        self._snapshot(o, "COMPLETE")

    def _snapshot(self, o: Order, status: str) -> None:
        o.status = status
        o.history.append(self._order_json(o))

    def _find(self, order_id: str) -> Order:
        for o in self.orders:
            if o.order_id == order_id:
                return o
        raise KiteError(400, "InputException", "Couldn't find that `order_id`.")

    def _modify(self, variety: str, order_id: str, p: dict[str, str]) -> dict[str, str]:
        o = self._find(order_id)
        if o.status not in ("OPEN", "AMO REQ RECEIVED"):
            raise KiteError(
                400, "InputException", f"Order cannot be modified as it is {o.status.lower()}."
            )
        if "quantity" in p:
            o.quantity = int(p["quantity"])
        if "price" in p and p["price"]:
            price = Decimal(p["price"])
            tick = self.instruments[o.tradingsymbol].tick_size
            if price % tick != 0:
                raise KiteError(400, "InputException", f"Tick size for this script is {tick}.")
            o.price = price
        before = o.status
        self._snapshot(o, "MODIFY PENDING")
        self._snapshot(o, before)
        if o.variety == "regular":
            self._try_fill(o)
        return {"order_id": o.order_id}

    def _cancel(self, variety: str, order_id: str) -> dict[str, str]:
        o = self._find(order_id)
        if o.status not in ("OPEN", "AMO REQ RECEIVED"):
            raise KiteError(
                400, "InputException", f"Order cannot be cancelled as it is {o.status.lower()}."
            )
        self._snapshot(o, "CANCEL PENDING")
        o.status_message = "Cancelled by user"
        self._snapshot(o, "CANCELLED")
        return {"order_id": o.order_id}

    def _order_json(self, o: Order) -> dict[str, Any]:
        return {
            "placed_by": self.user_id,
            "order_id": o.order_id,
            "exchange_order_id": None if o.status.endswith("RECEIVED") else "1" + o.order_id,
            "parent_order_id": None,
            "status": o.status,
            "status_message": o.status_message,
            "order_timestamp": _ist(o.placed),
            "exchange_update_timestamp": _ist(self.now),
            "exchange_timestamp": _ist(self.now),
            "variety": o.variety,
            "exchange": o.exchange,
            "tradingsymbol": o.tradingsymbol,
            "instrument_token": self.instruments[o.tradingsymbol].token,
            "order_type": o.order_type,
            "transaction_type": o.transaction_type,
            "validity": "DAY",
            "product": o.product,
            "quantity": o.quantity,
            "disclosed_quantity": 0,
            "price": _num(o.price),
            "trigger_price": 0,
            "average_price": _num(o.average),
            "filled_quantity": o.filled,
            "pending_quantity": o.quantity - o.filled if o.status == "OPEN" else 0,
            "cancelled_quantity": o.quantity - o.filled if o.status == "CANCELLED" else 0,
            "market_protection": 0,
            "meta": {},
            "tag": o.tag,
            "tags": [o.tag] if o.tag else [],
            "guid": secrets.token_hex(6),
        }

    def _trade_json(self, t: Trade) -> dict[str, Any]:
        return {
            "trade_id": t.trade_id,
            "order_id": t.order_id,
            "exchange_order_id": "1" + t.order_id,
            "tradingsymbol": t.tradingsymbol,
            "exchange": t.exchange,
            "instrument_token": self.instruments[t.tradingsymbol].token,
            "transaction_type": t.transaction_type,
            "product": t.product,
            "average_price": _num(t.price),
            "quantity": t.quantity,
            "fill_timestamp": _ist(t.at),
            "order_timestamp": _ist(t.at),
            "exchange_timestamp": _ist(t.at),
        }

    def _positions(self) -> dict[str, Any]:
        rows = []
        for (symbol, product), p in self.positions.items():
            i = self.instruments[symbol]
            last = self.prices[symbol]
            avg = ZERO
            if p["quantity"] > 0 and p["buy_qty"]:
                avg = p["buy_value"] / p["buy_qty"]
            elif p["quantity"] < 0 and p["sell_qty"]:
                avg = p["sell_value"] / p["sell_qty"]
            pnl = (p["sell_value"] - p["buy_value"]) + p["quantity"] * last
            rows.append({
                "tradingsymbol": symbol, "exchange": i.exchange, "instrument_token": i.token,
                "product": product, "quantity": _num(p["quantity"]), "overnight_quantity": 0,
                "multiplier": 1,
                "average_price": _num(avg.quantize(Decimal("0.01"), ROUND_HALF_UP)),
                "close_price": 0, "last_price": _num(last), "value": _num(-pnl + 0),
                "pnl": _num(pnl), "m2m": _num(pnl), "unrealised": _num(pnl), "realised": 0,
                "buy_quantity": _num(p["buy_qty"]), "buy_price": 0,
                "buy_value": _num(p["buy_value"]), "sell_quantity": _num(p["sell_qty"]),
                "sell_price": 0, "sell_value": _num(p["sell_value"]),
                "day_buy_quantity": _num(p["buy_qty"]), "day_sell_quantity": _num(p["sell_qty"]),
            })  # fmt: skip
        return {"net": rows, "day": [dict(r) for r in rows]}

    def _holdings(self) -> list[dict[str, Any]]:
        rows = []
        for symbol, h in self.holdings.items():
            i = self.instruments[symbol]
            last = self.prices[symbol]
            rows.append({
                "tradingsymbol": symbol, "exchange": i.exchange, "instrument_token": i.token,
                "isin": f"INE{i.token:09d}", "product": "CNC", "price": 0,
                "quantity": _num(h["quantity"]), "used_quantity": 0, "t1_quantity": 0,
                "realised_quantity": _num(h["quantity"]), "authorised_quantity": 0,
                "opening_quantity": _num(h["quantity"]), "collateral_quantity": 0,
                "collateral_type": "", "discrepancy": False,
                "average_price": _num(h["average"]), "last_price": _num(last),
                "close_price": _num(last), "pnl": _num((last - h["average"]) * h["quantity"]),
                "day_change": 0, "day_change_percentage": 0,
            })  # fmt: skip
        return rows


def main() -> None:
    """`python -m tests.kite_server`: serve until Ctrl-C (docs/kite.md walks through it)."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = KiteServer().start(port)
    print(f"Kite test server on {server.url} (clock: {_ist(server.now)} IST)")
    print(f"api_key:       {server.api_key}")
    print(f"api_secret:    {server.api_secret}")
    print(f"request_token: {server.issue_request_token()}  (valid once, 5 minutes)")
    print("each line typed here issues another request token; Ctrl-C stops")
    try:
        for _line in sys.stdin:
            print(f"request_token: {server.issue_request_token()}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
