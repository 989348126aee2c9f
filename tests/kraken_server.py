"""A local stand-in for Kraken's spot REST API, good enough for *unmodified* ccxt.kraken.

Point ccxt at it with ``ccxt.kraken({**server.credentials(), **server.ccxt_config()})`` (or
deep-merge ``ccxt_config()`` into the ``ccxt:`` mapping of an account). It runs in a thread
on 127.0.0.1 with an OS-chosen port and simulates one account: balances, orders, fills,
trades, deposits, withdrawals and a ledger, all in Decimal, formatted as strings like Kraken.

What ccxt 4.5.x does against Kraken (read from its kraken.py; the tests pin it down):
- fetch_balance calls ``BalanceEx`` (``balance`` and ``hold_trade`` per asset); ``Balance`` is
  served as well.  load_markets calls ``Assets`` then ``AssetPairs``.
- create_order sends ``clientOrderId`` as ``cl_ord_id`` (not ``userref``).  Kraken accepts a
  36-char UUID, 32 hex chars or free text of at most 18 characters, and checks uniqueness
  only among OPEN orders: a filled order's id can be reused, so resending a filled market
  order with the same id fills twice.  The duplicate error string below is not verified.
- fetch_my_trades / fetch_closed_orders do NOT paginate (``paginate: True`` exists only for
  fetch_ohlcv and fetch_withdrawals in this version): one call returns Kraken's page of 50,
  newest first.  Page with ``params={"ofs": n}`` until a page comes back empty; the total
  (``count``) is only visible in the raw reply, e.g. ``privatePostTradesHistory``.
- Trades carry no fee currency; ccxt labels every trade fee with the quote currency.  The
  fee's real asset (``oflags=fcib``, or ``set_next_fee``) shows only in ``Ledgers``.
- withdraw needs ``params={"key": name}`` (a withdrawal key registered on the account).
- An HTTP 429 with a non-JSON body raises ccxt.RateLimitExceeded; Kraken's JSON error
  ``EAPI:Rate limit exceeded`` raises ccxt.DDoSProtection (RateLimitExceeded's parent).
- A dropped reply raises ccxt.NetworkError; ccxt/requests do not resend the POST.

Test control is plain Python: set_price, set_balance, add_deposit, add_withdrawal,
register_withdrawal_key, set_next_fee, fail_next, drop_reply_next, ``latency``, ``fail_all``,
and the ``orders``/``trades``/``transfers``/``requests`` lists.  Headers (API key, signature)
are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.servers import LocalExchangeServer, Request

ZERO = Decimal(0)
PAGE = 50

#: Kraken asset id -> (altname, decimals, display_decimals)
ASSETS: dict[str, tuple[str, int, int]] = {
    "XXBT": ("XBT", 10, 5),
    "XETH": ("ETH", 10, 5),
    "ZUSD": ("USD", 4, 2),
    "USDC": ("USDC", 8, 4),
    "KFEE": ("FEE", 2, 2),
}
#: unified codes that differ from the altname
CODE_ALIASES = {"BTC": "XXBT", "FEE": "KFEE"}


@dataclass(frozen=True)
class Pair:
    """One spot pair as Kraken's AssetPairs describes it."""

    id: str
    altname: str
    wsname: str
    base: str
    quote: str
    pair_decimals: int
    ordermin: str
    costmin: str
    price: Decimal  # starting price

    @property
    def symbol(self) -> str:
        """The unified ccxt symbol, e.g. BTC/USD."""
        return f"{asset_code(self.base)}/{asset_code(self.quote)}"


PAIRS = [
    Pair("XXBTZUSD", "XBTUSD", "XBT/USD", "XXBT", "ZUSD", 1, "0.0001", "0.5", Decimal(50000)),
    Pair("XETHZUSD", "ETHUSD", "ETH/USD", "XETH", "ZUSD", 2, "0.002", "0.5", Decimal(3000)),
    Pair("XETHXXBT", "ETHXBT", "ETH/XBT", "XETH", "XXBT", 5, "0.002", "0.00002", Decimal("0.06")),
    Pair("USDCUSD", "USDCUSD", "USDC/USD", "USDC", "ZUSD", 4, "5", "0.5", Decimal(1)),
]
LOT_DECIMALS = 8
TAKER_TIERS = [[0, 0.26], [50000, 0.24], [100000, 0.22], [250000, 0.2], [500000, 0.18]]
MAKER_TIERS = [[0, 0.16], [50000, 0.14], [100000, 0.12], [250000, 0.1], [500000, 0.08]]


def asset_code(asset_id: str) -> str:
    """ccxt's code for a Kraken asset id (XXBT -> BTC, ZUSD -> USD)."""
    alt = ASSETS[asset_id][0]
    return {"XBT": "BTC", "FEE": "KFEE"}.get(alt, alt)


def asset_id(name: str) -> str:
    """Kraken's asset id for an id, altname or unified code."""
    up = name.upper()
    if up in ASSETS:
        return up
    for aid, (alt, _, _) in ASSETS.items():
        if alt == up:
            return aid
    if up in CODE_ALIASES:
        return CODE_ALIASES[up]
    raise KrakenError("EQuery:Unknown asset")


def q(value: Decimal, places: int) -> Decimal:
    """Round to a number of decimal places."""
    return value.quantize(Decimal(1).scaleb(-places))


def fmt(value: Decimal, places: int) -> str:
    """Kraken's fixed-decimals string for a number."""
    return f"{q(value, places):f}"


class KrakenError(Exception):
    """A Kraken error string, sent back as ``{"error": [msg]}``."""


@dataclass
class Order:
    """An order as the server keeps it."""

    txid: str
    pair: Pair
    side: str
    ordertype: str
    vol: Decimal
    price: Decimal | None
    opentm: float
    oflags: str
    userref: int | None = None
    cl_ord_id: str | None = None
    status: str = "open"
    vol_exec: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    closetm: float | None = None
    reason: str | None = None
    trades: list[str] = field(default_factory=list)
    hidden_until: float = 0.0  # not listed before this time (an order still on its way)


@dataclass
class Trade:
    """One fill."""

    txid: str
    trade_id: int
    order: Order
    time: float
    price: Decimal
    vol: Decimal
    cost: Decimal
    fee: Decimal
    fee_asset: str
    maker: bool


@dataclass
class Transfer:
    """A deposit or withdrawal; ``amount`` is net of ``fee``, like Kraken's status lists."""

    kind: str
    refid: str
    asset: str
    amount: Decimal
    fee: Decimal
    time: float
    status: str
    address: str
    txid: str
    key: str | None = None


class KrakenServer(LocalExchangeServer):
    """An in-process Kraken look-alike; use as a context manager or start()/stop()."""

    def __init__(self, *, fee_rate: str = "0.0026", maker_fee_rate: str = "0.0016") -> None:
        super().__init__()
        rng = random.Random()
        self._rng = rng
        self.api_key = "vhc-test-" + "".join(rng.choices("abcdefghijklmnop", k=24))
        self.api_secret = base64.b64encode(rng.randbytes(64)).decode()
        self.keys: dict[str, str] = {self.api_key: self.api_secret}
        self.fee_rate = Decimal(fee_rate)
        self.maker_fee_rate = Decimal(maker_fee_rate)
        self.pairs = {p.id: p for p in PAIRS}
        self.prices = {p.id: p.price for p in PAIRS}
        self.price_history: dict[str, list[tuple[float, Decimal]]] = {p.id: [] for p in PAIRS}
        self.balances: dict[str, Decimal] = {}
        self.orders: list[Order] = []
        self.trades: list[Trade] = []
        self.transfers: list[Transfer] = []
        self.ledger: list[dict[str, Any]] = []
        self.withdrawal_keys: dict[tuple[str, str], str] = {}  # (asset id, name) -> address
        self.withdrawal_fees: dict[str, Decimal] = {}
        self.fail_all: str | None = None  # a Kraken error string every private call returns
        self.clock: Callable[[], float] = time.time
        self._hide_next = 0.0
        self._next_fee: list[tuple[str, Decimal]] = []
        self._nonces: dict[str, int] = {}
        self._trade_seq = 0

    # ----------------------------------------------------------------- pointing
    def ccxt_config(self) -> dict[str, Any]:
        """The part of ccxt.kraken's constructor config that points it here."""
        return {"urls": {"api": {"public": self.url, "private": self.url}}}

    def credentials(self) -> dict[str, str]:
        """apiKey and (base64) secret of the account's key."""
        return {"apiKey": self.api_key, "secret": self.api_secret}

    # ------------------------------------------------------------- test control
    def pair(self, name: str) -> Pair:
        """Find a pair by id, altname, wsname or unified symbol."""
        for p in self.pairs.values():
            if name.upper() in (p.id, p.altname, p.wsname, p.symbol):
                return p
        raise KrakenError("EQuery:Unknown asset pair")

    def set_price(self, pair: str, price: Decimal | str | int) -> None:
        """Move a pair's price (rounded to its tick) and fill resting limit orders it crosses."""
        with self._lock:
            p = self.pair(pair)
            px = q(Decimal(price), p.pair_decimals)
            self.prices[p.id] = px
            self.price_history[p.id].append((self.clock(), px))
            for o in self.open_orders():
                assert o.price is not None
                crossed = px <= o.price if o.side == "buy" else px >= o.price
                if o.pair is p and crossed:
                    self._fill(o, o.price, maker=True)

    def set_balance(self, asset: str, amount: Decimal | str | int) -> None:
        """Set a balance outright (no ledger entry)."""
        with self._lock:
            self.balances[asset_id(asset)] = Decimal(amount)

    def balance(self, asset: str) -> Decimal:
        """Current total balance of an asset."""
        with self._lock:
            return self.balances.get(asset_id(asset), ZERO)

    def open_orders(self) -> list[Order]:
        """Orders still open."""
        with self._lock:
            return [o for o in self.orders if o.status == "open"]

    def set_next_fee(self, asset: str, amount: Decimal | str) -> None:
        """Charge the next fill's fee as exactly ``amount`` of ``asset`` (e.g. a third currency)."""
        with self._lock:
            self._next_fee.append((asset_id(asset), Decimal(amount)))

    def register_withdrawal_key(self, asset: str, name: str, address: str) -> None:
        """Register a withdrawal key name (Kraken withdraws only to pre-registered keys)."""
        with self._lock:
            self.withdrawal_keys[(asset_id(asset), name)] = address

    def add_deposit(
        self,
        asset: str,
        amount: Decimal | str,
        *,
        status: str = "Success",
        fee: Decimal | str = "0",
        address: str = "bc1qdepositaddress",
        when: float | None = None,
    ) -> str:
        """Simulate an incoming deposit; credits the account once its status is Success."""
        with self._lock:
            t = Transfer(
                "deposit", self._id("FT"), asset_id(asset), Decimal(amount), Decimal(fee),
                self.clock() if when is None else when, "Pending", address, self._hex(),
            )  # fmt: skip
            self.transfers.append(t)
            self.set_transfer_status(t.refid, status)
            return t.refid

    def add_withdrawal(
        self,
        asset: str,
        amount: Decimal | str,
        *,
        key: str = "unknown-key",
        address: str = "bc1qsomeoneelse",
        fee: Decimal | str = "0",
        status: str = "Success",
        when: float | None = None,
    ) -> str:
        """Simulate a withdrawal the user never made (``amount`` net, ``fee`` on top)."""
        with self._lock:
            aid, a, f = asset_id(asset), Decimal(amount), Decimal(fee)
            t = Transfer(
                "withdrawal", self._id("FT"), aid, a, f,
                self.clock() if when is None else when, status, address, self._hex(), key,
            )  # fmt: skip
            self._move(aid, -a, f, "withdrawal", t.refid)
            self.transfers.append(t)
            return t.refid

    def set_transfer_status(self, refid: str, status: str) -> None:
        """Advance a deposit/withdrawal; a deposit credits on Success, a withdrawal refunds on
        Failure."""
        with self._lock:
            t = next(t for t in self.transfers if t.refid == refid)
            old, t.status = t.status, status
            if t.kind == "deposit" and status == "Success" and old != "Success":
                self._move(t.asset, t.amount, t.fee, "deposit", refid)
            if t.kind == "withdrawal" and status == "Failure" and old != "Failure":
                self._move(t.asset, t.amount + t.fee, ZERO, "withdrawal", refid)

    def fail_next(
        self, path: str, status: int | None = 503, times: int = 1, error: str | None = None
    ) -> None:
        """The next ``times`` calls to ``path`` (e.g. "Balance") fail before doing anything:
        with an HTTP status and a plain-text body, or (``error=``) with a Kraken JSON error."""
        self._add_fault("fail", path, times=times, status=status, error=error)

    def hide_next_order(self, seconds: float) -> None:
        """The next order AddOrder places is not listed for ``seconds`` (it is still on its
        way to the book, as after a lost reply on a busy exchange)."""
        with self._lock:
            self._hide_next = seconds

    def requests_to(self, path: str) -> list[Request]:
        """Logged requests whose path ends with ``path`` (e.g. "AddOrder")."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/" + path)]

    # --------------------------------------------------------------- HTTP layer
    def _respond(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        path, name = split.path, split.path.rsplit("/", 1)[-1]
        raw = self._body(h)
        if h.command == "GET":
            params = dict(parse_qsl(split.query, keep_blank_values=True))
        elif raw.startswith("{"):
            params = {k: str(v) for k, v in json.loads(raw).items()}
        else:
            params = dict(parse_qsl(raw, keep_blank_values=True))
        rec = Request(h.command, path, params)
        with self._lock:
            self.requests.append(rec)
            fault = self._take_fault(h.command, path)
        if fault and fault["kind"] == "fail" and not fault["error"]:
            rec.outcome = f"http {fault['status']}"
            return self._send(h, fault["status"], f"{fault['status']} injected fault", "text/plain")
        try:
            if fault and fault["kind"] == "fail":
                raise KrakenError(fault["error"])
            with self._lock:
                result = self._dispatch(h, path, name, params, raw)
        except KrakenError as err:
            rec.outcome = str(err)
            return self._send(h, 200, json.dumps({"error": [str(err)]}))
        except Exception as err:  # a server bug: say so in the log instead of hanging up
            rec.outcome = f"server bug: {err!r}"
            return self._send(h, 500, json.dumps({"error": ["EGeneral:Internal error"]}))
        if fault and fault["kind"] == "drop":
            rec.outcome = "dropped"
            self._hang_up(h)
            return None
        return self._send(h, 200, json.dumps({"error": [], "result": result}))

    def _fault_matches(self, wanted: str, path: str) -> bool:
        """A fault names a method ("AddOrder", or a path ending in it)."""
        return wanted.rsplit("/", 1)[-1] == path.rsplit("/", 1)[-1]

    def _dispatch(
        self, h: BaseHTTPRequestHandler, path: str, name: str, params: dict[str, str], raw: str
    ) -> Any:
        if path.startswith("/0/public/") and h.command == "GET":
            handler = getattr(self, "_public_" + name, None)
        elif path.startswith("/0/private/") and h.command == "POST":
            self._authenticate(path, h.headers.get("API-Key"), h.headers.get("API-Sign"), raw,
                               params)  # fmt: skip
            if self.fail_all:
                raise KrakenError(self.fail_all)
            handler = getattr(self, "_private_" + name, None)
        else:
            handler = None
        if handler is None:
            raise KrakenError("EGeneral:Unknown method")
        return handler(params)

    def _authenticate(
        self, path: str, key: str | None, sign: str | None, raw: str, params: dict[str, str]
    ) -> None:
        secret = self.keys.get(key or "")
        nonce = params.get("nonce", "")
        if secret is None or not sign or not nonce.isdigit():
            raise KrakenError("EAPI:Invalid key")
        digest = hashlib.sha256((nonce + raw).encode()).digest()
        mac = hmac.new(base64.b64decode(secret), path.encode() + digest, hashlib.sha512)
        if not hmac.compare_digest(base64.b64encode(mac.digest()).decode(), sign):
            raise KrakenError("EAPI:Invalid key")
        assert key is not None
        if int(nonce) <= self._nonces.get(key, 0):
            raise KrakenError("EAPI:Invalid nonce")
        self._nonces[key] = int(nonce)

    # ---------------------------------------------------------------- public API
    def _public_Time(self, p: dict[str, str]) -> Any:  # noqa: N802 - Kraken's method names
        now = self.clock()
        return {"unixtime": int(now), "rfc1123": formatdate(now, usegmt=True)}

    def _public_SystemStatus(self, p: dict[str, str]) -> Any:  # noqa: N802
        return {"status": "online", "timestamp": _iso(self.clock())}

    def _public_Assets(self, p: dict[str, str]) -> Any:  # noqa: N802
        wanted = {asset_id(a) for a in p["asset"].split(",")} if p.get("asset") else set(ASSETS)
        return {
            aid: {"aclass": "currency", "altname": alt, "decimals": dec,
                  "display_decimals": disp, "status": "enabled"}
            for aid, (alt, dec, disp) in ASSETS.items() if aid in wanted
        }  # fmt: skip

    def _pairs_param(self, p: dict[str, str]) -> list[Pair]:
        if not p.get("pair"):
            return list(self.pairs.values())
        return [self.pair(name) for name in p["pair"].split(",")]

    def _public_AssetPairs(self, p: dict[str, str]) -> Any:  # noqa: N802
        return {
            x.id: {
                "altname": x.altname, "wsname": x.wsname, "aclass_base": "currency",
                "base": x.base, "aclass_quote": "currency", "quote": x.quote, "lot": "unit",
                "cost_decimals": ASSETS[x.quote][1], "pair_decimals": x.pair_decimals,
                "lot_decimals": LOT_DECIMALS, "lot_multiplier": 1, "leverage_buy": [],
                "leverage_sell": [], "fees": TAKER_TIERS, "fees_maker": MAKER_TIERS,
                "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40,
                "ordermin": x.ordermin, "costmin": x.costmin,
                "tick_size": fmt(Decimal(1).scaleb(-x.pair_decimals), x.pair_decimals),
                "status": "online",
            }
            for x in self._pairs_param(p)
        }  # fmt: skip

    def _public_Ticker(self, p: dict[str, str]) -> Any:  # noqa: N802
        out = {}
        for x in self._pairs_param(p):
            s = fmt(self.prices[x.id], x.pair_decimals)
            out[x.id] = {"a": [s, "1", "1.000"], "b": [s, "1", "1.000"], "c": [s, "0.1"],
                         "v": ["10", "20"], "p": [s, s], "t": [5, 10], "l": [s, s],
                         "h": [s, s], "o": s}  # fmt: skip
        return out

    def _public_OHLC(self, p: dict[str, str]) -> Any:  # noqa: N802
        x = self.pair(p.get("pair", ""))
        step = int(p.get("interval", "1")) * 60
        since = int(p.get("since", "0"))
        buckets: dict[int, list[Decimal]] = {}
        history = self.price_history[x.id] or [(self.clock(), self.prices[x.id])]
        for t, px in history:
            buckets.setdefault(int(t) // step * step, []).append(px)
        rows = []
        for start, pxs in sorted(buckets.items()):
            if start > since:
                o, c = (fmt(v, x.pair_decimals) for v in (pxs[0], pxs[-1]))
                hi, lo = fmt(max(pxs), x.pair_decimals), fmt(min(pxs), x.pair_decimals)
                rows.append([start, o, hi, lo, c, c, "0.00000000", 0])
        return {x.id: rows, "last": rows[-1][0] if rows else since}

    # ------------------------------------------------------------ account & data
    def _holds(self) -> dict[str, Decimal]:
        holds: dict[str, Decimal] = {}
        for o in self.open_orders():
            assert o.price is not None
            for a, v in self._needs(o, o.price).items():
                holds[a] = holds.get(a, ZERO) + v
        return holds

    def _needs(self, o: Order, price: Decimal) -> dict[str, Decimal]:
        """What filling ``o`` at ``price`` takes from the account, per asset."""
        base, quote = o.pair.base, o.pair.quote
        vol = o.vol - o.vol_exec
        cost = q(vol * price, ASSETS[quote][1])
        needs = {quote: cost} if o.side == "buy" else {base: vol}
        fee_asset, fee = self._fee(o, vol, cost, self.fee_rate, peek=True)
        if fee_asset != (base if o.side == "buy" else quote):  # else the proceeds pay it
            needs[fee_asset] = needs.get(fee_asset, ZERO) + fee
        return needs

    def _fee(
        self, o: Order, vol: Decimal, cost: Decimal, rate: Decimal, peek: bool = False
    ) -> tuple[str, Decimal]:
        if self._next_fee:
            return self._next_fee[0] if peek else self._next_fee.pop(0)
        if "fcib" in o.oflags.split(","):
            return o.pair.base, q(vol * rate, ASSETS[o.pair.base][1])
        return o.pair.quote, q(cost * rate, ASSETS[o.pair.quote][1])

    def _private_Balance(self, p: dict[str, str]) -> Any:  # noqa: N802
        return {a: fmt(v, ASSETS[a][1]) for a, v in self.balances.items()}

    def _private_BalanceEx(self, p: dict[str, str]) -> Any:  # noqa: N802
        holds = self._holds()
        return {
            a: {
                "balance": fmt(v, ASSETS[a][1]),
                "hold_trade": fmt(holds.get(a, ZERO), ASSETS[a][1]),
            }
            for a, v in self.balances.items()
        }

    def _move(self, asset: str, amount: Decimal, fee: Decimal, kind: str, refid: str) -> None:
        bal = self.balances.get(asset, ZERO) + amount - fee
        self.balances[asset] = bal
        dec = ASSETS[asset][1]
        self.ledger.append({
            "id": self._id("L"), "refid": refid, "time": self.clock(), "type": kind,
            "subtype": "", "aclass": "currency", "asset": asset, "amount": fmt(amount, dec),
            "fee": fmt(fee, dec), "balance": fmt(bal, dec),
        })  # fmt: skip

    # ------------------------------------------------------------------- orders
    def _private_AddOrder(self, p: dict[str, str]) -> Any:  # noqa: N802
        x = self.pair(p.get("pair", ""))
        side, ordertype, oflags = p.get("type"), p.get("ordertype"), p.get("oflags", "")
        if side not in ("buy", "sell") or ordertype not in ("market", "limit"):
            raise KrakenError("EGeneral:Invalid arguments")
        if "viqc" in oflags:
            raise KrakenError("EGeneral:Invalid arguments:viqc")  # not simulated
        vol = _dec(p.get("volume"), "EGeneral:Invalid arguments:volume")
        if vol < Decimal(x.ordermin):
            raise KrakenError("EOrder:Order minimum not met")
        price = None
        if ordertype == "limit":
            price = _dec(p.get("price"), "EGeneral:Invalid arguments:price")
            if q(price, x.pair_decimals) != price:
                raise KrakenError(f"EOrder:Invalid price:{x.altname} price can only be "
                                  f"specified up to {x.pair_decimals} decimals.")  # fmt: skip
        cl = p.get("cl_ord_id")
        userref = p.get("userref")
        if userref is not None and not userref.lstrip("-").isdigit():
            raise KrakenError("EGeneral:Invalid arguments:userref")
        if cl is not None:
            if userref is not None or not _valid_cl_ord_id(cl):
                raise KrakenError("EGeneral:Invalid arguments:cl_ord_id")
            if any(o.cl_ord_id == cl for o in self.open_orders()):
                raise KrakenError("EOrder:Duplicate cl_ord_id")  # exact string unverified
        o = Order(self._id("O"), x, side, ordertype, q(vol, LOT_DECIMALS), price, self.clock(),
                  oflags or "fciq", int(userref) if userref else None, cl)  # fmt: skip
        market = self.prices[x.id]
        crosses = price is None or (market <= price if side == "buy" else market >= price)
        holds, needs = self._holds(), self._needs(o, market if crosses else price or market)
        for a, need in needs.items():
            if self.balances.get(a, ZERO) - holds.get(a, ZERO) < need:
                raise KrakenError("EOrder:Insufficient funds")
        descr = {"order": self._descr(o)}
        if p.get("validate", "").lower() == "true":
            return {"descr": descr}
        if self._hide_next:
            o.hidden_until, self._hide_next = time.time() + self._hide_next, 0.0
        self.orders.append(o)
        if crosses:
            self._fill(o, market, maker=False)
        return {"descr": descr, "txid": [o.txid]}

    def _fill(self, o: Order, price: Decimal, maker: bool) -> None:
        base, quote = o.pair.base, o.pair.quote
        vol = o.vol - o.vol_exec
        cost = q(vol * price, ASSETS[quote][1])
        rate = self.maker_fee_rate if maker else self.fee_rate
        fee_asset, fee = self._fee(o, vol, cost, rate)
        self._trade_seq += 1
        t = Trade(self._id("T"), self._trade_seq, o, self.clock(), price, vol, cost, fee,
                  fee_asset, maker)  # fmt: skip
        sign = 1 if o.side == "buy" else -1
        self._move(base, sign * vol, fee if fee_asset == base else ZERO, "trade", t.txid)
        self._move(quote, -sign * cost, fee if fee_asset == quote else ZERO, "trade", t.txid)
        if fee_asset not in (base, quote):
            self._move(fee_asset, ZERO, fee, "trade", t.txid)
        self.trades.append(t)
        o.vol_exec += vol
        o.cost += cost
        o.fee += fee
        o.trades.append(t.txid)
        o.status, o.closetm = "closed", t.time

    def _descr(self, o: Order) -> str:
        head = f"{o.side} {fmt(o.vol, LOT_DECIMALS)} {o.pair.altname} @ "
        if o.price is None:
            return head + "market"
        return head + f"limit {fmt(o.price, o.pair.pair_decimals)}"

    def _order_json(self, o: Order, with_trades: bool = False) -> dict[str, Any]:
        pd, qd = o.pair.pair_decimals, ASSETS[o.pair.quote][1]
        avg = o.cost / o.vol_exec if o.vol_exec else ZERO
        d: dict[str, Any] = {
            "refid": None, "userref": o.userref, "status": o.status, "opentm": o.opentm,
            "starttm": 0, "expiretm": 0,
            "descr": {"pair": o.pair.altname, "type": o.side, "ordertype": o.ordertype,
                      "price": fmt(o.price or ZERO, pd), "price2": "0", "leverage": "none",
                      "order": self._descr(o), "close": ""},
            "vol": fmt(o.vol, LOT_DECIMALS), "vol_exec": fmt(o.vol_exec, LOT_DECIMALS),
            "cost": fmt(o.cost, qd), "fee": fmt(o.fee, qd), "price": fmt(avg, pd + 4),
            "stopprice": "0.00000", "limitprice": "0.00000", "misc": "", "oflags": o.oflags,
        }  # fmt: skip
        if o.cl_ord_id is not None:
            d["cl_ord_id"] = o.cl_ord_id
        if o.closetm is not None:
            d["closetm"], d["reason"] = o.closetm, o.reason
        if with_trades and o.trades:
            d["trades"] = list(o.trades)
        return d

    def _select(self, orders: list[Order], p: dict[str, str]) -> list[Order]:
        now = time.time()
        orders = [o for o in orders if o.hidden_until <= now]
        if p.get("userref"):
            orders = [o for o in orders if str(o.userref) == p["userref"]]
        if p.get("cl_ord_id"):
            orders = [o for o in orders if o.cl_ord_id == p["cl_ord_id"]]
        return orders

    def _private_OpenOrders(self, p: dict[str, str]) -> Any:  # noqa: N802
        trades = _true(p.get("trades"))
        return {"open": {o.txid: self._order_json(o, trades)
                         for o in self._select(self.open_orders(), p)}}  # fmt: skip

    def _private_ClosedOrders(self, p: dict[str, str]) -> Any:  # noqa: N802
        closed = self._select([o for o in self.orders if o.status != "open"], p)
        when = p.get("closetime", "both")

        def in_range(t: float) -> bool:
            return _after(t, p.get("start")) and _before(t, p.get("end"))

        closed = [
            o for o in closed
            if (when in ("open", "both") and in_range(o.opentm))
            or (when in ("close", "both") and in_range(o.closetm or 0))
        ]  # fmt: skip
        closed.sort(key=lambda o: o.closetm or 0, reverse=True)
        page = _page(closed, p)
        trades = _true(p.get("trades"))
        return {"closed": {o.txid: self._order_json(o, trades) for o in page},
                "count": len(closed)}  # fmt: skip

    def _private_QueryOrders(self, p: dict[str, str]) -> Any:  # noqa: N802
        ids = set(p.get("txid", "").split(","))
        found = self._select([o for o in self.orders if o.txid in ids], p)
        return {o.txid: self._order_json(o, _true(p.get("trades"))) for o in found}

    def _private_CancelOrder(self, p: dict[str, str]) -> Any:  # noqa: N802
        ref, cl = p.get("txid"), p.get("cl_ord_id")
        hits = [
            o for o in self.open_orders()
            if (cl is not None and o.cl_ord_id == cl)
            or (ref is not None and (o.txid == ref or str(o.userref) == ref))
        ]  # fmt: skip
        if not hits:
            raise KrakenError("EOrder:Unknown order")
        for o in hits:
            self._cancel(o)
        return {"count": len(hits), "pending": False}

    def _private_CancelAll(self, p: dict[str, str]) -> Any:  # noqa: N802
        hits = self.open_orders()
        for o in hits:
            self._cancel(o)
        return {"count": len(hits)}

    def _cancel(self, o: Order) -> None:
        o.status, o.closetm, o.reason = "canceled", self.clock(), "User requested"

    # ------------------------------------------------------------------- trades
    def _trade_json(self, t: Trade) -> dict[str, Any]:
        x = t.order.pair
        qd = ASSETS[x.quote][1]
        return {
            "ordertxid": t.order.txid, "pair": x.id,
            "time": t.time, "type": t.order.side, "ordertype": t.order.ordertype,
            "price": fmt(t.price, x.pair_decimals), "cost": fmt(t.cost, qd),
            "fee": fmt(t.fee, ASSETS[t.fee_asset][1]), "vol": fmt(t.vol, LOT_DECIMALS),
            "margin": fmt(ZERO, qd), "leverage": "0", "misc": "", "trade_id": t.trade_id,
            "maker": t.maker,
        }  # fmt: skip

    def _private_TradesHistory(self, p: dict[str, str]) -> Any:  # noqa: N802
        rows = [t for t in self.trades
                if _after(t.time, p.get("start")) and _before(t.time, p.get("end"))]  # fmt: skip
        rows.sort(key=lambda t: t.trade_id, reverse=True)
        return {"trades": {t.txid: self._trade_json(t) for t in _page(rows, p)},
                "count": len(rows)}  # fmt: skip

    def _private_QueryTrades(self, p: dict[str, str]) -> Any:  # noqa: N802
        ids = set(p.get("txid", "").split(","))
        return {t.txid: self._trade_json(t) for t in self.trades if t.txid in ids}

    def _private_Ledgers(self, p: dict[str, str]) -> Any:  # noqa: N802
        assets = {asset_id(a) for a in p["asset"].split(",")} if p.get("asset") else None
        rows = [
            e for e in reversed(self.ledger)
            if (assets is None or e["asset"] in assets)
            and p.get("type", "all") in ("all", e["type"])
            and _after(e["time"], p.get("start")) and _before(e["time"], p.get("end"))
        ]  # fmt: skip
        return {"ledger": {e["id"]: {k: v for k, v in e.items() if k != "id"}
                           for e in _page(rows, p)}, "count": len(rows)}  # fmt: skip

    # ------------------------------------------------------------------ funding
    def _transfers(self, kind: str, p: dict[str, str]) -> list[dict[str, Any]]:
        aid = asset_id(p["asset"]) if p.get("asset") else None
        out = []
        for t in sorted(self.transfers, key=lambda t: t.time, reverse=True):
            if t.kind != kind or (aid and t.asset != aid):
                continue
            if not (_after(t.time, p.get("start")) and _before(t.time, p.get("end"))):
                continue
            dec = ASSETS[t.asset][1]
            row = {"method": "Bitcoin" if t.asset == "XXBT" else asset_code(t.asset),
                   "aclass": "currency", "asset": t.asset, "refid": t.refid, "txid": t.txid,
                   "info": t.address, "amount": fmt(t.amount, dec), "fee": fmt(t.fee, dec),
                   "time": int(t.time), "status": t.status}  # fmt: skip
            if t.key is not None:
                row["key"] = t.key
            out.append(row)
        return out

    def _private_DepositStatus(self, p: dict[str, str]) -> Any:  # noqa: N802
        return self._transfers("deposit", p)

    def _private_WithdrawStatus(self, p: dict[str, str]) -> Any:  # noqa: N802
        rows = self._transfers("withdrawal", p)
        return {"withdrawals": rows} if "cursor" in p else rows

    def _private_Withdraw(self, p: dict[str, str]) -> Any:  # noqa: N802
        aid = asset_id(p.get("asset", ""))
        address = self.withdrawal_keys.get((aid, p.get("key", "")))
        if address is None:
            raise KrakenError("EFunding:Unknown withdraw key")
        if p.get("address") and p["address"] != address:
            raise KrakenError("EFunding:Invalid address")  # exact string unverified
        amount = _dec(p.get("amount"), "EFunding:Invalid amount")
        fee = self.withdrawal_fees.get(aid, ZERO)
        if amount <= fee:
            raise KrakenError("EFunding:Invalid amount")
        if self.balances.get(aid, ZERO) - self._holds().get(aid, ZERO) < amount:
            raise KrakenError("EFunding:Insufficient funds")
        t = Transfer("withdrawal", self._id("FT"), aid, amount - fee, fee, self.clock(),
                     "Pending", address, "", p["key"])  # fmt: skip
        self._move(aid, -(amount - fee), fee, "withdrawal", t.refid)
        self.transfers.append(t)
        return {"refid": t.refid}

    # -------------------------------------------------------------------- ids
    def _id(self, prefix: str) -> str:
        if prefix == "FT":
            chars = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
            return "FT" + "".join(self._rng.choices(chars, k=28))
        s = "".join(self._rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", k=16))
        return f"{prefix}{s[:5]}-{s[5:10]}-{s[10:]}"

    def _hex(self) -> str:
        return "".join(self._rng.choices("0123456789abcdef", k=64))


def _dec(value: str | None, error: str) -> Decimal:
    try:
        d = Decimal(value or "")
    except ArithmeticError:
        raise KrakenError(error) from None
    if not d.is_finite() or d <= 0:
        raise KrakenError(error)
    return d


def _true(value: str | None) -> bool:
    return (value or "").lower() == "true"


def _after(t: float, start: str | None) -> bool:
    return not start or t > float(start)  # Kraken's start is exclusive


def _before(t: float, end: str | None) -> bool:
    return not end or t <= float(end)  # and its end inclusive


def _page(rows: list[Any], p: dict[str, str]) -> list[Any]:
    ofs = int(p.get("ofs") or 0)
    return rows[ofs : ofs + PAGE]


def _valid_cl_ord_id(cl: str) -> bool:
    hexdigits = set("0123456789abcdefABCDEF")
    if len(cl) == 36 and cl.count("-") == 4:
        return set(cl.replace("-", "")) <= hexdigits
    if len(cl) == 32 and set(cl) <= hexdigits:
        return True
    return 0 < len(cl) <= 18 and cl.isascii() and cl.isprintable()


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
