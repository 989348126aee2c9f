"""The cost basis of the daily-loss figure, summed from a chained checkpoint plus later buys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from ccxtkit.cli.app import main
from ccxtkit.ledger.store import Ledger, open_ledger
from ccxtkit.ledger.verify import verify_chain
from ccxtkit.risk.cost_basis import (
    CHECKPOINT_EVERY,
    CHECKPOINT_KIND,
    buy_sums,
    record_checkpoint_if_due,
)
from ccxtkit.risk.exposure import realised_pnl_today
from ccxtkit.workspace import init_workspace
from tests.test_risk_exposure import trade

NOW = datetime(2025, 1, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with open_ledger(tmp_path / "l.duckdb") as led:
        yield led


def _full_sums(ledger: Ledger) -> dict[tuple[str, str], tuple[D, D, D]]:
    """The same sums straight from every buy, independently of the module."""
    out: dict[tuple[str, str], tuple[D, D, D]] = {}
    for r in ledger.rows("SELECT * FROM trades WHERE side = 'buy'"):
        usd_quote = r["quote"].upper() in {"USD", "USDT", "USDC"}
        known = r["total_usd"] if r["total_usd"] is not None else (r["cost"] if usd_quote else 0)
        unvalued = r["cost"] if r["total_usd"] is None and not usd_quote else 0
        a, k, u = out.get((r["asset"], r["quote"]), (D(0), D(0), D(0)))
        out[(r["asset"], r["quote"])] = (a + r["amount"], k + known, u + unvalued)
    return out


def _as_tuples(sums: dict) -> dict[tuple[str, str], tuple[D, D, D]]:
    return {k: (v.amount, v.known_usd, v.unvalued_cost) for k, v in sums.items()}


def _history() -> list[dict]:
    start = datetime(2024, 5, 1)
    rows = []
    for i in range(30):
        rows.append(trade(start + timedelta(days=i), "buy", "0.1", str(50000 + 100 * i)))
        rows.append(trade(start + timedelta(days=i), "buy", "2", "0.05", symbol="ETH/BTC"))
        rows.append(trade(start + timedelta(days=i, hours=1), "sell", "0.05", "60000"))
    return rows


def test_checkpoint_plus_later_buys_equals_every_buy(ledger: Ledger) -> None:
    ledger.append("trades", _history())
    assert record_checkpoint_if_due(ledger, every=1000) is None  # 60 buys: not due
    seq = record_checkpoint_if_due(ledger, every=10)
    assert seq is not None
    (details,) = ledger.query("SELECT details FROM control_events WHERE seq = ?", [seq])[0]
    assert json.loads(details)["through_seq"] == seq - 1
    # Later buys, one of them imported with an old timestamp: seq decides, not time.
    ledger.append(
        "trades",
        [
            trade(datetime(2024, 1, 1), "buy", "1", "30000"),
            trade(datetime(2025, 1, 2, 8), "buy", "0.5", "90000"),
            trade(datetime(2025, 1, 2, 9), "buy", "3", "0.04", symbol="ETH/BTC"),
        ],
    )
    assert _as_tuples(buy_sums(ledger, ["BTC", "ETH"])) == _full_sums(ledger)
    assert set(buy_sums(ledger, ["ETH"])) == {("ETH", "BTC")}
    assert verify_chain(ledger).ok


def test_daily_loss_figure_is_the_same_with_or_without_a_checkpoint(tmp_path: Path) -> None:
    figures = []
    for name, every in (("plain", None), ("checkpointed", 5)):
        with open_ledger(tmp_path / f"{name}.duckdb") as ledger:
            ledger.append("trades", _history())
            if every:
                assert record_checkpoint_if_due(ledger, every=every) is not None
            ledger.append(
                "trades",
                [
                    trade(datetime(2025, 1, 2, 8), "buy", "1", "80000"),
                    trade(datetime(2025, 1, 2, 9), "sell", "0.7", "40000", fee="3"),
                ],
            )
            figures.append(realised_pnl_today(ledger, {"BTC": D(40000)}, NOW))
    assert figures[0] == figures[1]
    assert figures[0] < 0  # sold well under the average cost: a loss, as the trigger needs


def test_an_unreadable_checkpoint_is_ignored_not_trusted(ledger: Ledger) -> None:
    ledger.append("trades", _history())
    # A checkpoint claiming no buys before it, and one whose through_seq lies in the future.
    ledger.record_event(CHECKPOINT_KIND, {"through_seq": "x", "buys": []})
    assert _as_tuples(buy_sums(ledger, ["BTC", "ETH"])) == _full_sums(ledger)
    ledger.record_event(CHECKPOINT_KIND, {"through_seq": 10**9, "buys": []})
    assert _as_tuples(buy_sums(ledger, ["BTC", "ETH"])) == _full_sums(ledger)


def test_an_edited_checkpoint_breaks_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "l.duckdb"
    with open_ledger(path) as ledger:
        ledger.append("trades", _history())
        seq = record_checkpoint_if_due(ledger, every=1)
        ledger.con.execute(
            "UPDATE control_events SET details = ? WHERE seq = ?",
            [json.dumps({"through_seq": seq - 1, "buys": []}), seq],
        )
    with open_ledger(path, read_only=True) as ledger:
        result = verify_chain(ledger)
    assert result.problem is not None and result.problem.seq == seq


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out + err


def test_orders_record_checkpoints_and_check_reads_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the CLI: after CHECKPOINT_EVERY buys an order's outcome visit records one
    checkpoint, the every-minute check still runs, and the chain verifies."""
    home = tmp_path / "ws"
    init_workspace(home)
    path = home / "ledger" / "vhc.duckdb"
    with open_ledger(path) as ledger:
        start = datetime(2024, 1, 1)
        ledger.append(
            "trades",
            [
                trade(start + timedelta(minutes=i), "buy", "0.001", "50000", exchange="paper")
                for i in range(CHECKPOINT_EVERY)
            ],
        )
    h = ["--home", str(home)]
    assert run(capsys, *h, "trade", "buy", "BTC/USD", "0.001", "--yes")[0] == 0
    assert run(capsys, *h, "trade", "sell", "BTC/USD", "0.001", "--yes")[0] == 0
    with open_ledger(path, read_only=True) as ledger:
        rows = ledger.query(
            "SELECT details FROM control_events WHERE kind = ? ORDER BY seq", [CHECKPOINT_KIND]
        )
        assert len(rows) == 1  # the second order found it recent: not due again
        through = json.loads(rows[0][0])["through_seq"]
        assert through > CHECKPOINT_EVERY
        assert _as_tuples(buy_sums(ledger, ["BTC"])) == _full_sums(ledger)
    code, out = run(capsys, *h, "kill-switch", "--check")
    assert code == 0, out
    assert run(capsys, *h, "ledger", "verify")[0] == 0


def test_every_checkpoint_kind_is_read_by_the_one_query() -> None:
    from ccxtkit.risk import checkpoints, high_water, open_orders

    kinds = {CHECKPOINT_KIND, high_water.CHECKPOINT_KIND, open_orders.CHECKPOINT_KIND}
    assert kinds == set(checkpoints.KINDS)
