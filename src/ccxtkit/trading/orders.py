"""Placing an order: checks first, intent on the record, sent once, outcome on the record.

The sequence that keeps an order from being lost or doubled:
1. read the exchange (markets, ticker, balances) with the ledger closed;
2. open the ledger: resolve earlier orders left pending, run the risk limits, write the intent
   (an `orders` row with our client order id), close. When the ledger names orders still
   pending, or held assets the ticker does not price, the exchange is asked about them first,
   between two visits: the ledger is never held while waiting on an exchange;
3. check the kill switch once more, then send with that client order id;
4. on a lost reply, look the order up by client order id among open AND closed orders, and
   send again only when the exchange confirms it has no such order;
5. open the ledger and record the outcome and the fills.

The kill switch's flatten sells take the same path (`send_emergency`): the intent is journalled
first (`trading.emergency`), the send is not blocked by the switch, and every ledger write
waits at most half a second; what the ledger was too busy to take, the next writer resolves.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from .. import crashpoints
from ..errors import (
    ExchangeError,
    InputError,
    KillSwitchActiveError,
    LedgerBusyError,
    OrderLookupUnproven,
    OrderOutcomeUnknown,
    RiskLimitError,
    VhcError,
)
from ..exchanges.base import Balance, ExchangeClient, Market, Order, Ticker, Trade
from ..exchanges.kite_symbols import is_kite_symbol
from ..ledger.chain import now_utc
from ..ledger.store import Ledger
from ..logs import log
from ..money import is_usd_like, to_decimal
from ..risk import figures, killswitch
from ..risk.limits import CheckResult, OrderProposal, check_order, order_value_usd
from ..risk.triggers import Trigger
from ..workspace import Workspace
from . import emergency, inflight, recording
from .accounts import connect, is_live_account, unproven_lookup_warning
from .balances import record_snapshot
from .pricing import needs_tickers, recorded_usd_rates, usd_prices
from .recover import Resolution, look_up
from .recover import record as record_resolutions


@dataclass(frozen=True)
class OrderRequest:
    """What the user asked for."""

    exchange: str
    symbol: str
    side: str
    amount: Decimal
    type: str = "market"
    price: Decimal | None = None
    strategy: str | None = None
    client_order_id: str | None = None
    dry_run: bool = False
    source: str = "trade"  # "kill_switch" for the sweep's flatten orders
    product: str | None = None  # Kite only: MIS | CNC | NRML
    variety: str | None = None  # Kite only: regular | amo

    def validate(self) -> None:
        """Refuse malformed requests before anything touches an exchange or the ledger."""
        if self.side not in ("buy", "sell"):
            raise InputError(f"side must be buy or sell, got {self.side!r}")
        if self.type not in ("market", "limit"):
            raise InputError(f"--type must be market or limit, got {self.type!r}")
        if "/" not in self.symbol and not is_kite_symbol(self.symbol):
            raise InputError(f"symbol {self.symbol!r} must look like BTC/USD (Kite: NSE:INFY)")
        if self.amount <= 0:
            raise InputError(f"amount must be greater than 0, got {self.amount}")
        if self.type == "limit" and (self.price is None or self.price <= 0):
            raise InputError("a limit order needs --price greater than 0")
        if self.type == "market" and self.price is not None:
            raise InputError("--price is only for limit orders (add --type limit)")
        if self.product is not None and self.product not in ("MIS", "CNC", "NRML"):
            raise InputError(f"--product must be MIS, CNC or NRML, got {self.product!r}")
        if self.variety is not None and self.variety not in ("regular", "amo"):
            raise InputError(f"--variety must be regular or amo, got {self.variety!r}")


@dataclass(frozen=True)
class PlaceResult:
    """What happened: the checks, and the order as the exchange reports it (unless dry run)."""

    exchange: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    amount: Decimal
    price: Decimal
    value_usd: Decimal | None
    live: bool
    dry_run: bool
    checks: list[CheckResult]
    order: Order | None = None
    fills: int = 0
    resolved_pending: list[str] = field(default_factory=list)
    tripped: list[str] = field(default_factory=list)  # kill-switch triggers this order fired
    warnings: list[str] = field(default_factory=list)  # e.g. an unproven order lookup


def place_order(ws: Workspace, request: OrderRequest) -> PlaceResult:
    """Check, record, send once and record the outcome of one order."""
    request.validate()
    account = ws.config.exchange(request.exchange)
    if not account.enabled:
        raise InputError(f"exchange account {request.exchange!r} is disabled in the config")
    if (request.product or request.variety) and (account.id or request.exchange) != "kite":
        raise InputError("--product and --variety are for Kite accounts (`id: kite`) only")
    warning = unproven_lookup_warning(request.exchange, account)
    if warning:
        log.warning("%s", warning)  # on every trade, not once
    # Early and cheap; a missing state file is decided against the ledger in the intent visit.
    killswitch.ensure_trading_allowed(ws, missing_ok=True)
    client = connect(ws, request.exchange)
    try:
        result = _place(ws, client, request, is_live_account(request.exchange, account))
    finally:
        client.close()
    return replace(result, warnings=[warning]) if warning else result


@dataclass(frozen=True)
class _Seen:
    """What the exchange said before the ledger is opened."""

    market: Market
    markets: dict[str, Market]
    ticker: Ticker
    balances: dict[str, Balance]
    balances_at: datetime


@dataclass(frozen=True)
class _Known:
    """What the ledger said that the exchange may have to be asked about."""

    held: set[str]
    pending: list[dict[str, Any]]
    recorded: dict[str, Decimal]  # USD rates from `prices fetch` (a non-USD quote)


@dataclass(frozen=True)
class _Prepared:
    """Everything read before the checks."""

    symbol: str
    proposal: OrderProposal
    balances: dict[str, Balance]
    balances_at: datetime
    prices: dict[str, Decimal]
    resolutions: list[Resolution]


def _read_exchange(client: ExchangeClient, request: OrderRequest) -> _Seen:
    """The market, its ticker and the balances (and the broker's own rules), ledger closed."""
    market = client.market(request.symbol)  # a symbol listed since the cache was written too
    markets = client.load_markets()
    if market is None:
        raise InputError(
            f"{request.exchange} has no market {request.symbol!r} "
            f"(e.g. {', '.join(sorted(markets)[:5])})"
        )
    ticker = client.fetch_ticker(market.symbol)
    check = getattr(client, "check_order", None)
    if check is not None:  # the broker's own rules (Kite: ticks, lots, market hours), unrecorded
        check(
            market.symbol, request.side, request.type, request.amount, request.price,
            product=request.product, variety=request.variety,
            client_order_id=request.client_order_id,
        )  # fmt: skip
    balances_at = now_utc()
    return _Seen(market, markets, ticker, client.fetch_balance(), balances_at)


def _read_ledger(ws: Workspace, ledger: Ledger, request: OrderRequest, market: Market) -> _Known:
    """Earlier orders still pending, the assets ever held, a non-USD quote's recorded rate."""
    emergency.adopt(ws, ledger)  # the kill switch's orders the ledger was too busy for
    return _Known(
        held={r[0] for r in ledger.query(_HELD_ASSETS_SQL)},
        pending=recording.pending_orders(ledger, request.exchange),
        recorded={} if is_usd_like(market.quote) else recorded_usd_rates(ledger, [market.quote]),
    )


def _asks_exchange(client: ExchangeClient, seen: _Seen, known: _Known) -> bool:
    """Whether preparing the order asks the exchange more: pending orders to look up, held
    assets to price that the ticker read does not, a broker's instrument quotes (Kite)."""
    if known.pending or getattr(client, "instrument_prices", None) is not None:
        return True
    return needs_tickers(seen.markets, _priced(seen, known), [seen.ticker])


def _priced(seen: _Seen, known: _Known) -> set[str]:
    """The assets an order's limits value in USD: held ever, held now, and the pair's two."""
    return {*known.held, *seen.balances, seen.market.base, seen.market.quote}


def _prepare(
    ws: Workspace,
    client: ExchangeClient,
    request: OrderRequest,
    seen: _Seen,
    known: _Known,
    resolutions: list[Resolution],
) -> _Prepared:
    """The USD prices and the proposal the limits check (tickers asked for only as needed)."""
    market, ticker, balances = seen.market, seen.ticker, seen.balances
    prices = usd_prices(client, seen.markets, _priced(seen, known), [ticker])
    configured = getattr(client, "configured_usd_rates", None)  # Kite: kite.inr_per_usd
    for currency, rate in [*known.recorded.items(), *(configured() if configured else {}).items()]:
        prices.setdefault(currency, rate)  # e.g. INR: no INR/USD market, the recorded rate
    if not is_usd_like(market.base) and market.quote in prices:
        prices.setdefault(market.base, ticker.last * prices[market.quote])
    instruments = getattr(client, "instrument_prices", None)  # Kite: shares held or on order
    if instruments is not None and market.quote in prices:
        wanted = {*known.held, *balances, *(p["symbol"] for p in known.pending)}
        for asset, last in instruments(wanted).items():
            prices.setdefault(asset, last * prices[market.quote])
    proposal = OrderProposal(
        exchange=request.exchange,
        symbol=market.symbol,
        base=market.base,
        quote=market.quote,
        side=request.side,
        type=request.type,
        amount=request.amount,
        price=request.price if request.type == "limit" and request.price else ticker.last,
        quote_usd=Decimal(1) if is_usd_like(market.quote) else prices.get(market.quote),
        fee_rate=_fee_rate(ws, request.exchange),
        bid=ticker.bid,
        ask=ticker.ask,
        base_usd=prices.get(market.base),
    )
    return _Prepared(market.symbol, proposal, balances, seen.balances_at, prices, resolutions)


def _place(ws: Workspace, client: ExchangeClient, request: OrderRequest, live: bool) -> PlaceResult:
    seen = _read_exchange(client, request)
    # A bare UUID: the one long form every exchange we use accepts (Kraken: UUID or 18 chars).
    client_order_id = request.client_order_id or _new_client_id(client)
    with ExitStack() as sending:
        if not request.dry_run:
            # Held until the outcome is recorded: recovery elsewhere leaves this intent alone.
            sending.enter_context(inflight.claim(ws, client_order_id))
        result, prices = _check_and_record_intent(ws, client, request, seen, client_order_id, live)
        if request.dry_run:
            return result
        crashpoints.reach("order.intent_recorded")
        # A rejection may complete a circuit-breaker run; a fill may cross the loss limit.
        triggers = _Triggers(ws, prices)
        try:
            order, fills = _send(
                ws, client, request, result.symbol, client_order_id, now_utc(), triggers.read
            )
        finally:
            tripped = triggers.trip()
        return replace(result, order=order, fills=fills, tripped=tripped)
    raise AssertionError("unreachable")


class _Triggers:
    """The kill switch's automatic triggers after an order, read in its outcome's visit."""

    def __init__(self, ws: Workspace, prices: dict[str, Decimal]) -> None:
        self._ws = ws
        self._prices = prices
        self._fired: list[Trigger] | None = None  # None: not read (yet) in a visit

    def read(self, ledger: Ledger) -> None:
        """Called inside the visit that recorded the outcome, after its transaction."""
        from ..risk import autocheck, cost_basis, high_water, open_orders

        try:
            # A writer's visit keeps the checkpoints recent, for the triggers and --check.
            for figure in (cost_basis, high_water, open_orders):
                figure.record_checkpoint_if_due(ledger)
            self._fired = autocheck.fired_in(self._ws, ledger, self._prices)
        except VhcError as exc:
            log.warning("kill-switch triggers not evaluated after an order: %s", exc.message)
            self._fired = []

    def trip(self) -> list[str]:
        """Activate the switch for what fired; failures to evaluate are logged, not raised."""
        from ..risk import autocheck

        try:
            if self._fired is None:  # no outcome visit, or a price the tickers must give
                return [t.reason for t in autocheck.check(self._ws, prices_usd=self._prices).fired]
            if self._fired:
                autocheck.trip(self._ws, self._fired)
        except VhcError as exc:
            log.warning("kill-switch triggers not evaluated after an order: %s", exc.message)
            return []
        return [t.reason for t in self._fired]


def _check_and_record_intent(
    ws: Workspace,
    client: ExchangeClient,
    request: OrderRequest,
    seen: _Seen,
    client_order_id: str,
    live: bool,
) -> tuple[PlaceResult, dict[str, Decimal]]:
    """Earlier orders' outcomes, a balance snapshot, the limits, the intent: one ledger visit
    when the exchange need not be asked anything more, else the asking between two visits
    (the ledger is never held while waiting on an exchange). Also returns the USD prices."""
    with ws.open_ledger() as ledger:
        known = _read_ledger(ws, ledger, request, seen.market)
        prepared = None
        if not _asks_exchange(client, seen, known):
            prepared = _prepare(ws, client, request, seen, known, [])
            checks, resolved = _intent(ws, ledger, request, prepared, client_order_id, live)
    if prepared is None:
        resolutions = look_up(ws, client, request.exchange, known.pending)
        prepared = _prepare(ws, client, request, seen, known, resolutions)
        with ws.open_ledger() as ledger:
            checks, resolved = _intent(ws, ledger, request, prepared, client_order_id, live)
    p = prepared
    refused = [c for c in checks if not c.ok]
    if refused:
        # Every refused limit, not only the first: a dry run is how people size an order.
        message = "; ".join(c.message for c in refused)
        log.warning("order refused on %s: %s", request.exchange, message)
        error = RiskLimitError(message)
        error.details = {"checks": checks}
        raise error
    if not request.dry_run:
        log.info(
            "order intent %s on %s: %s %s %s %s",
            client_order_id, request.exchange, request.side, request.amount, p.symbol, request.type,
        )  # fmt: skip
    result = PlaceResult(
        exchange=request.exchange,
        client_order_id=client_order_id,
        symbol=p.symbol,
        side=request.side,
        type=request.type,
        amount=request.amount,
        price=p.proposal.price,
        value_usd=order_value_usd(p.proposal),
        live=live,
        dry_run=request.dry_run,
        checks=checks,
        resolved_pending=resolved,
    )
    return result, p.prices


def _intent(
    ws: Workspace,
    ledger: Ledger,
    request: OrderRequest,
    p: _Prepared,
    client_order_id: str,
    live: bool,
) -> tuple[list[CheckResult], list[str]]:
    """Inside a visit: the pending outcomes, a snapshot, the limits, then the intent (or the
    refusal) on the record. Returns the checks and the client ids resolved."""
    free = {asset: b.free for asset, b in p.balances.items()}
    held_prices = {a: price for a, price in p.prices.items() if a in p.balances}
    now = now_utc()
    # The state file against the ledger's record, under the lock this visit holds.
    killswitch.check_recorded(ws, ledger)
    resolved = [r.client_order_id for r in record_resolutions(ledger, p.resolutions)]
    # A fresh whole snapshot keeps the exposure query from summing the entire history.
    record_snapshot(ledger, request.exchange, p.balances, held_prices, p.balances_at, "trade")
    exposure = figures.compute(ledger, now, ws.config.timezone, p.prices, free, with_pnl=False)
    checks = check_order(p.proposal, exposure.exposure, ws.config.risk)
    refusal = next((c for c in checks if not c.ok), None)
    if refusal is not None:
        ledger.record_event(
            "order.refused",
            {
                "limit": refusal.name,
                "message": refusal.message,
                "symbol": p.symbol,
                "side": request.side,
                "amount": str(request.amount),
                "dry_run": request.dry_run,
            },
            subject=request.exchange,
        )
    elif not request.dry_run:
        _check_client_id_unused(ledger, request.exchange, client_order_id)
        ledger.append("orders", [_intent_row(request, p.symbol, client_order_id, live, now)])
    return checks, resolved


def send_emergency(
    ws: Workspace, client: ExchangeClient, request: OrderRequest, symbol: str, live: bool
) -> tuple[str, Order | None, int]:
    """The kill switch's order: journalled intent, sent once, outcome and fills recorded.

    Never blocked by the switch and never waiting on the ledger lock (see the module
    docstring); returns the client order id, the order (None only if it raised) and the
    number of fills recorded now.
    """
    client_order_id = _new_client_id(client)
    now = now_utc()
    # Claimed before the intent exists anywhere: no recovery elsewhere declares it not found.
    with inflight.claim(ws, client_order_id):
        emergency.journal(ws, _intent_row(request, symbol, client_order_id, live, now))
        try:
            with emergency.open_briefly(ws):
                pass  # the journal's intents (this one too) are now `orders` rows
        except LedgerBusyError:
            log.warning("order intent %s: ledger busy, left in the journal", client_order_id)
        order, fills = _send(ws, client, request, symbol, client_order_id, now, emergency=True)
    return client_order_id, order, fills


def _send(
    ws: Workspace,
    client: ExchangeClient,
    request: OrderRequest,
    symbol: str,
    client_order_id: str,
    placed_at: datetime,
    after: Callable[[Ledger], None] | None = None,
    emergency: bool = False,
) -> tuple[Order | None, int]:
    """Send once; on a lost reply, look it up and resend only after the exchange confirms absence.

    `after` runs in the ledger visit that records the outcome, once it is committed.
    """
    for attempt in (1, 2):
        try:
            # The switch may have been thrown while we were checking limits: the guard checks
            # it again and makes an activation wait for this send, then sweep it. The kill
            # switch's own orders are the sweep: they pass.
            with nullcontext() if emergency else killswitch.order_send_guard(ws):
                order = client.create_order(
                    symbol,
                    request.side,
                    request.type,
                    request.amount,
                    request.price,
                    client_order_id,
                    **_broker_options(request),
                )
        except KillSwitchActiveError as exc:
            _record_outcome(
                ws,
                request.exchange,
                client_order_id,
                "failed",
                {"error": exc.message},
                after,
                emergency,
            )
            raise
        except InputError as exc:
            # Refused by the client before anything left (e.g. a float cannot carry the
            # amount): final, or the intent would stay pending and hold risk headroom forever.
            _record_outcome(
                ws,
                request.exchange,
                client_order_id,
                "rejected",
                {"error": exc.message, "sent": False},
                after,
                emergency,
            )
            raise
        except OrderOutcomeUnknown as lost:
            log.warning("order %s: reply lost (%s); looking it up", client_order_id, lost.message)
            try:
                found = client.find_order_by_client_id(client_order_id, symbol)
            except ExchangeError as exc:
                _record_outcome(
                    ws,
                    request.exchange,
                    client_order_id,
                    "unknown",
                    {"error": lost.message, "lookup_error": exc.message},
                    after,
                    emergency,
                )
                if isinstance(exc, OrderLookupUnproven):
                    raise OrderLookupUnproven(
                        f"order {client_order_id} on {request.exchange}: the reply was lost; "
                        f"it was NOT resent. {exc.message}"
                    ) from None
                raise OrderOutcomeUnknown(
                    f"order {client_order_id} on {request.exchange}: the reply was lost and the "
                    "exchange cannot be asked now; it was NOT resent. Run `vhc trade recover` "
                    "when the exchange is reachable"
                ) from None
            if found is None:
                _record_outcome(
                    ws,
                    request.exchange,
                    client_order_id,
                    "unknown",
                    {"error": lost.message, "lookup": "absent", "attempt": attempt},
                    after if attempt == 2 else None,
                    emergency,
                )
                if attempt == 1:
                    continue  # the exchange confirmed it has no such order: safe to send once more
                raise OrderOutcomeUnknown(
                    f"order {client_order_id} on {request.exchange}: two replies lost; the "
                    "exchange has no such order. Run `vhc trade recover`, then retry"
                ) from None
            order = found
        except ExchangeError as exc:
            _record_outcome(
                ws,
                request.exchange,
                client_order_id,
                "rejected",
                {"error": exc.message},
                after,
                emergency,
            )
            raise
        crashpoints.reach("order.sent")
        return order, _record_result(
            ws, client, request, client_order_id, order, placed_at, after, emergency
        )
    raise AssertionError("unreachable")


def _record_result(
    ws: Workspace,
    client: ExchangeClient,
    request: OrderRequest,
    client_order_id: str,
    order: Order,
    placed_at: datetime,
    after: Callable[[Ledger], None] | None = None,
    emergency: bool = False,
) -> int:
    fills: list[Trade] = []
    try:
        fills = recording.fills_of(client, order, placed_at)
    except ExchangeError as exc:
        # The fills are on the exchange: reconciliation or `trade recover` will add them.
        log.warning("order %s filled but its trades could not be read: %s", order.id, exc.message)
    try:
        with _ledger(ws, emergency) as ledger:
            with ledger.transaction():
                details = dict(_broker_options(request))  # Kite: product and variety, recorded
                recording.record_order_state(
                    ledger, request.exchange, client_order_id, order, details
                )
                crashpoints.reach("order.outcome_recorded")  # one transaction: fills too, or none
                added = recording.record_fills(
                    ledger,
                    request.exchange,
                    fills,
                    request.source,
                    client_order_id,
                    request.strategy,
                )
            if after is not None:
                after(ledger)
    except LedgerBusyError:
        if not emergency:
            raise
        log.warning("order %s: ledger busy, its outcome is left to `trade recover`", order.id)
        return 0
    log.info(
        "order %s on %s: %s, filled %s of %s, %d fill(s) recorded",
        client_order_id, request.exchange, order.status, order.filled, order.amount, added,
    )  # fmt: skip
    return added


def _record_outcome(
    ws: Workspace,
    exchange: str,
    client_order_id: str,
    event: str,
    details: dict[str, object],
    after: Callable[[Ledger], None] | None = None,
    emergency: bool = False,
) -> None:
    try:
        with _ledger(ws, emergency) as ledger:
            recording.record_event(ledger, exchange, client_order_id, event, details)
            if after is not None:
                after(ledger)
    except LedgerBusyError:
        if not emergency:
            raise
        log.warning("order %s: ledger busy, %s left to `trade recover`", client_order_id, event)


@contextmanager
def _ledger(ws: Workspace, urgent: bool) -> Iterator[Ledger]:
    """The ledger as the config says, or for the kill switch within half a second."""
    with emergency.open_briefly(ws) if urgent else ws.open_ledger() as ledger:
        yield ledger


def _new_client_id(client: ExchangeClient) -> str:
    """The client's own form of id where it has one (Kite: a 20-char tag), else a UUID."""
    make = getattr(client, "new_client_order_id", None)
    return str(make()) if make is not None else str(uuid.uuid4())


def _broker_options(request: OrderRequest) -> dict[str, str]:
    """Kite's product and variety, passed only when set (ccxt clients take neither)."""
    options = {"product": request.product, "variety": request.variety}
    return {k: v for k, v in options.items() if v is not None}


def _check_client_id_unused(ledger: Ledger, exchange: str, client_order_id: str) -> None:
    used = ledger.query(
        "SELECT 1 FROM orders WHERE exchange = ? AND client_order_id = ? LIMIT 1",
        [exchange, client_order_id],
    )
    if used:
        raise InputError(
            f"client order id {client_order_id!r} was already used on {exchange}; "
            "each order needs a new one (omit --client-id to get one)"
        )


def _intent_row(
    request: OrderRequest, symbol: str, client_order_id: str, live: bool, now: datetime
) -> dict[str, object]:
    return {
        "timestamp": now,
        "client_order_id": client_order_id,
        "exchange": request.exchange,
        "symbol": symbol,
        "side": request.side,
        "type": request.type,
        "amount": request.amount,
        "price": request.price,
        "strategy": request.strategy,
        "source": request.source,
        "live": live,
    }


def _fee_rate(ws: Workspace, exchange: str) -> Decimal:
    account = ws.config.exchange(exchange)
    if (account.id or exchange) == "paper":
        return account.paper.fee_rate
    return to_decimal("0.0026")  # a typical taker fee: used only to reserve balance


#: Assets held on any account, for valuation. Snapshots and transfers are small tables: the
#: trades table is not scanned on the trade path.
_HELD_ASSETS_SQL = "SELECT asset FROM balance_snapshots UNION SELECT asset FROM transfers"
