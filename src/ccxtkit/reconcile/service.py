"""`vhc reconcile`'s one core function: read every account at once, then match, sync, report.

Order of work, so the ledger is never held while waiting on the network:
1. a short ledger read (which assets each account's history touches, which accounts have an
   opening balance yet), then the ledger is closed;
2. every account is read concurrently, one thread each (balances, trades, deposits,
   withdrawals, the exchange's own ledger where it has one, USD prices; a Kite account's
   rupees and shares at the USD/INR rate its orders are valued at); an account that cannot be
   read is reported and the others go on;
3. one ledger session: read the ledger's side, match, append what --auto-sync records, a
   balance snapshot and the `reconcile.completed` event; close;
4. write the CSV reports and send alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ccxtkit.errors import ConfigError, ExchangeError, SecretsError
from ccxtkit.exchanges.base import Balance, ExchangeClient, LedgerEntry, Trade, Transfer
from ccxtkit.exchanges.fees import apply_ledger_fees
from ccxtkit.ledger.instance import all_cores
from ccxtkit.ledger.store import Ledger
from ccxtkit.logs import log
from ccxtkit.trading.balances import record_snapshot
from ccxtkit.workspace import Workspace

from . import adopt, matching
from .balances import Inventory, inventory, ledger_balances
from .dates import Period
from .matching import BalanceCheck, Finding, LedgerTrade, LedgerTransfer, Tolerance

ZERO = Decimal(0)
#: Ledger rows this far outside the range still satisfy an exchange movement (clock skew).
MARGIN = timedelta(days=1)
TOLERANCE = Tolerance()

Progress = Callable[[str, str], None]  # (account, what was fetched) after each page or call


@dataclass
class AccountRead:
    """What one account's exchange reported."""

    name: str
    since: datetime
    until: datetime
    adopting: bool = False
    balances: dict[str, Decimal] = field(default_factory=dict)
    held: dict[str, Balance] = field(default_factory=dict)  # the same, as the exchange gave it
    trades: list[Trade] = field(default_factory=list)
    transfers: list[Transfer] = field(default_factory=list)
    entries: list[LedgerEntry] | None = None
    prices: dict[str, Decimal] = field(default_factory=dict)
    #: USD values of what the exchange quotes no USD market for (Kite: rupees at the USD/INR
    #: rate, shares through it): they value findings and balances; they are not recorded as
    #: prices (a rate re-recorded at every run would never grow old).
    rates: dict[str, Decimal] = field(default_factory=dict)
    error: str | None = None

    @property
    def valuation(self) -> dict[str, Decimal]:
        """The USD price of every asset that has one: the exchange's own first."""
        return {**self.rates, **self.prices}


@dataclass
class AccountResult:
    """One account's assertions and findings."""

    name: str
    checks: list[BalanceCheck] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    adopted: dict[str, Decimal] = field(default_factory=dict)
    discrepancy_usd: Decimal = ZERO

    @property
    def attention(self) -> list[Finding]:
        """Findings a person must look at (an unknown withdrawal stays one even once synced)."""
        return [
            f
            for f in self.findings
            if f.action == "reported" or (f.kind == "unknown_withdrawal" and f.action == "synced")
        ]

    @property
    def clean(self) -> bool:
        """Read, every balance agrees, nothing needs a person."""
        return self.error is None and all(c.ok for c in self.checks) and not self.attention


@dataclass
class ReconcileResult:
    """Everything `vhc reconcile` shows, writes and exits with."""

    period: Period
    auto_sync: bool
    accounts: dict[str, AccountResult]
    threshold: Decimal
    report_path: Path | None = None
    findings_path: Path | None = None
    alerts: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """5 an account could not be read; 1 findings need a person; 0 clean."""
        if any(a.error for a in self.accounts.values()):
            return 5
        return 0 if all(a.clean for a in self.accounts.values()) else 1


def read_account(
    ws: Workspace, name: str, since: datetime, until: datetime, assets: set[str],
    adopting: bool, progress: Progress | None, recorded: Mapping[str, Decimal] | None = None,
) -> AccountRead:  # fmt: skip
    """Everything reconcile needs from one exchange; an unreadable account carries `error`.

    `recorded`: USD per unit of currencies, from the ledger (`recorded_usd_rates`).
    """
    from ccxtkit.trading.accounts import connect
    from ccxtkit.trading.pricing import usd_prices

    read = AccountRead(name, since, until, adopting)

    def step(what: str) -> None:
        if progress is not None:
            progress(name, what)

    try:
        client = connect(ws, name)
        paged = hasattr(client, "on_page")
        if paged:
            client.on_page = lambda method: step(method)  # type: ignore[attr-defined]
        try:
            _recover_first(ws, client, name)
            read.held = {a.upper(): b for a, b in client.fetch_balance().items()}
            read.balances = {a: b.total for a, b in read.held.items()}
            step("balance")
            read.trades = client.fetch_my_trades(since, until)
            if not paged:
                step("trades")
            read.transfers = client.fetch_deposits(since, until)
            read.transfers += client.fetch_withdrawals(since, until)
            read.entries = client.fetch_ledger(since, until)
            if not paged:
                step("transfers")
            read.trades = apply_ledger_fees(read.trades, read.entries)
            wanted = set(assets) | set(read.balances)
            wanted |= {t.symbol.partition("/")[0].upper() for t in read.trades}
            wanted |= {t.asset.upper() for t in read.transfers}
            read.prices = usd_prices(client, client.load_markets(), wanted)
            read.rates = _rates(client, name, read.prices, recorded or {}, wanted)
            step("prices")
        finally:
            client.close()
    except (ExchangeError, SecretsError, ConfigError) as exc:  # this account only
        read.error = exc.message
        log.warning("reconcile: %s could not be read: %s", name, exc.message)
    return read


def _rates(
    client: ExchangeClient, name: str, prices: Mapping[str, Decimal],
    recorded: Mapping[str, Decimal], assets: Iterable[str],
) -> dict[str, Decimal]:  # fmt: skip
    """USD values for an account whose currency has no USD market (Kite), as its orders are
    valued: the ledger's recorded rate, else the configured `kite.inr_per_usd`; its shares at
    their last price times that rate. Empty for an exchange that quotes USD itself."""
    from ccxtkit.exchanges.kite_symbols import QUOTE

    configured = getattr(client, "configured_usd_rates", None)
    if configured is None:
        return {}
    rates = {c: r for c, r in {**configured(), **recorded}.items() if c not in prices}
    instruments = getattr(client, "instrument_prices", None)
    rate = rates.get(QUOTE)
    if instruments is not None and rate is not None:
        try:
            for asset, last in instruments(assets).items():
                rates.setdefault(asset.upper(), last * rate)
        except ExchangeError as exc:
            log.warning("reconcile: %s: no prices for its shares: %s", name, exc.message)
    return rates


def _recover_first(ws: Workspace, client: ExchangeClient, name: str) -> None:
    """Settle the account's unknown orders first, as `vhc trade recover` does.

    The kill switch's orders that a busy ledger left in the journal, and any order whose
    reply was lost, get their outcome and fills recorded before matching: else they would
    show up as missing trades. A lookup that fails is logged; the matching then reports it.
    """
    from ccxtkit.trading.recover import recover_account

    try:
        settled = recover_account(ws, client, name)
    except ExchangeError as exc:
        log.warning("reconcile: %s: unknown orders not settled first: %s", name, exc.message)
        return
    for r in settled:
        log.info("reconcile: %s order %s settled first: %s", name, r.client_order_id, r.outcome)


#: Exchange trades and the ledger's, joined by id in DuckDB; only rows where something differs
#: exactly (or one side is absent) come back. Exact equality implies agreement under any
#: tolerance, so this only prunes: the pure rules in `matching` judge what is returned.
_TRADE_CANDIDATES_SQL = """
WITH l AS (
    SELECT trade_id, timestamp, symbol, side, amount, price, cost, fee, fee_currency,
           upper(coalesce(fee_currency, quote)) AS fee_cur
    FROM trades WHERE exchange = ? AND timestamp >= ? AND timestamp < ?
), x AS (
    SELECT id, symbol, side, CAST(amount AS DECIMAL(38,18)) AS amount,
           CAST(price AS DECIMAL(38,18)) AS price, CAST(fee AS DECIMAL(38,18)) AS fee, fee_cur
    FROM _vhc_exchange_trades
)
SELECT x.id, l.trade_id, l.timestamp, l.symbol, l.side, l.amount, l.price, l.cost, l.fee,
       l.fee_currency
FROM x FULL OUTER JOIN l ON l.trade_id = x.id
WHERE x.id IS NULL OR l.trade_id IS NULL OR upper(l.symbol) <> upper(x.symbol)
   OR l.side <> x.side OR l.amount <> x.amount OR l.price <> x.price OR l.fee <> x.fee
   OR l.fee_cur <> x.fee_cur
"""


def _trade_candidates(
    ledger: Ledger, name: str, since: datetime, until: datetime, on_exchange: Sequence[Trade]
) -> tuple[list[Trade], list[LedgerTrade]]:
    """The exchange trades and ledger trades that may not agree (see _TRADE_CANDIDATES_SQL).

    Converting 100,000 DECIMAL rows to Python costs seconds; comparing them in DuckDB costs
    milliseconds, so only the few rows that differ ever become Decimals.
    """
    import pyarrow as pa

    def quote(symbol: str) -> str:
        return symbol.partition("/")[2].split(":")[0]

    table = pa.table(
        {
            "id": pa.array([t.id for t in on_exchange], pa.string()),
            "symbol": pa.array([t.symbol for t in on_exchange], pa.string()),
            "side": pa.array([t.side for t in on_exchange], pa.string()),
            "amount": pa.array([str(t.amount) for t in on_exchange], pa.string()),
            "price": pa.array([str(t.price) for t in on_exchange], pa.string()),
            "fee": pa.array([str(t.fee) for t in on_exchange], pa.string()),
            "fee_cur": pa.array(
                [(t.fee_currency or quote(t.symbol)).upper() for t in on_exchange], pa.string()
            ),
        }
    )
    ledger.con.register("_vhc_exchange_trades", table)
    try:
        with all_cores(ledger.con):  # a join over the period's trades, up to a million
            rows = ledger.query(
                _TRADE_CANDIDATES_SQL, [name, _naive(since - MARGIN), _naive(until + MARGIN)]
            )
    finally:
        ledger.con.unregister("_vhc_exchange_trades")
    wanted = {r[0] for r in rows if r[0] is not None}
    mine = [
        LedgerTrade(tid, ts.replace(tzinfo=UTC), sym, side, amt, px, cost, fee, cur)
        for _, tid, ts, sym, side, amt, px, cost, fee, cur in rows
        if tid is not None
    ]
    return [t for t in on_exchange if t.id in wanted], mine


def _ledger_transfers(
    ledger: Ledger, name: str, since: datetime, until: datetime
) -> list[LedgerTransfer]:
    rows = ledger.query(
        "SELECT transfer_id, lower(kind), asset, amount, fee, fee_currency, txid, status, "
        "timestamp FROM transfers WHERE exchange = ? AND timestamp >= ? AND timestamp < ? "
        "QUALIFY transfer_id IS NULL OR row_number() OVER "
        "(PARTITION BY kind, transfer_id ORDER BY seq DESC) = 1",
        [name, _naive(since - MARGIN), _naive(until + MARGIN)],
    )
    return [
        LedgerTransfer(tid, kind, asset, amt, fee, cur, txid, status, ts.replace(tzinfo=UTC))
        for tid, kind, asset, amt, fee, cur, txid, status, ts in rows
    ]


def _naive(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None)


def _value(f: Finding, prices: dict[str, Decimal]) -> Decimal | None:
    """A finding's size in USD: a trade by its base amount, a transfer by its amount."""
    if f.amount is None:
        return None
    asset = f.subject.partition("/")[0] if "/" in f.subject else f.subject
    value = matching.usd_value(asset, abs(f.amount), prices)
    if value is None and f.trade is not None:
        value = matching.usd_value(f.subject.partition("/")[2], abs(f.trade.cost), prices)
    return value


def assess(
    read: AccountRead,
    exchange_trades: Sequence[Trade],
    ledger_trades: Sequence[LedgerTrade],
    ledger_transfers: Sequence[LedgerTransfer],
    tol: Tolerance = TOLERANCE,
) -> AccountResult:
    """Match one account's movements (pure: no I/O); trades may be pre-pruned to candidates."""
    findings = matching.match_trades(
        read.name, exchange_trades, ledger_trades, read.since, read.until, tol
    )
    findings += matching.match_transfers(
        read.name, read.transfers, ledger_transfers, read.since, read.until, tol
    )
    known = {t.id for t in read.trades} | {t.id for t in read.transfers}
    findings += matching.unexplained_entries(read.name, read.entries, known)
    findings = [f.with_(value_usd=_value(f, read.valuation)) for f in findings]
    return AccountResult(read.name, findings=findings)


def finish_checks(
    result: AccountResult,
    read: AccountRead,
    local: dict[str, Decimal],
    has_opening: bool,
    threshold: Decimal,
    tol: Tolerance = TOLERANCE,
) -> None:
    """Balance assertions against `local` (already including whatever was synced)."""
    open_findings = [f for f in result.findings if f.action == "reported"]
    assets = {a for (a, v) in local.items() if v} | {a for a, v in read.balances.items() if v}
    result.checks = matching.assert_balances(
        read.name,
        {a: local.get(a, ZERO) for a in assets},
        {a: read.balances.get(a, ZERO) for a in assets},
        read.valuation,
        threshold,
        open_findings,
        has_opening,
        tol,
    )
    result.discrepancy_usd = sum(
        (abs(c.difference_usd) for c in result.checks if not c.ok and c.difference_usd is not None),
        ZERO,
    )


def _account_ledger_work(
    ledger: Ledger, read: AccountRead, local: dict[str, Decimal], inv: Inventory,
    auto_sync: bool, threshold: Decimal,
) -> AccountResult:  # fmt: skip
    """Match, then (with --auto-sync) append and adopt, then assert balances."""
    xt, lt = _trade_candidates(ledger, read.name, read.since, read.until, read.trades)
    lx = _ledger_transfers(ledger, read.name, read.since, read.until)
    result = assess(read, xt, lt, lx)
    has_opening = inv.has_opening_balance
    if auto_sync:
        result.findings = adopt.sync_findings(ledger, read.name, result.findings)
        if read.adopting:
            result.findings = [
                f.with_(action="adopted") if f.action == "synced" else f for f in result.findings
            ]
        for asset, delta in adopt.synced_effect(result.findings).items():
            local[asset] = local.get(asset, ZERO) + delta
        if read.adopting:
            seen = [t.timestamp for t in read.trades] + [t.timestamp for t in read.transfers]
            earliest = adopt.earliest_movement(ledger, read.name, seen) or datetime.now(UTC)
            rows = adopt.opening_rows(read.name, local, read.balances, earliest)
            ledger.append("transfers", rows)
            for row in rows:
                result.adopted[row["asset"]] = row["amount"]
                local[row["asset"]] = local.get(row["asset"], ZERO) + row["amount"]
            has_opening = True
    finish_checks(result, read, local, has_opening, threshold)
    return result


def _recorded_rates(
    ws: Workspace, ledger: Ledger, names: Sequence[str], now: datetime
) -> dict[str, Decimal]:
    """The ledger's USD/INR rate when a Kite account is reconciled (what its orders use)."""
    from ccxtkit.exchanges.kite_session import is_kite
    from ccxtkit.exchanges.kite_symbols import QUOTE
    from ccxtkit.trading.pricing import recorded_usd_rates

    if not any(is_kite(ws, n) for n in names):
        return {}
    return recorded_usd_rates(ledger, [QUOTE], now)


def _event(result: ReconcileResult) -> dict[str, Any]:
    """The `reconcile.completed` details the metrics module reads (plus a summary)."""
    return {
        "ok": result.exit_code == 0,
        "discrepancy_usd": {
            n: format(a.discrepancy_usd, "f") for n, a in result.accounts.items() if not a.error
        },
        "period": {
            "first": result.period.first.isoformat(),
            "last": result.period.last.isoformat(),
        },
        "auto_sync": result.auto_sync,
        "findings": {n: len(a.attention) for n, a in result.accounts.items()},
        "errors": {n: a.error for n, a in result.accounts.items() if a.error},
        "synced": {
            n: sum(1 for f in a.findings if f.action in ("synced", "adopted"))
            for n, a in result.accounts.items()
        },
        "adopted": {
            n: {k: format(v, "f") for k, v in a.adopted.items()}
            for n, a in result.accounts.items()
            if a.adopted
        },  # fmt: skip
    }


def reconcile(
    ws: Workspace,
    period: Period,
    exchange: str | None = None,
    auto_sync: bool = False,
    output: Path | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ReconcileResult:
    """Reconcile every enabled account (or one) over `period`; write reports; send alerts."""
    from . import alerts, report

    now = now or datetime.now(UTC)
    cfg = ws.config
    names = [exchange] if exchange else sorted(cfg.enabled_exchanges())
    for name in names:
        cfg.exchange(name)  # a clear error for an unknown name
    threshold = cfg.reconciliation.alert_threshold
    with ws.open_ledger() as ledger:
        inv = inventory(ledger, names)
        recorded = _recorded_rates(ws, ledger, names, now)
    with ThreadPoolExecutor(max_workers=max(1, len(names)), thread_name_prefix="reconcile") as pool:
        futures = [
            pool.submit(
                read_account,
                ws,
                n,
                adopt.ADOPT_SINCE if auto_sync and not inv[n].has_opening_balance else period.since,
                period.until,
                inv[n].assets,
                auto_sync and not inv[n].has_opening_balance,
                progress,
                recorded,
            )  # fmt: skip
            for n in names
        ]
        reads = [f.result() for f in futures]
    result = ReconcileResult(period, auto_sync, {}, threshold)
    with ws.open_ledger() as ledger, ledger.transaction():
        local_all = ledger_balances(ledger, names)
        inv = inventory(ledger, names)
        for read in reads:
            if read.error is not None:
                result.accounts[read.name] = AccountResult(read.name, error=read.error)
                continue
            local = {a: v for (ex, a), v in local_all.items() if ex == read.name}
            result.accounts[read.name] = _account_ledger_work(
                ledger, read, local, inv[read.name], auto_sync, threshold
            )
        priced: set[str] = set()
        for read in reads:
            if read.error is None:
                fresh = {a: p for a, p in read.prices.items() if a not in priced}
                priced |= set(fresh)
                record_snapshot(ledger, read.name, read.held, fresh, now, "reconcile")
        ledger.record_event("reconcile.completed", _event(result), subject=period.label)
    result.report_path, result.findings_path = report.write_reports(ws, result, output)
    result.alerts = alerts.raise_alerts(ws, result)
    return result


def run(
    ws: Workspace,
    day: str | None = None,
    start: str | None = None,
    end: str | None = None,
    exchange: str | None = None,
    auto_sync: bool = False,
    output: Path | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ReconcileResult:
    """The CLI's entry: resolve the dates in the config's timezone, then `reconcile`."""
    from .dates import resolve_period

    now = now or datetime.now(UTC)
    period = resolve_period(day, start, end, now, ws.config.timezone)
    return reconcile(ws, period, exchange, auto_sync, output, progress, now)
