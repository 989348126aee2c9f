"""`vhc trade buy|sell|cancel|orders|recover` and `vhc balances`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from ..errors import ExchangeError, RiskLimitError
from ..money import fmt, to_decimal
from ..records import order_record
from .output import console, local_time, note, print_json, state, table, time_header

app = typer.Typer(help="Place, cancel, list and recover orders.", no_args_is_help=True)

ExchangeOpt = Annotated[
    str | None, typer.Option("--exchange", help="Account name (default: the only enabled one).")
]

SymbolArg = Annotated[str, typer.Argument(help="Market, e.g. BTC/USD.")]
AmountArg = Annotated[str, typer.Argument(help="Amount in the base currency.")]
TypeOpt = Annotated[str, typer.Option("--type", help="market or limit.")]
PriceOpt = Annotated[str | None, typer.Option("--price", help="Limit price.")]
StrategyOpt = Annotated[str | None, typer.Option("--strategy", help="Tag for reports.")]
ClientIdOpt = Annotated[
    str | None, typer.Option("--client-id", help="Your own unique client order id.")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Check only; send nothing.")]
YesOpt = Annotated[bool, typer.Option("--yes", help="Do not ask before a live order.")]
ProductOpt = Annotated[
    str | None, typer.Option("--product", help="Kite only: MIS, CNC or NRML (default: config).")
]
VarietyOpt = Annotated[
    str | None, typer.Option("--variety", help="Kite only: regular or amo (after market).")
]


def _default_exchange(ctx: typer.Context, exchange: str | None) -> str:
    if exchange:
        return exchange
    enabled = list(state(ctx).workspace.config.enabled_exchanges())
    if len(enabled) != 1:
        from ..errors import UsageError

        raise UsageError(
            f"several accounts are enabled ({', '.join(enabled) or 'none'}); choose one with --exchange"
        )
    return enabled[0]


def _print_checks(checks: list[Any]) -> None:
    rows = [[c.name, "ok" if c.ok else "REFUSED", c.message] for c in checks]
    console.print(table("Risk checks", ["limit", "result", "detail"], rows))


def _order(
    ctx: typer.Context,
    side: str,
    symbol: str,
    amount: str,
    exchange: str | None,
    order_type: str,
    price: str | None,
    strategy: str | None,
    client_id: str | None,
    dry_run: bool,
    yes: bool,
    product: str | None = None,
    variety: str | None = None,
) -> None:
    from ..trading.accounts import is_live_account, unproven_lookup_warning
    from ..trading.orders import OrderRequest, place_order

    ws = state(ctx).workspace
    name = _default_exchange(ctx, exchange)
    request = OrderRequest(
        exchange=name,
        symbol=symbol.upper(),
        side=side,
        amount=to_decimal(amount, "amount"),
        type=order_type,
        price=to_decimal(price, "--price") if price is not None else None,
        strategy=strategy,
        client_order_id=client_id,
        dry_run=dry_run,
        product=product.upper() if product else None,
        variety=variety.lower() if variety else None,
    )
    request.validate()
    warning = unproven_lookup_warning(name, ws.config.exchange(name))
    if warning:
        note(warning)  # before the prompt and the send, so it shows whatever happens next
    if not dry_run and not yes and is_live_account(name, ws.config.exchange(name)):
        shown = f" at {price}" if price else " at market"
        if not typer.confirm(f"LIVE order on {name}: {side} {amount} {symbol}{shown}. Send it?"):
            raise typer.Abort()
    try:
        result = place_order(ws, request)
    except RiskLimitError as exc:  # show every check, the passing ones too
        if exc.details and not state(ctx).json:
            _print_checks(exc.details["checks"])
        raise
    if state(ctx).json:
        print_json(result)
        return
    _print_checks(result.checks)
    if result.resolved_pending:
        note(f"resolved earlier pending orders: {', '.join(result.resolved_pending)}")
    if result.dry_run:
        console.print(
            f"DRY RUN: would send {side} {fmt(request.amount)} {result.symbol} "
            f"({order_type}) on {name}, client id {result.client_order_id}; nothing was sent"
        )
        return
    order = result.order
    assert order is not None
    for reason in result.tripped:
        note(f"KILL SWITCH ACTIVATED after this order: {reason}")
    avg = f" avg {fmt(order.average)}" if order.average else ""
    console.print(
        f"{order.status.upper()}: {side} {fmt(order.filled)}/{fmt(order.amount)} {order.symbol}"
        f"{avg} on {name} (order {order.id}, client id {result.client_order_id}, "
        f"{result.fills} fill(s) recorded)"
    )


@app.command("buy")
def buy(
    ctx: typer.Context,
    symbol: SymbolArg,
    amount: AmountArg,
    exchange: ExchangeOpt = None,
    order_type: TypeOpt = "market",
    price: PriceOpt = None,
    strategy: StrategyOpt = None,
    client_id: ClientIdOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    product: ProductOpt = None,
    variety: VarietyOpt = None,
) -> None:
    """Buy after every risk check passes; the order is on the record before it is sent.

    Example: vhc trade buy BTC/USD 0.01 --exchange kraken --type limit --price 60000
    """
    _order(
        ctx, "buy", symbol, amount, exchange, order_type, price, strategy, client_id, dry_run, yes,
        product, variety,
    )  # fmt: skip


@app.command("sell")
def sell(
    ctx: typer.Context,
    symbol: SymbolArg,
    amount: AmountArg,
    exchange: ExchangeOpt = None,
    order_type: TypeOpt = "market",
    price: PriceOpt = None,
    strategy: StrategyOpt = None,
    client_id: ClientIdOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    product: ProductOpt = None,
    variety: VarietyOpt = None,
) -> None:
    """Sell after every risk check passes; the order is on the record before it is sent.

    Example: vhc trade sell ETH/USD 0.5 --dry-run
    """
    _order(
        ctx, "sell", symbol, amount, exchange, order_type, price, strategy, client_id, dry_run, yes,
        product, variety,
    )  # fmt: skip


@app.command("cancel")
def cancel(
    ctx: typer.Context,
    order_id: Annotated[str, typer.Argument(help="Exchange order id or client order id.")],
    exchange: ExchangeOpt = None,
) -> None:
    """Cancel an open order and record its final state.

    Example: vhc trade cancel O6TQ3C-XDJJS-PV2ZVD --exchange kraken
    """
    from ..trading.cancel import cancel_order

    order = cancel_order(state(ctx).workspace, order_id, exchange)
    if state(ctx).json:
        print_json(order)
    else:
        console.print(f"{order.id}: {order.status} (filled {fmt(order.filled)})")


@app.command("orders")
def orders(
    ctx: typer.Context,
    exchange: ExchangeOpt = None,
    include_all: Annotated[bool, typer.Option("--all", help="Include finished orders.")] = False,
) -> None:
    """List orders from the ledger with their latest known state (open ones unless --all).

    Example: vhc trade orders --all
    """
    from ..trading.recording import order_table

    ws = state(ctx).workspace
    with ws.open_ledger() as ledger:
        rows = [order_record(r) for r in order_table(ledger, exchange, include_all)]
    if state(ctx).json:
        print_json(rows)
        return
    cols = ["exchange", "order_id", "symbol", "side", "type", "amount", "price", "status", "filled"]
    shown = [
        [local_time(ws, r["timestamp"] and datetime.fromisoformat(r["timestamp"]))]
        + [r[c] for c in cols]
        for r in rows
    ]
    console.print(table("Orders", [time_header(ws), *cols], shown))


@app.command("recover")
def recover(ctx: typer.Context, exchange: ExchangeOpt = None) -> None:
    """Resolve orders left unknown by a crash or a timeout, against the exchange.

    Example: vhc trade recover
    """
    from ..trading.recover import recover_all

    report = recover_all(state(ctx).workspace, exchange)
    if state(ctx).json:
        print_json(report)
    else:
        for r in report.resolved:
            console.print(
                f"{r.exchange} {r.client_order_id}: {r.previous or 'intent'} -> {r.outcome}"
                f" ({len(r.fills)} fill(s))"
            )
        if not report.resolved:
            console.print("nothing to recover")
    failure = report.failure()
    if failure is not None:
        raise failure


def balances(ctx: typer.Context, exchange: ExchangeOpt = None) -> None:
    """Show each account's balances (and keep a snapshot in the ledger).

    Example: vhc balances --exchange kraken
    """
    from ..trading.balances import read_balances

    report = read_balances(state(ctx).workspace, exchange)
    if state(ctx).json:
        print_json(report)
    else:
        rows = [
            [name, b.asset, fmt(b.free), fmt(b.used), fmt(b.total)]
            for name, per in report.balances.items()
            for b in sorted(per.values(), key=lambda b: b.asset)
        ]
        console.print(table("Balances", ["exchange", "asset", "free", "used", "total"], rows))
    if report.errors:
        raise ExchangeError(
            "could not read " + "; ".join(f"{n}: {m}" for n, m in report.errors.items())
        )


def register(root: typer.Typer) -> None:
    """Mount `trade` and `balances`."""
    root.add_typer(app, name="trade")
    root.command("balances")(balances)
