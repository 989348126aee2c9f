"""The gateway over ccxt: one account in the config becomes one ccxt exchange behind ExchangeClient.

ccxt is imported inside functions only, so commands that never trade do not pay for it.

Numbers. ccxt accepts a `number` class in its constructor config. Measured with ccxt 4.5.90
on kraken's parsers (canned AssetPairs/Assets/Ticker/ClosedOrders/TradesHistory replies):
`number: Decimal` breaks `load_markets` ("kraken method() missing currencyPrecision":
ccxt's safe_string does not take Decimal back); `number: str` loads, but ccxt then compares
precisions as strings (`currencyPrecision > precisionAmount` in kraken.fetch_markets is a
lexicographic comparison), so results are silently wrong. We therefore keep ccxt's default
float and convert every number once, here, with `Decimal(str(x))` (money.to_decimal).
Amounts and prices we send go out as floats only after checking that the float
round-trips to the same Decimal, so nothing is rounded behind the user's back.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from ccxtkit.config import ExchangeConfig
from ccxtkit.errors import ConfigError, ExchangeError, InputError
from ccxtkit.logs import log, register_secret
from ccxtkit.money import fmt

from .base import ApiKey, Balance, Candle, LedgerEntry, Market, Order, Ticker, Trade, Transfer
from .ccxt_convert import (
    Raw,
    datetime_to_ms,
    to_balances,
    to_candle,
    to_ledger_entry,
    to_market,
    to_order,
    to_ticker,
    to_trade,
    to_transfer,
)
from .errors_map import (
    CallContext,
    ExchangeOrderNotFound,
    RetryPolicy,
    call_create,
    call_safe,
    call_withdraw,
)
from .lookup import find_raw
from .markets_cache import MarketsCache
from .pagination import PAGINATION, Pager, collect
from .quirks import (
    CANCEL_REFUSED_WHEN_CLOSED,
    CCXT_DEFAULTS,
    CLIENT_ID_PARAM,
    CREATE_PARAMS,
    FEE_CREDIT_ASSETS,
    FILLS_BY_CURSOR,
    FILLS_BY_ORDER_ID,
    MARKET_BUY_BY_COST,
    NO_OWN_SANDBOX,
    NO_SPOT_LEDGER,
    OPEN_ORDERS_BY_CURSOR,
    TRADES_PER_SYMBOL,
    TRANSFERS_IN_WINDOWS,
    TRANSFERS_PER_WALLET,
    binance_trades,
    binance_transfers,
    cancel_all_count,
    coinbase_fills,
    coinbase_open_orders,
    coinbase_transfers,
)

#: Keys that hold secrets: they come from the secrets backend, never from the config file.
_SECRET_KEYS = {"apiKey", "secret", "password", "privateKey", "uid", "walletAddress", "token"}

#: Exchanges that want the allowlisted address's label instead of (or beside) the address:
#: kraken withdraws to a named "withdrawal key" set up on its website.
_WITHDRAW_LABEL_PARAM = {"kraken": "key"}


def _plain(value: Any) -> Any:
    """YAML decimals in the `ccxt:` mapping become ints/floats: ccxt wants plain numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `extra` merged in; nested mappings merge, other values replace."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def ccxt_config(name: str, cfg: ExchangeConfig, credentials: ApiKey | None) -> dict[str, Any]:
    """The ccxt constructor dict of an account: rate limit, the `ccxt:` mapping, the keys."""
    leaked = sorted(_SECRET_KEYS & set(cfg.ccxt))
    if leaked:
        raise ConfigError(
            f"exchanges.{name}.ccxt holds {', '.join(leaked)}: keys belong in the secrets "
            f"backend, not the config file; remove them and run `vhc secrets set {name}`"
        )
    base: dict[str, Any] = deep_merge(
        {
            "enableRateLimit": True,
            "rateLimit": float(Decimal(1000) / cfg.rate_limit),  # ccxt wants ms between calls
        },
        CCXT_DEFAULTS.get(cfg.id or name, {}),
    )
    merged = deep_merge(base, _plain(cfg.ccxt))
    if credentials is not None:
        for value in (credentials.api_key, credentials.api_secret, credentials.passphrase):
            register_secret(value)
        merged["apiKey"] = credentials.api_key
        merged["secret"] = _pem_newlines(credentials.api_secret)
        if credentials.passphrase:
            merged["password"] = credentials.passphrase
    return merged


def _pem_newlines(secret: str) -> str:
    """A PEM key (coinbase's CDP key) given on one line with literal \\n escapes, as from an
    environment variable or the key file's JSON, with real newlines (ccxt cannot read it
    otherwise); any other secret unchanged."""
    if secret.startswith("-----BEGIN") and "\\n" in secret:
        return secret.replace("\\n", "\n")
    return secret


def build_ccxt(name: str, cfg: ExchangeConfig, credentials: ApiKey | None) -> Any:
    """A configured ccxt exchange instance for the account `name`."""
    import ccxt

    ccxt_id = cfg.id or name
    if ccxt_id not in ccxt.exchanges:
        raise ConfigError(
            f"exchanges.{name}: {ccxt_id!r} is not a ccxt exchange id "
            "(set `id:` to one of ccxt's ids, e.g. kraken, or `paper`)"
        )
    if cfg.sandbox and ccxt_id in NO_OWN_SANDBOX:
        raise ConfigError(
            f"exchanges.{name}: {ccxt_id} has no sandbox of its own (ccxt's test URLs for it "
            "belong to another exchange); set `sandbox: false` or point `ccxt: {urls: ...}` "
            "at a test server"
        )
    exchange = getattr(ccxt, ccxt_id)(ccxt_config(name, cfg, credentials))
    if cfg.sandbox:
        try:
            exchange.set_sandbox_mode(True)
        except (ccxt.NotSupported, TypeError, KeyError):  # kraken: no urls['test'] at all
            raise ConfigError(
                f"exchanges.{name}: {ccxt_id} has no sandbox (testnet) in ccxt; "
                "set `sandbox: false` or point `ccxt: {urls: ...}` at a test server"
            ) from None
        _refuse_production_sandbox(name, ccxt_id, exchange.urls.get("api"))
    return exchange


def _hosts(urls: Any) -> set[str]:
    """Every host named in a ccxt `urls` entry (a URL or nested dicts of them)."""
    if isinstance(urls, str):
        return {urlsplit(urls).hostname or ""}
    if isinstance(urls, dict):
        return {h for value in urls.values() for h in _hosts(value)}
    return set()


def _refuse_production_sandbox(name: str, ccxt_id: str, api_urls: Any) -> None:
    """`sandbox: true` lifts the live-money gates: it must not reach the production API.

    Hosts the exchange's own sandbox shares with production (documentation links) are fine.
    """
    import ccxt

    pristine = getattr(ccxt, ccxt_id)().urls
    production = _hosts(pristine.get("api")) - _hosts(pristine.get("test"))
    leaked = sorted(_hosts(api_urls) & production)
    if leaked:
        raise ConfigError(
            f"exchanges.{name}: `sandbox: true` but its URLs reach {ccxt_id}'s production API "
            f"({', '.join(leaked)}); a sandbox account skips the live-money checks, so this is "
            "refused: set `sandbox: false` to trade real money, or point `ccxt: {urls: ...}` "
            "at a test server"
        )


def _float(value: Decimal, what: str) -> float:
    """ccxt takes floats: refuse a Decimal that a float would silently round."""
    f = float(value)
    if Decimal(str(f)) != value:
        raise InputError(f"{what} {fmt(value)} has more digits than the exchange API can carry")
    return f


class CcxtGateway:
    """ExchangeClient over a ccxt exchange instance; ccxt's dicts never leave this class."""

    def __init__(
        self,
        name: str,
        exchange: Any,
        retry: RetryPolicy | None = None,
        markets_cache: MarketsCache | None = None,
    ) -> None:
        self.name = name
        self.exchange = exchange
        self.retry = retry or RetryPolicy()
        self.markets_cache = markets_cache
        self._markets: dict[str, Market] | None = None
        #: When the market lists in use were fetched from the exchange, and whether from disk.
        self._markets_at = 0.0
        self._markets_cached = False
        #: What the last cancel_all_orders read back to confirm (see open_orders_after_cancel).
        self._open_after_cancel: list[Order] | None = None
        #: Called with the unified method name after each history page (progress bars).
        self.on_page: Callable[[str], None] | None = None
        #: Whether the last balance read showed fee credits (None: not read in this run).
        self._fee_credits: bool | None = None
        #: Client ids of orders sent by this client whose fills' fees are charged as the trade
        #: history labels them (see quirks.CREATE_PARAMS): no exchange-ledger read needed.
        self.fees_as_reported: set[str] = set()

    # -- helpers -----------------------------------------------------------------------

    def _safe(self, action: str, fn: Callable[[], Any], **ctx: Any) -> Any:
        return call_safe(fn, CallContext(self.name, action, **ctx), self.retry)

    def _has(self, feature: str) -> bool:
        return bool(self.exchange.has.get(feature))

    # -- reads ---------------------------------------------------------------------------

    def ip_restrictions(self) -> list[str] | None:
        """The IPs the API key is restricted to ([] = any IP), or None if ccxt cannot tell.

        Only Binance exposes it (GET /sapi/v1/account/apiRestrictions/ipRestriction).
        """
        fetch = getattr(self.exchange, "sapi_get_account_apirestrictions_iprestriction", None)
        if self.exchange.id != "binance" or fetch is None:
            return None
        raw = self._safe("ip_restrictions", fetch)
        if str(raw.get("ipRestrict", "")).lower() != "true":
            return []
        return sorted(str(ip) for ip in raw.get("ipList") or [])

    def ping(self) -> None:
        """The cheapest call the exchange offers (its clock or status), for the health probe."""
        has = getattr(self.exchange, "has", {}) or {}
        if has.get("fetchTime"):
            self._safe("fetch_time", self.exchange.fetch_time)
        elif has.get("fetchStatus"):
            self._safe("fetch_status", self.exchange.fetch_status)
        else:
            self._safe("load_markets", self.exchange.load_markets)

    def load_markets(self) -> dict[str, Market]:
        """The exchange's markets by symbol: from the fresh on-disk cache, else the exchange."""
        if self._markets is None:
            cached = self.markets_cache.load() if self.markets_cache else None
            if cached is None:
                self.reload_markets()
            else:
                self.exchange.set_markets(cached.markets, cached.currencies)
                self.exchange.options.update(cached.helpers)
                self._index(self.exchange.markets, cached.fetched_at, from_cache=True)
        assert self._markets is not None
        return self._markets

    def reload_markets(self) -> dict[str, Market]:
        """Fetch the market and currency lists from the exchange and refresh the cache."""
        ex = self.exchange
        raw = self._safe("load_markets", lambda: ex.load_markets(True))
        fetched_at = time.time()
        if self.markets_cache is not None:
            helpers = {k: ex.options.get(k) for k in ex.options.get("marketHelperProps") or []}
            fetched_at = self.markets_cache.store(raw, ex.currencies, helpers)
        return self._index(raw, fetched_at, from_cache=False)

    def _index(self, raw: dict[str, Any], fetched_at: float, from_cache: bool) -> dict[str, Market]:
        tick = self.exchange.precisionMode == 4  # ccxt.TICK_SIZE
        self._markets = {s: to_market(m, tick) for s, m in raw.items()}
        self._markets_at, self._markets_cached = fetched_at, from_cache
        return self._markets

    def market(self, symbol: str) -> Market | None:
        """One market; a symbol the cached list lacks makes us ask the exchange once."""
        found = self.load_markets().get(symbol.upper())
        if found is None and self._markets_cached:
            found = self.reload_markets().get(symbol.upper())
        return found

    def _fresh_markets(self) -> None:
        """Before a send: precision and limits from the cache only while it is within its TTL."""
        self.load_markets()
        cache = self.markets_cache
        if cache is not None and cache.clock() - self._markets_at >= cache.ttl:
            self.reload_markets()

    def fetch_ticker(self, symbol: str) -> Ticker:
        """The latest prices of a symbol."""
        self.load_markets()
        raw = self._safe("fetch_ticker", lambda: self.exchange.fetch_ticker(symbol), symbol=symbol)
        return to_ticker(raw)

    def fetch_balance(self) -> dict[str, Balance]:
        """Balances by asset."""
        self.load_markets()
        balances = to_balances(self._safe("fetch_balance", self.exchange.fetch_balance))
        credits = FEE_CREDIT_ASSETS.get(self.exchange.id)
        if credits is not None:
            self._fee_credits = any(b.total > 0 for a, b in balances.items() if a in credits)
        return balances

    def fetch_order(self, order_id: str, symbol: str) -> Order:
        """One order by the exchange's id."""
        self.load_markets()
        raw = self._safe(
            "fetch_order", lambda: self.exchange.fetch_order(order_id, symbol), symbol=symbol
        )
        return to_order(self._with_fills(raw, symbol))

    def _with_fills(self, raw: Raw, symbol: str) -> Raw:
        """Where an order's reply lacks complete fills (binance), read them by order id."""
        if self.exchange.id not in FILLS_BY_ORDER_ID or not raw.get("filled"):
            return raw
        ex, order_id = self.exchange, raw["id"]
        trades = self._safe(
            "fetch_my_trades",
            lambda: ex.fetch_my_trades(symbol, None, None, {"orderId": order_id}),
            symbol=symbol,
        )
        return {**raw, "trades": [t for t in trades if str(t.get("order")) == str(order_id)]}

    def fetch_open_orders(self, symbol: str | None = None) -> list[Order]:
        """Open orders, of one symbol or all."""
        self.load_markets()
        if self.exchange.id in OPEN_ORDERS_BY_CURSOR:
            raws = coinbase_open_orders(
                self.exchange,
                symbol,
                lambda page: self._safe("fetch_open_orders", page, symbol=symbol),
            )
            return [to_order(r) for r in raws]
        raws = self._safe(
            "fetch_open_orders", lambda: self.exchange.fetch_open_orders(symbol), symbol=symbol
        )
        return [to_order(r) for r in raws]

    def find_order_by_client_id(self, client_order_id: str, symbol: str) -> Order | None:
        """Look among open AND closed orders; None only when the exchange confirms absence.

        Raises `OrderLookupUnproven` where the exchange cannot prove absence (see lookup.py).
        """
        self.load_markets()

        def safe(fn: Callable[[], Any]) -> Any:
            return self._safe("find_order_by_client_id", fn, symbol=symbol)

        raw = find_raw(self.exchange, client_order_id, symbol, safe, self.name, self.retry.sleep)
        return None if raw is None else to_order(self._with_fills(raw, symbol))

    def fetch_my_trades(self, since: datetime, until: datetime | None = None) -> list[Trade]:
        """All fills in the range, following pagination to the end."""
        self.load_markets()
        if self.exchange.id in TRADES_PER_SYMBOL:
            return self._trades_per_symbol(since, until)
        if self.exchange.id in FILLS_BY_CURSOR:
            raws = coinbase_fills(
                self.exchange, *self._range_ms(since, until), self._paged("fetchMyTrades")
            )
            return [to_trade(r) for r in sorted(raws, key=lambda r: int(r["timestamp"]))]
        raws = self._collect("fetchMyTrades", self.exchange.fetch_my_trades, since, until)
        return [to_trade(r) for r in raws]

    def _trades_per_symbol(self, since: datetime, until: datetime | None) -> list[Trade]:
        """Fills read market by market (binance: myTrades needs a symbol, 24 h per call)."""
        since_ms = datetime_to_ms(since)
        until_ms = datetime_to_ms(until) if until else int(self.exchange.milliseconds()) + 1
        raws: list[Raw] = []
        for symbol in sorted(self.load_markets()):

            def call(fn: Callable[[], Any], symbol: str = symbol) -> Any:
                rows = self._safe("fetch_my_trades", fn, symbol=symbol)
                if self.on_page is not None:
                    self.on_page("fetchMyTrades")
                return rows

            raws += binance_trades(self.exchange, symbol, since_ms, until_ms, call)
        unique = {str(r["id"]): r for r in raws}
        rows = [r for r in unique.values() if since_ms <= int(r["timestamp"]) < until_ms]
        return [to_trade(r) for r in sorted(rows, key=lambda r: int(r["timestamp"]))]

    def fetch_deposits(self, since: datetime, until: datetime | None = None) -> list[Transfer]:
        """All deposits in the range."""
        self.load_markets()
        raws = self._transfers("fetchDeposits", self.exchange.fetch_deposits, since, until)
        return [to_transfer(r, "deposit") for r in raws]

    def fetch_withdrawals(self, since: datetime, until: datetime | None = None) -> list[Transfer]:
        """All withdrawals in the range."""
        self.load_markets()
        raws = self._transfers("fetchWithdrawals", self.exchange.fetch_withdrawals, since, until)
        return [to_transfer(r, "withdrawal") for r in raws]

    def _range_ms(self, since: datetime, until: datetime | None) -> tuple[int, int]:
        until_ms = datetime_to_ms(until) if until else int(self.exchange.milliseconds()) + 1
        return datetime_to_ms(since), until_ms

    def _paged(self, method: str) -> Callable[[Callable[[], Any]], Any]:
        """One history page through the retry policy, reported to `on_page`."""

        def call(page: Callable[[], Any]) -> Any:
            rows = self._safe(method, page)
            if self.on_page is not None:
                self.on_page(method)
            return rows

        return call

    def _transfers(
        self, method: str, fn: Callable[..., list[Raw]], since: datetime, until: datetime | None
    ) -> list[Raw]:
        if self.exchange.id in TRANSFERS_PER_WALLET:
            kind = "deposit" if method == "fetchDeposits" else "withdrawal"
            raws = coinbase_transfers(
                self.exchange, kind, *self._range_ms(since, until), self._paged(method)
            )
            return sorted(raws, key=lambda r: int(r.get("timestamp") or 0))
        if self.exchange.id not in TRANSFERS_IN_WINDOWS:
            return self._collect(method, fn, since, until)
        since_ms = datetime_to_ms(since)
        until_ms = datetime_to_ms(until) if until else int(self.exchange.milliseconds()) + 1

        def call(page: Callable[[], Any]) -> Any:
            rows = self._safe(method, page)
            if self.on_page is not None:
                self.on_page(method)
            return rows

        raws = binance_transfers(fn, since_ms, until_ms, call)
        unique = {str(r["id"]): r for r in raws}
        kept = [
            r
            for r in unique.values()
            if r.get("timestamp") is None or since_ms <= int(r["timestamp"]) < until_ms
        ]
        return sorted(kept, key=lambda r: int(r.get("timestamp") or 0))

    def fetch_ledger(
        self, since: datetime, until: datetime | None = None
    ) -> list[LedgerEntry] | None:
        """The exchange's ledger in the range (where fees show their real currency), or None."""
        if not self._has("fetchLedger") or self.exchange.id in NO_SPOT_LEDGER:
            return None
        self.load_markets()
        raws = self._collect("fetchLedger", self.exchange.fetch_ledger, since, until)
        return [to_ledger_entry(r) for r in raws]

    def _collect(
        self, method: str, fn: Callable[..., list[Raw]], since: datetime, until: datetime | None
    ) -> list[Raw]:
        pager = PAGINATION.get((self.exchange.id, method), Pager("forward"))
        ctx = CallContext(self.name, method)

        def page(since_ms: int | None, params: dict[str, Any]) -> list[Raw]:
            # Ask from a second earlier: some exchanges (kraken) take whole seconds and an
            # exclusive start; `collect` trims to the exact range afterwards.
            start = None if since_ms is None else since_ms - 1000
            rows = list(call_safe(lambda: fn(None, start, None, params), ctx, self.retry))
            if self.on_page is not None:
                self.on_page(method)
            return rows

        until_ms = None if until is None else datetime_to_ms(until)
        return collect(page, pager, datetime_to_ms(since), until_ms, ctx)

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: datetime, limit: int | None = None
    ) -> list[Candle]:
        """Candles from `since`."""
        self.load_markets()
        rows = self._safe(
            "fetch_ohlcv",
            lambda: self.exchange.fetch_ohlcv(symbol, timeframe, datetime_to_ms(since), limit),
            symbol=symbol,
        )
        return [to_candle(r) for r in rows]

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
        """Send an order once, with our client order id; never retried."""
        if side not in ("buy", "sell") or type not in ("market", "limit"):
            raise InputError(f"unsupported order: {side} {type} (use buy|sell, market|limit)")
        if type == "limit" and price is None:
            raise InputError("a limit order needs a price")
        self._fresh_markets()  # a read, retried, before anything is sent
        if self.market(symbol) is None:
            raise InputError(f"{self.name} has no market {symbol!r}")
        f_amount = _float(amount, "amount")
        f_price = None if price is None else _float(price, "price")
        if f_price is None and side == "buy" and self.exchange.id in MARKET_BUY_BY_COST:
            # ccxt sends this market buy as a quote amount: amount x the current ask.
            quote = self.fetch_ticker(symbol)
            ask = quote.ask or quote.last
            if ask is None:
                raise ExchangeError(f"{self.name}: no price for {symbol}: market buy not sent")
            f_price = float(ask)
        ctx = CallContext(self.name, "create_order", symbol=symbol, side=side, amount=amount)
        params = {
            **CREATE_PARAMS.get(self.exchange.id, {}),
            CLIENT_ID_PARAM.get(self.exchange.id, "clientOrderId"): client_order_id,
        }
        if self.exchange.id in CREATE_PARAMS and self._fee_credits is False:
            self.fees_as_reported.add(client_order_id)
        raw = call_create(
            lambda: self.exchange.create_order(symbol, type, side, f_amount, f_price, params), ctx
        )
        sent = {
            "symbol": symbol,
            "side": side,
            "type": type,
            "amount": amount,
            "price": price,
            "clientOrderId": client_order_id,
        }
        if self.exchange.id in FILLS_BY_ORDER_ID and raw.get("filled"):
            try:
                return to_order(self._with_fills(raw, symbol), sent)
            except ExchangeError as exc:  # placed: the fills are read again by `fills_of`
                log.warning("%s: order %s placed, fills not read: %s", self.name, raw["id"], exc)
        if raw.get("status") is None and raw.get("id") is not None:
            # Some exchanges (kraken) answer AddOrder with the id only: ask for the rest.
            try:
                return to_order(
                    self._safe("fetch_order", lambda: self.exchange.fetch_order(raw["id"], symbol)),
                    sent,
                )
            except ExchangeError as exc:
                log.warning("%s: order %s placed, state unknown: %s", self.name, raw["id"], exc)
        return to_order(raw, sent)

    def cancel_order(self, order_id: str, symbol: str) -> None:
        """Cancel an order; one that is already cancelled counts as done."""
        self.load_markets()
        try:
            self._safe(
                "cancel_order", lambda: self.exchange.cancel_order(order_id, symbol), symbol=symbol
            )
        except ExchangeOrderNotFound:
            # A retried cancel whose first attempt worked lands here too: check the state.
            self._check_cancelled(order_id, symbol)
        except ExchangeError as exc:
            # coinbase refuses a cancel of an order no longer open (a retry whose first reply
            # was lost included) with success: false, which ccxt raises as BadRequest.
            if self.exchange.id not in CANCEL_REFUSED_WHEN_CLOSED or "BadRequest" not in str(exc):
                raise
            self._check_cancelled(order_id, symbol)

    def _check_cancelled(self, order_id: str, symbol: str) -> None:
        order = self.fetch_order(order_id, symbol)
        if order.status != "canceled":
            raise ExchangeError(
                f"{self.name}: cannot cancel order {order_id}: it is {order.status}"
            ) from None

    def cancel_all_orders(self) -> list[str]:
        """Cancel every open order; returns the ids cancelled."""
        self._open_after_cancel = None
        before = self.fetch_open_orders()
        if not before:
            self._open_after_cancel = before
            return []
        if self._has("cancelAllOrders"):
            symbols = sorted({o.symbol for o in before})

            def cancel_all() -> Any:
                import ccxt

                try:
                    return self.exchange.cancel_all_orders()
                except ccxt.ArgumentsRequired:
                    for symbol in symbols:  # this exchange cancels per market
                        self.exchange.cancel_all_orders(symbol)
                    return None

            reply = self._safe("cancel_all_orders", cancel_all)
            if cancel_all_count(self.exchange.id, reply) == len(before):
                # One atomic cancel of every order open then, and it names as many as were
                # listed: the exchange's own confirmation. Reading them again would only find
                # orders placed since (vhc places none now), and costs the emergency a round trip.
                self._open_after_cancel = []
                return [o.id for o in before]
        else:
            for order in before:
                self.cancel_order(order.id, order.symbol)
        self._open_after_cancel = self.fetch_open_orders()
        still_open = {o.id for o in self._open_after_cancel}
        return [o.id for o in before if o.id not in still_open]

    def open_orders_after_cancel(self) -> list[Order] | None:
        """The open orders right after the last `cancel_all_orders`, as read then or as its
        reply's count confirmed ([]): the kill switch's confirmation without another round
        trip; None when there is none."""
        return self._open_after_cancel

    def withdraw(
        self,
        asset: str,
        amount: Decimal,
        address: str,
        tag: str | None = None,
        network: str | None = None,
        label: str | None = None,
    ) -> Transfer:
        """Send a withdrawal once; never retried."""
        self._fresh_markets()
        if self._markets_cached and asset.upper() not in (self.exchange.currencies or {}):
            self.reload_markets()  # a currency listed since the cache was written
        params: dict[str, Any] = {}
        if tag:
            params["tag"] = tag
        if network:
            params["network"] = network
        label_param = _WITHDRAW_LABEL_PARAM.get(self.exchange.id)
        if label_param:
            if not label:
                raise InputError(
                    f"{self.name}: {self.exchange.id} withdraws to a withdrawal key named on "
                    "the exchange: give the allowlist entry a label (--label) with that name"
                )
            params[label_param] = label
        f_amount = _float(amount, "amount")
        ctx = CallContext(self.name, "withdraw", symbol=asset, amount=amount)
        raw = call_withdraw(lambda: self.exchange.withdraw(asset, f_amount, address, params), ctx)
        filled = {
            "currency": asset,
            "amount": amount,
            "address": address,
            "tag": tag,
            "network": network,
            "status": "pending",
            "timestamp": datetime_to_ms(datetime.now(UTC)),
        }
        return to_transfer(
            {**filled, **{k: v for k, v in raw.items() if v is not None}}, "withdrawal"
        )

    def close(self) -> None:
        """Release the HTTP session."""
        session = getattr(self.exchange, "session", None)
        if session is not None:
            session.close()
