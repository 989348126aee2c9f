"""Figures a ledger visit remembers (`Ledger.remembered`): read again as soon as one of the
tables they read is written to, by this visit, a rolled-back transaction or another process."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ccxtkit.ledger.store import Ledger, open_ledger
from ccxtkit.risk.figures import latest_prices
from ccxtkit.risk.open_orders import unsettled

RECORD_PRICE_ELSEWHERE = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from ccxtkit.ledger.store import open_ledger
with open_ledger(Path(sys.argv[1])) as ledger:
    ledger.append("prices", [{"timestamp": datetime.now(UTC), "asset": "BTC", "quote": "USD",
                              "price": sys.argv[2], "source": "elsewhere"}])
"""


class Counted:
    """A figure that counts how often it was really read from the file."""

    def __init__(self, ledger_sql: str) -> None:
        self.sql = ledger_sql
        self.reads = 0

    def __call__(self, ledger: Ledger) -> int:
        def read() -> int:
            self.reads += 1
            return int(ledger.query(self.sql)[0][0])

        return ledger.remembered("test.count", ("control_events",), read)


def _price(ledger: Ledger, price: str) -> None:
    row = {
        "timestamp": datetime.now(UTC),
        "asset": "BTC",
        "quote": "USD",
        "price": Decimal(price),
        "source": "test",
    }
    ledger.append("prices", [row])


def test_a_figure_is_read_again_only_after_a_write_to_its_tables(tmp_path: Path) -> None:
    figure = Counted("SELECT count(*) FROM control_events")
    with open_ledger(tmp_path / "l.duckdb") as ledger:
        start = figure(ledger)  # a new ledger records its own first events
        assert figure(ledger) == start and figure.reads == 1
        _price(ledger, "100")  # another table: still true
        assert figure(ledger) == start and figure.reads == 1
        ledger.record_event("test.one")
        assert figure(ledger) == start + 1 and figure.reads == 2


def test_a_rolled_back_transaction_forgets_what_was_read_inside_it(tmp_path: Path) -> None:
    figure = Counted("SELECT count(*) FROM control_events")
    with open_ledger(tmp_path / "l.duckdb") as ledger:
        start = figure(ledger)
        with pytest.raises(RuntimeError), ledger.transaction():
            ledger.record_event("test.gone")
            assert figure(ledger) == start + 1  # it sees the row of the open transaction
            raise RuntimeError("roll back")
        assert figure(ledger) == start  # read again: the row is gone
    with open_ledger(tmp_path / "l.duckdb") as ledger:
        assert figure(ledger) == start


def test_the_next_visit_reuses_a_figure_only_while_nobody_else_wrote(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    with open_ledger(path) as ledger:
        _price(ledger, "100")
        assert latest_prices(ledger) == {"BTC": Decimal("100")}
    with open_ledger(path) as ledger:
        # Remembered: even a changed answer from the file would not be read...
        assert ledger.memo.figures.get("risk.latest_prices") is not None
        assert latest_prices(ledger) == {"BTC": Decimal("100")}
    done = subprocess.run(
        [sys.executable, "-c", RECORD_PRICE_ELSEWHERE, str(path), "250"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with open_ledger(path) as ledger:
        # ...but another process moved the head: nothing of our last visit is trusted.
        assert ledger.memo.figures == {}
        assert latest_prices(ledger) == {"BTC": Decimal("250")}


def test_a_remembered_figure_cannot_be_changed_by_its_caller(tmp_path: Path) -> None:
    with open_ledger(tmp_path / "l.duckdb") as ledger:
        _price(ledger, "100")
        latest_prices(ledger)["BTC"] = Decimal(1)
        assert latest_prices(ledger) == {"BTC": Decimal("100")}
        unsettled(ledger).append(None)  # type: ignore[arg-type]
        assert unsettled(ledger) == []
