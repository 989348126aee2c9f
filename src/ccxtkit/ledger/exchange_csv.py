"""`vhc ledger import --from coinbase|kraken|binanceus FILE`: an exchange's own history export.

Each row is read through a pydantic model of that export's documented columns (bad values:
one line naming file:line), mapped to fills and transfers, and recorded like `ledger sync`
records them (ledger.sync.record_history): keyed by the exchange's own trade/reference id as
ccxt reports it, so the same trade read by `ledger sync` and from the file is recorded once.

- trades (and conversions, as the trades they are) become `trades` rows;
- deposits, withdrawals and staking/reward income become `transfers` rows; income carries
  `cost_basis_usd=` (its value when received) in its notes where the export gives the value;
- rows the export uses for moves inside the account (wallet to staking, say) are skipped and
  counted by type; any other type is listed as unknown, never dropped silently.
"""

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..workspace import Workspace
from .export_rows import Parsed

SOURCES = ("coinbase", "kraken", "binanceus")


@dataclass(frozen=True)
class ExportImportResult:
    """What `vhc ledger import --from` did."""

    file: Path
    source: str
    exchange: str
    rows: int
    added: int
    known: int
    conflicts: list[str]
    skipped: dict[str, int]
    unknown: dict[str, list[int]]


def parse_export(source: str, path: Path) -> Parsed:
    """Read an exchange's export into movements (nothing written)."""
    from .export_coinbase_binanceus import parse_binanceus, parse_coinbase
    from .export_kraken import parse_kraken

    parsers = {"coinbase": parse_coinbase, "kraken": parse_kraken, "binanceus": parse_binanceus}
    parser = parsers.get(source.lower())
    if parser is None:
        raise InputError(f"--from {source!r}: use one of {', '.join(SOURCES)}")
    try:
        return parser(path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def import_export(
    ws: Workspace, source: str, path: Path, exchange: str | None = None
) -> ExportImportResult:
    """Parse the export, then record its movements in one transaction (see module doc)."""
    from .. import crashpoints
    from .sync import record_history

    parsed = parse_export(source, path)
    account = exchange or source.lower()
    with ws.open_ledger() as ledger, ledger.transaction():
        done = record_history(
            ledger, account, parsed.trades, parsed.transfers, f"import:{source.lower()}",
            f"imported from the {source.lower()} export {path.name}", parsed.notes,
        )  # fmt: skip
        crashpoints.reach("ledger.import.mid_batch")  # rows inserted, not committed
        ledger.record_event(
            "ledger.import",
            {"file": path.name, "from": source.lower(), "exchange": account, "rows": parsed.rows,
             "imported": done.added, "known": done.known, "conflicts": len(done.conflicts),
             "skipped": parsed.skipped, "unknown": sorted(parsed.unknown)},
            subject=str(path),
        )  # fmt: skip
    return ExportImportResult(
        path, source.lower(), account, parsed.rows, done.added, done.known, done.conflicts,
        parsed.skipped, parsed.unknown,
    )  # fmt: skip
