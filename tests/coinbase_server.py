"""A local stand-in for Coinbase Advanced Trade (v3 brokerage + the v2 reads ccxt makes), good
enough for *unmodified* ccxt.coinbase.

Point ccxt at it with ``ccxt.coinbase({**server.credentials(), **server.ccxt_config()})`` (or
deep-merge ``ccxt_config()`` into an account's ``ccxt:`` mapping). One account on 127.0.0.1
with an OS-chosen port; money in Decimal, sent as plain decimal strings as Coinbase does.

What ccxt 4.5.x does against Coinbase (read from its coinbase.py):
- load_markets: ``GET /v2/currencies``, ``/v2/currencies/crypto``, ``/v2/exchange-rates``,
  ``/api/v3/brokerage/market/products`` (spot, then ``product_type=FUTURE``) and, with keys,
  ``/api/v3/brokerage/transaction_summary`` (the fee tier).
- Auth with a CDP key (``organizations/.../apiKeys/...`` + an EC P-256 PEM): every private
  call carries ``Authorization: Bearer <JWT>``, ES256, header ``kid`` = key name and a
  ``nonce``, claims ``sub`` = key name, ``iss`` coinbase-cloud, ``nbf``/``exp`` (120 s) and
  ``uri`` = "METHOD host/path" (no query). Checked here with the key's public half; a bad one
  is HTTP 401 ``Unauthorized`` (plain text), as Coinbase answers.
- create_order: ``POST /api/v3/brokerage/orders`` with ``client_order_id``, ``product_id``,
  ``side`` and ``order_configuration`` (``limit_limit_gtc`` with base_size + limit_price;
  ``market_market_ioc`` with base_size for a sell, quote_size for a buy). The reply is HTTP 200
  ``{"success": true, "success_response": {order_id, ...}}``, or ``success: false`` with an
  ``error_response``. A client_order_id already used returns that order, creates nothing.
- cancel: ``POST /api/v3/brokerage/orders/batch_cancel`` ``{"order_ids": [...]}``.
- orders: ``GET /api/v3/brokerage/orders/historical/{order_id}`` (unknown: 404 NOT_FOUND);
  ``GET .../historical/batch`` newest first, ``order_status`` (repeatable; OPEN cannot be
  combined with others), ``product_ids``, ``limit`` and ``cursor``; ``has_next`` says whether
  another page follows.
- fills: ``GET .../historical/fills`` newest first, ``order_id``/``product_id``,
  ``start_sequence_timestamp``, ``limit`` and ``cursor``.
- balances: ``GET /v2/accounts`` (``fetchBalance`` default; v2 paging: ``limit``,
  ``starting_after``, ``pagination.next_starting_after``); wallets for ccxt's account ids:
  ``/api/v3/brokerage/accounts`` (same uuids).
- deposits/withdrawals: ``GET /v2/accounts/{id}/transactions`` per wallet, newest first, v2
  paging; crypto ``send`` (amount signed: negative out, fee included) and fiat transfers, and
  the wallet's ``advanced_trade_fill`` rows. withdraw: ``POST`` the same path ``type=send``.
- 429 is ``{"errors": [{"id": "rate_limit_exceeded", ...}]}`` (ccxt: RateLimitExceeded); 5xx
  plain text (ExchangeNotAvailable); a dropped reply raises NetworkError (no resend).

Test control is plain Python: set_price, set_balance, add_closed_orders, add_open_orders,
add_deposit, add_withdrawal, fail_next, fail_after_next (performed, then a 5xx), before_next,
drop_reply_next (performed, reply lost), drop_request_next (not performed), ``latency`` and
the ``orders``/``fills``/``requests`` lists. Headers (the JWT) are never logged.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.servers import LocalExchangeServer, Request

ZERO = Decimal(0)
V3 = "/api/v3/brokerage"
ORDERS = f"{V3}/orders"
CANCEL = f"{V3}/orders/batch_cancel"
BATCH = f"{V3}/orders/historical/batch"
FILLS = f"{V3}/orders/historical/fills"
ONE_ORDER = f"{V3}/orders/historical/"


@dataclass(frozen=True)
class Product:
    """One spot product as /market/products lists it."""

    product_id: str
    base: str
    quote: str
    base_increment: str
    quote_increment: str
    base_min_size: str
    price: Decimal

    @property
    def unified(self) -> str:
        """ccxt's symbol, e.g. BTC/USD."""
        return f"{self.base}/{self.quote}"


PRODUCTS = [
    Product("BTC-USD", "BTC", "USD", "0.00000001", "0.01", "0.00000001", Decimal(50000)),
    Product("ETH-USD", "ETH", "USD", "0.00000001", "0.01", "0.00000001", Decimal(3000)),
    Product("ETH-BTC", "ETH", "BTC", "0.00000001", "0.00001", "0.00000001", Decimal("0.06")),
]


class CoinbaseError(Exception):
    """An error Coinbase answers with an HTTP status and a JSON (or plain-text) body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(str(body))
        self.status, self.body = status, body


def _not_found() -> CoinbaseError:
    msg = "order with this orderID was not found"
    return CoinbaseError(404, {"error": "NOT_FOUND", "error_details": msg, "message": msg})


def _bad_argument(msg: str) -> CoinbaseError:
    return CoinbaseError(400, {"error": "INVALID_ARGUMENT", "error_details": msg, "message": msg})


@dataclass
class Order:
    """An order as the server keeps it."""

    order_id: str
    client_id: str
    product: Product
    side: str  # BUY | SELL
    type: str  # LIMIT | MARKET
    config: dict[str, Any]
    base_size: Decimal
    price: Decimal | None
    created: float
    status: str = "OPEN"
    filled: Decimal = ZERO
    filled_value: Decimal = ZERO
    fees: Decimal = ZERO
    fills: list[Fill] = field(default_factory=list)


@dataclass
class Fill:
    """One fill (fee in the quote currency, as Coinbase charges it)."""

    trade_id: str
    order: Order
    time: float
    price: Decimal
    size: Decimal
    commission: Decimal
    maker: bool
    seq: int


@dataclass
class Transfer:
    """A v2 wallet transaction that moves money in or out (``amount`` signed, fee included)."""

    id: str
    type: str  # send | fiat_deposit | fiat_withdrawal
    currency: str
    amount: Decimal  # the wallet's change: negative for a withdrawal (fee included)
    fee: Decimal
    time: float
    status: str  # completed | pending
    address: str | None = None
    hash: str | None = None
    idem: str | None = None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_seconds(ts: float) -> str:
    """v2's timestamps: whole seconds."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class CoinbaseServer(LocalExchangeServer):
    """An in-process Coinbase Advanced Trade look-alike; a context manager or start()/stop()."""

    def __init__(self, *, taker_fee: str = "0.006", maker_fee: str = "0.004") -> None:
        super().__init__()
        key = ec.generate_private_key(ec.SECP256R1())
        self._public = key.public_key()
        self.api_key = f"organizations/{uuid.uuid4()}/apiKeys/{uuid.uuid4()}"
        self.api_secret = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN EC PRIVATE KEY", as CDP
            serialization.NoEncryption(),
        ).decode()
        self.taker_fee, self.maker_fee = Decimal(taker_fee), Decimal(maker_fee)
        self.products = {p.product_id: p for p in PRODUCTS}
        self.prices = {p.product_id: p.price for p in PRODUCTS}
        self.balances: dict[str, Decimal] = {}
        self.orders: list[Order] = []
        self.fills: list[Fill] = []
        self.transfers: list[Transfer] = []
        #: The exchange's clock for orders, fills and transfers (tests move it to make history
        #: from before vhc); the JWT's nbf/exp are checked against the real time.
        self.clock: Callable[[], float] = time.time
        self._seq = 0

    # ----------------------------------------------------------------- pointing
    def ccxt_config(self) -> dict[str, Any]:
        """The part of ccxt.coinbase's constructor config that points it here."""
        return {"urls": {"api": {"rest": self.url}}}

    def credentials(self) -> dict[str, str]:
        """apiKey (the CDP key name) and secret (its EC private key, PEM)."""
        return {"apiKey": self.api_key, "secret": self.api_secret}

    # ------------------------------------------------------------- test control
    def product(self, name: str) -> Product:
        """A product by id (BTC-USD) or unified symbol (BTC/USD)."""
        up = name.upper()
        for p in self.products.values():
            if up in (p.product_id, p.unified):
                return p
        raise _bad_argument(f"ProductID is invalid: {name}")

    def set_price(self, product: str, price: Decimal | str | int) -> None:
        """Move a product's price and fill resting limit orders it crosses (as maker)."""
        with self._lock:
            p = self.product(product)
            px = Decimal(price)
            self.prices[p.product_id] = px
            for o in self.open_orders():
                assert o.price is not None
                crossed = px <= o.price if o.side == "BUY" else px >= o.price
                if o.product is p and crossed:
                    self._fill(o, o.base_size - o.filled, o.price, maker=True)

    def set_balance(self, asset: str, amount: Decimal | str | int) -> None:
        """Set a balance outright."""
        with self._lock:
            self.balances[asset.upper()] = Decimal(amount)

    def balance(self, asset: str) -> Decimal:
        """Current total balance of an asset (available + hold)."""
        with self._lock:
            return self.balances.get(asset.upper(), ZERO)

    def open_orders(self) -> list[Order]:
        """Orders still open."""
        with self._lock:
            return [o for o in self.orders if o.status == "OPEN"]

    def add_closed_orders(self, product: str, count: int, status: str = "CANCELLED") -> None:
        """Append `count` closed orders of someone busy (no balance moves), newest last."""
        with self._lock:
            p = self.product(product)
            for i in range(count):
                px = (self.prices[p.product_id] / 2).quantize(Decimal(p.quote_increment))
                size = Decimal("0.001")
                config = {"limit_limit_gtc": {"base_size": str(size), "limit_price": str(px),
                                              "post_only": False}}  # fmt: skip
                self.orders.append(
                    Order(str(uuid.uuid4()), f"other-{self._next()}-{i}", p, "BUY", "LIMIT",
                          config, size, px, self.clock(), status)
                )  # fmt: skip

    def add_open_orders(self, product: str, count: int) -> list[Order]:
        """`count` resting limit buys far below the market (funds held as for any order)."""
        with self._lock:
            p = self.product(product)
            px = (self.prices[p.product_id] / 2).quantize(Decimal(p.quote_increment))
            out = []
            for _ in range(count):
                size = Decimal("0.001")
                config = {"limit_limit_gtc": {"base_size": str(size), "limit_price": str(px),
                                              "post_only": False}}  # fmt: skip
                o = Order(str(uuid.uuid4()), f"web-{self._next()}", p, "BUY", "LIMIT", config,
                          size, px, self.clock())  # fmt: skip
                self.orders.append(o)
                out.append(o)
            return out

    def add_deposit(self, currency: str, amount: Decimal | str, *, fiat: bool = False) -> str:
        """A completed deposit (crypto received, or a fiat bank deposit), credited at once."""
        with self._lock:
            cur = currency.upper()
            t = Transfer(str(uuid.uuid4()), "fiat_deposit" if fiat else "send", cur,
                         Decimal(amount), ZERO, self.clock(), "completed",
                         None if fiat else "bc1qdeposit", None if fiat else f"0x{self._next()}")  # fmt: skip
            self._credit(cur, t.amount)
            self.transfers.append(t)
            return t.id

    def add_withdrawal(
        self, currency: str, amount: Decimal | str, *, address: str = "bc1qx", fee: str = "0"
    ) -> str:
        """A completed crypto send the user made on the website, not through vhc (``amount``
        sent, ``fee`` on top)."""
        with self._lock:
            cur = currency.upper()
            gross = Decimal(amount) + Decimal(fee)
            t = Transfer(str(uuid.uuid4()), "send", cur, -gross, Decimal(fee), self.clock(),
                         "completed", address, f"0x{self._next()}")  # fmt: skip
            self._credit(cur, t.amount)
            self.transfers.append(t)
            return t.id

    def wallet_id(self, currency: str) -> str:
        """The id of a currency's wallet (the same uuid in v2 and v3, as on Coinbase)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"coinbase-wallet-{currency.upper()}"))

    def fail_next(
        self,
        path: str,
        *,
        method: str | None = None,
        status: int = 503,
        times: int = 1,
        body: Any = None,
    ) -> None:
        """The next `times` calls to `path` fail before doing anything: a plain-text HTTP error,
        or (``body=``) that JSON body with that status. ``status=429`` alone sends Coinbase's
        rate-limit body."""
        if status == 429 and body is None:
            body = {"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}
        self._add_fault("fail", path, method=method, times=times, status=status, body=body)

    def fail_after_next(self, path: str, *, method: str | None = None, status: int = 503) -> None:
        """The next call to `path` is performed, then answered with a plain-text HTTP
        `status` (a gateway timing out after the order reached the exchange)."""
        self._add_fault("fail_after", path, method=method, status=status)

    def drop_request_next(self, path: str, *, method: str | None = None, times: int = 1) -> None:
        """The next `times` calls to `path` are NOT performed; the connection is just closed."""
        self._add_fault("lost", path, method=method, times=times)

    def before_next(self, path: str, action: Any, *, method: str | None = None) -> None:
        """Run `action()` (under the server's lock) just before the next call to `path` is
        handled: a race, e.g. an order filling as its cancel arrives."""
        self._add_fault("before", path, method=method, action=action)

    def requests_to(self, path: str, method: str | None = None) -> list[Request]:
        """Logged requests to `path` (a prefix ending in "/" matches below it)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (r.path == path or (path.endswith("/") and r.path.startswith(path)))
                and (method is None or r.method == method)
            ]

    def creates(self) -> list[Request]:
        """Every POST /orders the server received (performed or not)."""
        return self.requests_to(ORDERS, "POST")

    # --------------------------------------------------------------- HTTP layer
    def _respond(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        raw_body = self._body(h)
        params: dict[str, Any] = {
            k: (v if len(v) > 1 else v[0]) for k, v in parse_qs(split.query).items()
        }
        if raw_body:
            try:
                params.update(json.loads(raw_body))
            except ValueError:
                self._send(h, 400, json.dumps({"error": "INVALID_ARGUMENT", "message": "bad json"}))
                return
        req = Request(h.command, split.path, params)
        with self._lock:
            self.requests.append(req)
            fault = self._take_fault(h.command, split.path)
        if fault is not None and fault["kind"] == "before":
            with self._lock:
                fault["action"]()
            fault = None
        if fault is not None and fault["kind"] == "fail":
            req.outcome = f"fail {fault['status']}"
            if fault["body"] is None:
                self._send(h, fault["status"], "upstream connect error", "text/plain")
            else:
                self._send(h, fault["status"], json.dumps(fault["body"]))
            return
        if fault is not None and fault["kind"] == "lost":
            req.outcome = "lost"
            self._hang_up(h)
            return
        try:
            result = self._dispatch(h, split.path, params)
            status, payload, ctype = 200, json.dumps(result), ""
        except CoinbaseError as exc:
            req.outcome = f"error {exc.status}"
            status = exc.status
            if isinstance(exc.body, str):
                payload, ctype = exc.body, "text/plain; charset=utf-8"
            else:
                payload, ctype = json.dumps(exc.body), ""
        if fault is not None and fault["kind"] == "drop":
            req.outcome = "dropped"
            self._hang_up(h)
            return
        if fault is not None and fault["kind"] == "fail_after":
            req.outcome = f"performed, fail {fault['status']}"
            self._send(h, fault["status"], "upstream request timeout", "text/plain")
            return
        self._send(h, status, payload, ctype)

    def _dispatch(self, h: BaseHTTPRequestHandler, path: str, p: dict[str, Any]) -> Any:
        route = _ROUTES.get((h.command, path))
        if route is None and h.command == "GET" and path.startswith(ONE_ORDER):
            route = (CoinbaseServer._one_order, True)
        if route is None and h.command == "GET" and path.startswith(f"{V3}/market/products/"):
            route = (CoinbaseServer._ticker, False)
        if route is None and path.startswith("/v2/accounts/") and path.endswith("/transactions"):
            route = (
                (CoinbaseServer._transactions, True)
                if h.command == "GET"
                else (CoinbaseServer._send_money, True)
            )
        if route is None:
            raise CoinbaseError(404, {"error": "NOT_FOUND", "message": f"no route {path}"})
        handler, signed = route
        if signed:
            self._authenticate(h, path)
        with self._lock:
            return handler(self, p, path)

    def _authenticate(self, h: BaseHTTPRequestHandler, path: str) -> None:
        """Verify the ES256 JWT ccxt signs with the CDP key; 401 Unauthorized otherwise."""
        auth = h.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            raise CoinbaseError(401, "Unauthorized\n")
        try:
            head_b64, claims_b64, sig_b64 = auth[len("Bearer ") :].split(".")
            header = json.loads(_b64url(head_b64))
            claims = json.loads(_b64url(claims_b64))
            sig = _b64url(sig_b64)
        except ValueError:
            raise CoinbaseError(401, "Unauthorized\n") from None
        if header.get("alg") != "ES256" or header.get("kid") != self.api_key or len(sig) != 64:
            raise CoinbaseError(401, "Unauthorized\n")
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        try:
            self._public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise CoinbaseError(401, "Unauthorized\n") from None
        now = time.time()
        host = self.url.replace("https://", "")
        if (
            claims.get("sub") != self.api_key
            or claims.get("iss") != "coinbase-cloud"
            or claims.get("uri") != f"{h.command} {host}{path}"
            or not (int(claims.get("nbf", 0)) - 5 <= now <= int(claims.get("exp", 0)))
        ):
            raise CoinbaseError(401, "Unauthorized\n")

    # ----------------------------------------------------------------- public (v2)
    def _time(self, p: dict[str, Any], path: str) -> Any:
        now = time.time()
        return {"data": {"iso": _iso(now), "epoch": int(now)}}

    def _currencies(self, p: dict[str, Any], path: str) -> Any:
        return {"data": [{"id": "USD", "name": "US Dollar", "min_size": "0.01"}]}

    def _crypto(self, p: dict[str, Any], path: str) -> Any:
        names = {"BTC": "Bitcoin", "ETH": "Ethereum"}
        return {
            "data": [
                {"asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, c)), "code": c, "name": n,
                 "color": "#000000", "sort_index": i, "exponent": 8, "type": "crypto",
                 "address_regex": ".*"}
                for i, (c, n) in enumerate(names.items())
            ]
        }  # fmt: skip

    def _rates(self, p: dict[str, Any], path: str) -> Any:
        btc = self.prices["BTC-USD"]
        eth = self.prices["ETH-USD"]
        rates = {"USD": "1", "BTC": str(1 / btc), "ETH": str(1 / eth)}
        return {"data": {"currency": "USD", "rates": rates}}

    # ----------------------------------------------------------------- public (v3)
    def _products(self, p: dict[str, Any], path: str) -> Any:
        if p.get("product_type", "SPOT") != "SPOT":
            return {"products": [], "num_products": 0}
        rows = [self._product_json(pr) for pr in self.products.values()]
        return {"products": rows, "num_products": len(rows)}

    def _product_json(self, pr: Product) -> dict[str, Any]:
        px = self.prices[pr.product_id]
        return {
            "product_id": pr.product_id, "price": str(px), "price_percentage_change_24h": "0",
            "volume_24h": "100", "volume_percentage_change_24h": "0",
            "base_increment": pr.base_increment, "quote_increment": pr.quote_increment,
            "quote_min_size": "1", "quote_max_size": "10000000", "base_min_size": pr.base_min_size,
            "base_max_size": "10000", "base_name": pr.base, "quote_name": pr.quote,
            "watched": False, "is_disabled": False, "new": False, "status": "online",
            "cancel_only": False, "limit_only": False, "post_only": False,
            "trading_disabled": False, "auction_mode": False, "product_type": "SPOT",
            "quote_currency_id": pr.quote, "base_currency_id": pr.base,
            "fcm_trading_session_details": None, "mid_market_price": "",
            "alias": "", "alias_to": [], "base_display_symbol": pr.base,
            "quote_display_symbol": pr.quote, "view_only": False,
            "price_increment": pr.quote_increment, "display_name": pr.product_id,
            "product_venue": "CBE",
        }  # fmt: skip

    def _ticker(self, p: dict[str, Any], path: str) -> Any:
        rest = path[len(f"{V3}/market/products/") :]
        if not rest.endswith("/ticker"):
            raise CoinbaseError(404, {"error": "NOT_FOUND", "message": f"no route {path}"})
        pr = self.product(rest[: -len("/ticker")])
        px = str(self.prices[pr.product_id])
        trade = {"trade_id": str(self._next()), "product_id": pr.product_id, "price": px,
                 "size": "0.1", "time": _iso(self.clock()), "side": "BUY", "bid": "", "ask": ""}  # fmt: skip
        return {"trades": [trade], "best_bid": px, "best_ask": px}

    # ---------------------------------------------------------------- private
    def _fee_summary(self, p: dict[str, Any], path: str) -> Any:
        return {
            "total_volume": 0, "total_fees": 0,
            "fee_tier": {"pricing_tier": "Advanced 1", "usd_from": "0", "usd_to": "1000",
                         "taker_fee_rate": str(self.taker_fee),
                         "maker_fee_rate": str(self.maker_fee)},
            "advanced_trade_only_volume": 0, "advanced_trade_only_fees": 0,
        }  # fmt: skip

    def _held(self) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for o in self.open_orders():
            assert o.price is not None
            left = o.base_size - o.filled
            if o.side == "BUY":
                asset, amount = o.product.quote, left * o.price * (1 + self.taker_fee)
            else:
                asset, amount = o.product.base, left
            out[asset] = out.get(asset, ZERO) + amount
        return out

    def _assets(self) -> list[str]:
        return sorted(set(self.balances) | {"USD", "BTC", "ETH"})

    def _v2_accounts(self, p: dict[str, Any], path: str) -> Any:
        rows = [
            {"id": self.wallet_id(a), "name": f"{a} Wallet",
             "primary": True, "type": "fiat" if a == "USD" else "wallet",
             "currency": {"code": a, "name": a},
             "balance": {"amount": str(self.balances.get(a, ZERO)), "currency": a},
             "created_at": "2020-01-01T00:00:00Z", "updated_at": _iso(self.clock()),
             "resource": "account", "resource_path": f"/v2/accounts/{self.wallet_id(a)}"}
            for a in self._assets()
        ]  # fmt: skip
        return _v2_page(rows, p, path)

    def _wallet(self, path: str) -> str:
        """The currency of /v2/accounts/{id}/..., or Coinbase's 404."""
        wid = path.split("/")[3]
        for a in self._assets():
            if self.wallet_id(a) == wid:
                return a
        raise CoinbaseError(404, {"errors": [{"id": "not_found", "message": "Not found"}]})

    def _transaction_json(self, t: Transfer) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": t.id, "type": t.type, "status": t.status,
            "amount": {"amount": str(t.amount), "currency": t.currency},
            "native_amount": {"amount": str(t.amount), "currency": "USD"},
            "description": None, "created_at": _iso_seconds(t.time),
            "updated_at": _iso(t.time), "resource": "transaction",
            "resource_path": f"/v2/accounts/{self.wallet_id(t.currency)}/transactions/{t.id}",
            "instant_exchange": False,
        }  # fmt: skip
        if t.type == "send":
            net = abs(t.amount) - t.fee if t.amount < 0 else t.amount
            out["network"] = {
                "status": "confirmed" if t.status == "completed" else "pending",
                "hash": t.hash, "network_name": "bitcoin",
                "transaction_fee": {"amount": str(t.fee), "currency": t.currency},
                "transaction_amount": {"amount": str(net), "currency": t.currency},
            }  # fmt: skip
            if t.amount < 0:
                out["to"] = {"resource": "bitcoin_address", "address": t.address,
                             "currency": t.currency}  # fmt: skip
            if t.idem:
                out["idem"] = t.idem
        else:
            out["subtotal"] = {"amount": str(abs(t.amount)), "currency": t.currency}
            out["fee"] = {"amount": str(t.fee), "currency": t.currency}
        return out

    def _transactions(self, p: dict[str, Any], path: str) -> Any:
        cur = self._wallet(path)
        mine: list[tuple[float, dict[str, Any]]] = [
            (t.time, self._transaction_json(t)) for t in self.transfers if t.currency == cur
        ]
        for f in self.fills:  # trades show in both wallets; not transfers
            if cur in (f.order.product.base, f.order.product.quote):
                sign = 1 if (f.order.side == "BUY") == (cur == f.order.product.base) else -1
                value = f.size if cur == f.order.product.base else f.size * f.price
                mine.append((f.time, {
                    "id": f"{f.trade_id}-{cur}", "type": "advanced_trade_fill",
                    "status": "completed", "amount": {"amount": str(sign * value), "currency": cur},
                    "created_at": _iso(f.time), "resource": "transaction",
                    "advanced_trade_fill": {"fill_price": str(f.price), "order_id": f.order.order_id},
                }))  # fmt: skip
        rows = [row for _, row in sorted(mine, key=lambda x: x[0], reverse=True)]  # newest first
        return _v2_page(rows, p, path)

    def _send_money(self, p: dict[str, Any], path: str) -> Any:
        cur = self._wallet(path)
        if p.get("type") != "send":
            raise CoinbaseError(400, {"errors": [{"id": "invalid_request", "message": "type"}]})
        if str(p.get("currency") or "").upper() != cur or not p.get("to"):
            raise CoinbaseError(400, {"errors": [{"id": "param_required", "message": "to"}]})
        if "network" in p and p["network"] not in ("bitcoin", "ethereum", "base", "solana"):
            msg = f"Invalid network {p['network']}"
            raise CoinbaseError(400, {"errors": [{"id": "validation_error", "message": msg}]})
        idem = p.get("idem")
        if idem:  # Coinbase: the same idem returns the send already made
            for t in self.transfers:
                if t.idem == idem:
                    return {"data": self._transaction_json(t)}
        amount = Decimal(str(p.get("amount")))
        fee = Decimal("0.0001") if cur == "BTC" else ZERO
        if amount + fee > self.balances.get(cur, ZERO) - self._held().get(cur, ZERO):
            msg = "Insufficient balance in source account"
            raise CoinbaseError(400, {"errors": [{"id": "validation_error", "message": msg}]})
        t = Transfer(str(uuid.uuid4()), "send", cur, -(amount + fee), fee, self.clock(), "pending",
                     str(p["to"]), None, str(idem) if idem else None)  # fmt: skip
        self._credit(cur, t.amount)
        self.transfers.append(t)
        return {"data": self._transaction_json(t)}

    def _v3_accounts(self, p: dict[str, Any], path: str) -> Any:
        held = self._held()
        assets = self._assets()
        rows = []
        for a in assets:
            hold = held.get(a, ZERO)
            total = self.balances.get(a, ZERO)
            rows.append(
                {"uuid": self.wallet_id(a), "name": f"{a} Wallet",
                 "currency": a, "available_balance": {"value": str(total - hold), "currency": a},
                 "default": True, "active": True, "created_at": "2020-01-01T00:00:00Z",
                 "type": "ACCOUNT_TYPE_FIAT" if a == "USD" else "ACCOUNT_TYPE_CRYPTO",
                 "ready": True, "hold": {"value": str(hold), "currency": a}}
            )  # fmt: skip
        return {"accounts": rows, "has_next": False, "cursor": "", "size": len(rows)}

    def _create(self, p: dict[str, Any], path: str) -> Any:
        cid = str(p.get("client_order_id") or "")
        if not cid:
            raise _bad_argument("client_order_id is required")
        for o in self.orders:  # Coinbase: a client_order_id already used returns that order
            if o.client_id == cid:
                return self._created(o)
        pr = self.product(str(p.get("product_id") or ""))
        side = p.get("side")
        if side not in ("BUY", "SELL"):
            raise _bad_argument("invalid side")
        config = p.get("order_configuration") or {}
        last = self.prices[pr.product_id]
        step = Decimal(pr.base_increment)
        if "limit_limit_gtc" in config:
            c = config["limit_limit_gtc"]
            size, price, otype = Decimal(c["base_size"]), Decimal(c["limit_price"]), "LIMIT"
            if (price / Decimal(pr.quote_increment)) % 1 != 0:
                return self._failure("INVALID_LIMIT_PRICE_PRECISION", config)
        elif "market_market_ioc" in config:
            c = config["market_market_ioc"]
            price, otype = None, "MARKET"
            if "quote_size" in c:
                size = (Decimal(c["quote_size"]) / last).quantize(step, ROUND_DOWN)
            else:
                size = Decimal(c["base_size"])
        else:
            return self._failure("UNSUPPORTED_ORDER_CONFIGURATION", config)
        if size < Decimal(pr.base_min_size) or (size / step) % 1 != 0:
            return self._failure("INVALID_SIZE_PRECISION", config)
        need_asset, need = (
            (pr.quote, size * (price or last) * (1 + self.taker_fee))
            if side == "BUY"
            else (pr.base, size)
        )
        free = self.balances.get(need_asset, ZERO) - self._held().get(need_asset, ZERO)
        if need > free:
            return self._failure("INSUFFICIENT_FUND", config)
        o = Order(str(uuid.uuid4()), cid, pr, side, otype, config, size, price, self.clock())
        self.orders.append(o)
        if price is None or (price >= last if side == "BUY" else price <= last):
            self._fill(o, size, last, maker=False)
        return self._created(o)

    @staticmethod
    def _created(o: Order) -> dict[str, Any]:
        return {
            "success": True, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": o.order_id,
            "success_response": {"order_id": o.order_id, "product_id": o.product.product_id,
                                 "side": o.side, "client_order_id": o.client_id},
            "order_configuration": o.config,
        }  # fmt: skip

    @staticmethod
    def _failure(reason: str, config: dict[str, Any]) -> dict[str, Any]:
        messages = {"INSUFFICIENT_FUND": "Insufficient balance in source account"}
        return {
            "success": False, "failure_reason": "UNKNOWN_FAILURE_REASON", "order_id": "",
            "error_response": {"error": reason, "message": messages.get(reason, reason),
                               "error_details": "", "preview_failure_reason": f"PREVIEW_{reason}"},
            "order_configuration": config,
        }  # fmt: skip

    def _fill(self, o: Order, size: Decimal, price: Decimal, maker: bool) -> None:
        value = size * price
        fee = (value * (self.maker_fee if maker else self.taker_fee)).quantize(Decimal("0.01"))
        base, quote = o.product.base, o.product.quote
        if o.side == "BUY":
            self._credit(quote, -(value + fee))
            self._credit(base, size)
        else:
            self._credit(base, -size)
            self._credit(quote, value - fee)
        f = Fill(str(uuid.uuid4()), o, self.clock(), price, size, fee, maker, self._next())
        self.fills.append(f)
        o.fills.append(f)
        o.filled += size
        o.filled_value += value
        o.fees += fee
        if o.filled >= o.base_size:
            o.status = "FILLED"

    def _credit(self, asset: str, amount: Decimal) -> None:
        self.balances[asset] = self.balances.get(asset, ZERO) + amount

    def _order_json(self, o: Order) -> dict[str, Any]:
        avg = o.filled_value / o.filled if o.filled else ZERO
        pct = o.filled / o.base_size * 100 if o.base_size else ZERO
        return {
            "order_id": o.order_id, "product_id": o.product.product_id, "user_id": "u1",
            "order_configuration": o.config, "side": o.side, "client_order_id": o.client_id,
            "status": o.status,
            "time_in_force": "GOOD_UNTIL_CANCELLED" if o.type == "LIMIT" else "IMMEDIATE_OR_CANCEL",
            "created_time": _iso(o.created), "completion_percentage": str(pct),
            "filled_size": str(o.filled), "average_filled_price": str(avg), "fee": "",
            "number_of_fills": str(len(o.fills)), "filled_value": str(o.filled_value),
            "pending_cancel": False, "size_in_quote": False, "total_fees": str(o.fees),
            "size_inclusive_of_fees": False,
            "total_value_after_fees": str(o.filled_value + o.fees), "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": o.type, "reject_reason": "REJECT_REASON_UNSPECIFIED",
            "settled": o.status != "OPEN", "product_type": "SPOT", "reject_message": "",
            "cancel_message": "", "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": "0", "is_liquidation": False,
            "last_fill_time": _iso(o.fills[-1].time) if o.fills else None,
            "edit_history": [], "leverage": "", "margin_type": "UNKNOWN_MARGIN_TYPE",
            "retail_portfolio_id": "p1",
        }  # fmt: skip

    def _one_order(self, p: dict[str, Any], path: str) -> Any:
        oid = path[len(ONE_ORDER) :]
        for o in self.orders:
            if o.order_id == oid:
                return {"order": self._order_json(o)}
        raise _not_found()

    def _batch(self, p: dict[str, Any], path: str) -> Any:
        statuses = p.get("order_status") or []
        statuses = [statuses] if isinstance(statuses, str) else list(statuses)
        if "OPEN" in statuses and len(statuses) > 1:
            raise _bad_argument("OPEN is not allowed with other order statuses")
        products = p.get("product_ids") or p.get("product_id") or []
        products = [products] if isinstance(products, str) else list(products)
        rows = [
            o
            for o in reversed(self.orders)  # newest first
            if (not statuses or o.status in statuses)
            and (not products or o.product.product_id in products)
        ]
        if p.get("start_date"):
            start = datetime.fromisoformat(str(p["start_date"]).replace("Z", "+00:00"))
            rows = [o for o in rows if o.created >= start.timestamp()]
        page, has_next, cursor = _page(rows, p, 1000)
        return {
            "orders": [self._order_json(o) for o in page],
            "sequence": "0",
            "has_next": has_next,
            "cursor": cursor,
        }

    def _fills(self, p: dict[str, Any], path: str) -> Any:
        rows = list(reversed(self.fills))  # newest first
        if p.get("order_id"):
            ids = p["order_id"] if isinstance(p["order_id"], list) else [p["order_id"]]
            rows = [f for f in rows if f.order.order_id in ids]
        if p.get("product_id"):
            rows = [f for f in rows if f.order.product.product_id == p["product_id"]]
        if p.get("start_sequence_timestamp"):
            start = datetime.fromisoformat(
                str(p["start_sequence_timestamp"]).replace("Z", "+00:00")
            ).timestamp()
            rows = [f for f in rows if f.time >= start]
        if p.get("end_sequence_timestamp"):
            end = datetime.fromisoformat(
                str(p["end_sequence_timestamp"]).replace("Z", "+00:00")
            ).timestamp()
            rows = [f for f in rows if f.time < end]
        page, _, cursor = _page(rows, p, 1000)
        return {"fills": [self._fill_json(f) for f in page], "cursor": cursor}

    @staticmethod
    def _fill_json(f: Fill) -> dict[str, Any]:
        return {
            "entry_id": f.trade_id, "trade_id": f.trade_id, "order_id": f.order.order_id,
            "trade_time": _iso(f.time), "trade_type": "FILL", "price": str(f.price),
            "size": str(f.size), "commission": str(f.commission),
            "product_id": f.order.product.product_id, "sequence_timestamp": _iso(f.time),
            "liquidity_indicator": "MAKER" if f.maker else "TAKER", "size_in_quote": False,
            "user_id": "u1", "side": f.order.side, "retail_portfolio_id": "p1",
        }  # fmt: skip

    def _cancel(self, p: dict[str, Any], path: str) -> Any:
        ids = p.get("order_ids")
        if not isinstance(ids, list) or not ids:
            raise _bad_argument("order_ids is required")
        results = []
        for oid in ids:
            o = next((x for x in self.orders if x.order_id == oid), None)
            if o is None:
                results.append({"success": False, "failure_reason": "UNKNOWN_CANCEL_ORDER",
                                "order_id": oid})  # fmt: skip
            elif o.status != "OPEN":
                results.append({"success": False, "failure_reason": "DUPLICATE_CANCEL_REQUEST",
                                "order_id": oid})  # fmt: skip
            else:
                o.status = "CANCELLED"
                results.append({"success": True, "failure_reason": "UNKNOWN_CANCEL_FAILURE_REASON",
                                "order_id": oid})  # fmt: skip
        return {"results": results}

    # ------------------------------------------------------------------ helpers
    def _next(self) -> int:
        self._seq += 1
        return self._seq


def _page(rows: list[Any], p: dict[str, Any], cap: int) -> tuple[list[Any], bool, str]:
    """Coinbase's cursor paging: an opaque cursor (here an offset), `limit` capped at `cap`."""
    limit = min(int(p.get("limit") or 100), cap)
    cursor = p.get("cursor")
    try:
        start = int(base64.urlsafe_b64decode(str(cursor)).decode()) if cursor else 0
    except ValueError:
        raise _bad_argument("invalid cursor") from None
    page = rows[start : start + limit]
    has_next = start + limit < len(rows)
    nxt = base64.urlsafe_b64encode(str(start + limit).encode()).decode() if has_next else ""
    return page, has_next, nxt


def _v2_page(rows: list[dict[str, Any]], p: dict[str, Any], path: str) -> dict[str, Any]:
    """Coinbase v2 paging: ``limit`` (max 100, default 25), ``starting_after`` an id."""
    limit = min(int(p.get("limit") or 25), 100)
    start = 0
    after = p.get("starting_after")
    if after:
        ids = [r["id"] for r in rows]
        if after not in ids:
            raise CoinbaseError(400, {"errors": [{"id": "invalid_request", "message": "cursor"}]})
        start = ids.index(after) + 1
    page = rows[start : start + limit]
    more = start + limit < len(rows)
    nxt = page[-1]["id"] if more and page else None
    return {
        "pagination": {"ending_before": None, "starting_after": after, "limit": limit,
                       "order": "desc", "previous_uri": None,
                       "next_uri": f"{path}?starting_after={nxt}" if nxt else None,
                       "next_starting_after": nxt},
        "data": page,
    }  # fmt: skip


_ROUTES: dict[tuple[str, str], tuple[Any, bool]] = {
    ("GET", "/v2/time"): (CoinbaseServer._time, False),
    ("GET", "/v2/currencies"): (CoinbaseServer._currencies, False),
    ("GET", "/v2/currencies/crypto"): (CoinbaseServer._crypto, False),
    ("GET", "/v2/exchange-rates"): (CoinbaseServer._rates, False),
    ("GET", "/v2/accounts"): (CoinbaseServer._v2_accounts, True),
    ("GET", f"{V3}/market/products"): (CoinbaseServer._products, False),
    ("GET", f"{V3}/transaction_summary"): (CoinbaseServer._fee_summary, True),
    ("GET", f"{V3}/accounts"): (CoinbaseServer._v3_accounts, True),
    ("POST", ORDERS): (CoinbaseServer._create, True),
    ("POST", CANCEL): (CoinbaseServer._cancel, True),
    ("GET", BATCH): (CoinbaseServer._batch, True),
    ("GET", FILLS): (CoinbaseServer._fills, True),
}
