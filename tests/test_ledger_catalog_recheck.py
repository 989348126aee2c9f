"""The catalog check is skipped only while the file is exactly as this process left it."""

import duckdb
import pytest

from ccxtkit.errors import LedgerIntegrityError
from ccxtkit.ledger.store import open_ledger


def _plant_macro(path) -> None:
    con = duckdb.connect(str(path))
    con.execute("CREATE MACRO sha256(x) AS NULL")
    con.close()


@pytest.mark.parametrize("read_only_first", [True, False])
def test_a_macro_planted_between_two_opens_in_one_process_is_refused(tmp_path, read_only_first):
    path = tmp_path / "vhc.duckdb"
    with open_ledger(path, 5) as ledger:
        ledger.record_event("test.first", {})
    with open_ledger(path, 5, read_only=read_only_first):
        pass  # clean: the next open may skip the check while nothing else wrote the file
    _plant_macro(path)
    with pytest.raises(LedgerIntegrityError, match="macro sha256"):
        with open_ledger(path, 5, read_only=True):
            pass
    with pytest.raises(LedgerIntegrityError, match="macro sha256"):
        with open_ledger(path, 5):
            pass
