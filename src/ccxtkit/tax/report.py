"""The tax report: read the ledger once, replay every lot, print Form 8949 rows for one year."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccxtkit.errors import InputError, UsageError
from ccxtkit.ledger.names import TRANSFERS_LATEST
from ccxtkit.workspace import write_output, write_private

from .elections import (
    ELECTION_EVENT,
    STANDING_ORDER_RULE_FROM,
    Election,
    method_for_sale,
    methods_on_record,
    parse_elections,
    parse_method,
)
from .events import Findings, TradeRow, TransferRow, merged_events, transfer_events
from .form8949 import Row, Schedule, local_date, schedule, to_csv, to_row
from .lots import Basis, Method, match_lots
from .prices import PriceIndex, epoch_us

if TYPE_CHECKING:
    from ccxtkit.workspace import Workspace

_BATCH = 65_536
_MAX_LISTED = 20


@dataclass
class TaxReport:
    """What `vhc tax-report` shows and writes."""

    year: int
    method: str
    basis: str
    what_if: bool
    rows: list[Row]
    schedule: Schedule
    warnings: list[str] = field(default_factory=list)
    output: Path | None = None

    @property
    def unknown_basis_rows(self) -> int:
        return sum(1 for r in self.rows if r.unknown_basis)


@dataclass
class LedgerData:
    """Everything the report needs from the ledger, read in one short visit."""

    trades: Any  # a pyarrow Table in TRADE_SQL's column order
    transfers: list[TransferRow]
    prices: PriceIndex
    elections: list[Election]


def _text(col: str) -> str:
    """A DECIMAL(38,18) as its shortest text: Decimal(str) is far cheaper than Arrow's decimals."""
    return f"rtrim(rtrim(CAST({col} AS VARCHAR), '0'), '.')"


TRADE_SQL = (
    "SELECT seq, timestamp, epoch_us(timestamp), exchange, symbol, upper(asset), upper(quote), "
    f"lower(side), {_text('amount')}, {_text('price')}, {_text('cost')}, {_text('fee')}, "
    f"upper(fee_currency), trade_id, {_text('total_usd')} "
    "FROM trades WHERE timestamp < ? ORDER BY timestamp, seq"
)
_DECIMAL_COLUMNS = (8, 9, 10, 11, 14)
TRANSFER_SQL = (
    "SELECT seq, timestamp, epoch_us(timestamp), exchange, lower(kind), upper(asset), amount, "
    f"fee, fee_currency, txid, status, notes FROM {TRANSFERS_LATEST} WHERE timestamp < ? "
    "ORDER BY timestamp, seq"
)
PRICE_SQL = "SELECT epoch_us(timestamp), asset, quote, price FROM prices WHERE timestamp < ?"
ELECTION_SQL = (
    "SELECT seq, timestamp, recorded_at, details FROM control_events WHERE kind = ? ORDER BY seq"
)


def read_ledger(path: Path, wait_seconds: float | Decimal, until: datetime) -> LedgerData:
    """Read trades, transfers, prices and elections before `until` (naive UTC), then let go."""
    from ccxtkit.ledger.instance import all_cores
    from ccxtkit.ledger.store import open_ledger

    if not path.exists():
        raise InputError(f"no ledger at {path}: import trades first (`vhc ledger import`)")
    with open_ledger(path, wait_seconds) as ledger:
        with all_cores(ledger.con):  # every trade, sorted: the whole history
            trades = ledger.con.sql(TRADE_SQL, params=[until]).to_arrow_table()
        transfers = [TransferRow(*r) for r in ledger.query(TRANSFER_SQL, [until])]
        prices = PriceIndex.from_rows(ledger.query(PRICE_SQL, [until]))
        elections = parse_elections(ledger.rows(ELECTION_SQL, [ELECTION_EVENT]))
    return LedgerData(trades, transfers, prices, elections)


def iter_trades(table: Any) -> Iterator[TradeRow]:
    """TradeRows from the Arrow table, a batch at a time (keeps a million trades small)."""
    for batch in table.to_batches(max_chunksize=_BATCH):
        columns: list[list[Any]] = [col.to_pylist() for col in batch.columns]
        for i in _DECIMAL_COLUMNS:
            columns[i] = [None if v is None else Decimal(v) for v in columns[i]]
        yield from map(TradeRow._make, zip(*columns, strict=True))


def day_bounds(day: date, zone: tzinfo | None) -> tuple[datetime, date]:
    """Naive-UTC start of a local calendar day (and the day itself)."""
    z = zone or UTC
    start = datetime(day.year, day.month, day.day, tzinfo=z).astimezone(UTC).replace(tzinfo=None)
    return start, day


def year_bounds(year: int, zone: tzinfo | None) -> tuple[datetime, datetime]:
    """The tax year as naive-UTC [start, end) in the taxpayer's zone."""
    z = zone or UTC
    start = datetime(year, 1, 1, tzinfo=z).astimezone(UTC).replace(tzinfo=None)
    end = datetime(year + 1, 1, 1, tzinfo=z).astimezone(UTC).replace(tzinfo=None)
    return start, end


def compute_rows(
    data: LedgerData,
    year: int,
    basis: Basis,
    method_at: Any,
    zone: tzinfo | None,
    reporting: Mapping[str, str],
) -> tuple[list[Row], set[Method], Findings]:
    """Replay the whole history and keep the rows of sales in `year`."""
    found = Findings(missing_prices=[], warnings=[])
    moves = transfer_events(data.transfers, data.prices, found)
    events = merged_events(iter_trades(data.trades), moves, data.prices, found)
    start, end = year_bounds(year, zone)
    rows: list[Row] = []
    used: set[Method] = set()
    for m in match_lots(events, method_at, basis, report_from=epoch_us(start)):
        if start <= m.sold < end:
            rows.append(to_row(m, zone, reporting))
            used.add(m.method)
    if found.missing_prices:
        listed = "; ".join(found.missing_prices[:_MAX_LISTED])
        more = len(found.missing_prices) - _MAX_LISTED
        tail = f"; and {more} more" if more > 0 else ""
        raise InputError(
            f"{len(found.missing_prices)} trade(s)/transfer(s) need a USD price the ledger lacks: "
            f"{listed}{tail}. Run `vhc prices fetch` for those assets and dates, then retry"
        )
    return rows, used, found


def choose_methods(
    elections: list[Election],
    year: int,
    requested: Method | None,
    configured: Method,
    what_if: bool,
    zone: tzinfo | None,
) -> tuple[Any, list[str]]:
    """The per-sale method function, refusing a --method that contradicts the record."""
    notes: list[str] = []
    record = methods_on_record(elections, year)
    if requested is not None and not what_if and record and record != {requested}:
        on_record = ", ".join(sorted(m.value for m in record))
        raise UsageError(
            f"--method {requested.value} contradicts the method on record for {year} "
            f"({on_record}): from 2025 only an election made before a sale counts. Record one "
            f"for future sales with `vhc tax elect --method {requested.value}`, or add "
            "--what-if to see a scenario (not for filing)"
        )
    fallback = requested or configured
    if requested is None and configured is not Method.FIFO and not elections:
        if date(year, 12, 31) >= STANDING_ORDER_RULE_FROM:
            notes.append(
                f"config tax.method is {configured.value} but no election is on record: sales "
                "from 2025 use FIFO; record a standing order with `vhc tax elect`"
            )

    # Sales arrive in time order: remember the last local day's bounds so that the zone
    # conversion runs once per day, not once per sale.
    cache: list[Any] = [None, None, None]  # [day start, day end, day]

    def method_at(sold: datetime) -> Method:
        if cache[0] is not None and cache[0] <= sold < cache[1]:
            day: date = cache[2]
        else:
            day = local_date(sold, zone)
            start, _ = day_bounds(day, zone)
            end, _ = day_bounds(day + timedelta(days=1), zone)
            cache[:] = [start, end, day]
        if what_if and requested is not None and day.year == year:
            return requested
        if not elections and day.year < STANDING_ORDER_RULE_FROM.year:
            return fallback
        return method_for_sale(elections, sold, day, fallback)

    return method_at, notes


def refuse_securities(trades: Any) -> None:
    """Refuse a ledger holding broker (Kite) share trades: they are securities, not crypto.

    Shares fall under the wash-sale rule (Form 8949 code W) and their own boxes; until vhc
    computes that, the report is refused rather than mixing them into the crypto rows.
    """
    import pyarrow.compute as pc

    from ccxtkit.exchanges.kite_symbols import SYMBOL_PATTERN

    symbols = trades.column(4)
    hits = trades.filter(pc.match_substring_regex(symbols, SYMBOL_PATTERN))
    if hits.num_rows == 0:
        return
    accounts = sorted({str(x) for x in hits.column(3).to_pylist()})
    raise UsageError(
        f"tax-report covers crypto only: the ledger holds {hits.num_rows} share trade(s) on "
        f"{', '.join(accounts)} (e.g. {hits.column(4)[0].as_py()}); securities need wash-sale "
        "adjustments (Form 8949 code W) that vhc does not compute yet, so nothing was written. "
        "Report those trades from the broker's tax statement"
    )


def tax_report(
    ws: Workspace,
    year: int,
    method: str | None = None,
    output: Path | None = None,
    what_if: bool = False,
) -> TaxReport:
    """Build the year's Form 8949 rows and Schedule D totals from the ledger and write the CSV."""
    if year < 2009 or year > 2200:
        raise UsageError(f"--year {year} is not a plausible tax year")
    if what_if and method is None:
        raise UsageError("--what-if needs --method: say which method the scenario uses")
    cfg = ws.config
    zone = None
    if cfg.timezone:
        from zoneinfo import ZoneInfo

        zone = ZoneInfo(cfg.timezone)
    requested = parse_method(method) if method else None
    basis = Basis(cfg.tax.basis)
    _, end = year_bounds(year, zone)
    data = read_ledger(ws.ledger_path, cfg.ledger.lock_wait_seconds, end)
    refuse_securities(data.trades)
    method_at, notes = choose_methods(
        data.elections, year, requested, Method(cfg.tax.method), what_if, zone
    )
    reporting = dict(cfg.tax.form_1099da)
    rows, used, found = compute_rows(data, year, basis, method_at, zone, reporting)
    label = "+".join(sorted(m.value for m in used)) or (requested or Method(cfg.tax.method)).value
    report = TaxReport(
        year=year,
        method=label,
        basis=basis.value,
        what_if=what_if,
        rows=rows,
        schedule=schedule(rows),
        warnings=notes + found.warnings,
    )
    if report.unknown_basis_rows:
        report.warnings.append(
            f"{report.unknown_basis_rows} row(s) are marked BASIS UNKNOWN and carry a cost basis "
            "of 0.00: find the real basis before filing"
        )
    text = to_csv(rows)
    if what_if:
        assert requested is not None
        target = output or ws.reports_dir / f"tax_{year}_what-if_{requested.value}.csv"
        if target.name == f"tax_{year}.csv":
            raise UsageError(
                f"--what-if never writes the filing form {target.name}: pick another --output"
            )
        text = f"# WHAT-IF SCENARIO ({requested.value}), NOT FOR FILING\n" + text
    else:
        target = output or ws.reports_dir / f"tax_{year}.csv"
    if output is not None:
        write_output(target, text)  # the user's path: its problems are exit 2, naming it
    else:
        write_private(target, text)
    report.output = target
    return report
