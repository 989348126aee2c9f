"""`vhc tax-report`, `vhc tax elect` and `vhc prices fetch` through the real entry point."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ccxtkit.cli.app import main
from ccxtkit.ledger.store import open_ledger
from ccxtkit.workspace import Workspace, init_workspace, write_private


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def vhc(home: Path, *args: str) -> Run:
    """Run `vhc --home HOME ARGS` through main(): real exit codes, one-line errors."""
    runner = CliRunner()
    with runner.isolation() as (out, err, _):
        try:
            main(["--home", str(home), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return Run(code, out.getvalue().decode(), err.getvalue().decode())


def flat(text: str) -> str:
    return " ".join(text.split())


def trade(when: str, sym: str, side: str, amount: str, price: str, tid: str,
          fee: str = "0", ex: str = "paper") -> dict[str, Any]:  # fmt: skip
    base, quote = sym.split("/")
    return dict(timestamp=datetime.fromisoformat(when), exchange=ex, symbol=sym, asset=base,
                quote=quote, side=side, amount=D(amount), price=D(price),
                cost=D(amount) * D(price), fee=D(fee), fee_currency=quote, trade_id=tid,
                source="test")  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    init_workspace(home)
    ws = Workspace.locate(str(home))
    with open_ledger(ws.ledger_path) as ledger:
        ledger.append(
            "trades",
            [
                trade("2024-01-10T00:00:00", "BTC/USD", "buy", "1", "10000", "T1", "10"),
                trade("2025-02-01T00:00:00", "BTC/USD", "buy", "1", "30000", "T2"),
                trade("2025-03-01T00:00:00", "BTC/USD", "sell", "1", "25000", "T3", "5"),
            ],
        )
    return home


def test_report_writes_csv_and_json_totals(home: Path) -> None:
    run = vhc(home, "--json", "tax-report", "--year", "2025")
    assert run.code == 0, run.stderr
    doc = json.loads(run.stdout)
    # FIFO: sells the 2024-01-10 lot: proceeds 25,000 - 5 = 24,995; basis 10,000 + 10 = 10,010
    assert doc["year"] == 2025 and doc["method"] == "fifo"
    assert doc["long_term"] == {
        "proceeds": "24995",
        "cost_basis": "10010",
        "gain": "14985",
    }
    assert doc["short_term"] == {"proceeds": "0", "cost_basis": "0", "gain": "0"}
    csv_path = home / "reports" / "tax_2025.csv"
    lines = csv_path.read_text().splitlines()
    assert lines == [
        "description,date_acquired,date_sold,proceeds,cost_basis,adjustment_code,"
        "adjustment_amount,gain_loss,term,box,exchange",
        "1 BTC,2024-01-10,2025-03-01,24995.00,10010.00,,,14985.00,long,L,paper",
    ]
    assert stat.S_IMODE(csv_path.stat().st_mode) == 0o600
    human = vhc(home, "tax-report", "--year", "2025")
    assert human.code == 0 and "14985.00" in human.stdout and "box L" in human.stdout


def test_elections_govern_and_contradicting_method_is_refused(home: Path) -> None:
    # no election on record: 2025 sales are FIFO, so --method hifo is refused (exit 2)
    refused = vhc(home, "tax-report", "--year", "2025", "--method", "hifo")
    assert refused.code == 2
    assert "contradicts the method on record" in flat(refused.stderr)
    assert not (home / "reports" / "tax_2025.csv").exists()

    # --what-if shows the scenario (HIFO takes the 30,000 lot: 24,995 - 30,000 = -5,005)
    scenario = vhc(home, "--json", "tax-report", "--year", "2025", "--method", "hifo", "--what-if")
    assert scenario.code == 0, scenario.stderr
    doc = json.loads(scenario.stdout)
    assert doc["what_if"] is True and doc["short_term"]["gain"] == "-5005"
    assert not (home / "reports" / "tax_2025.csv").exists()  # never the filing form
    what_if_csv = home / "reports" / "tax_2025_what-if_hifo.csv"
    assert what_if_csv.read_text().startswith("# WHAT-IF SCENARIO (hifo), NOT FOR FILING")
    human = vhc(home, "tax-report", "--year", "2025", "--method", "hifo", "--what-if")
    assert "WHAT-IF SCENARIO" in human.stdout

    # an election reaching back into 2025 is refused; one from a date before 2025 is allowed
    back = vhc(home, "tax", "elect", "--method", "hifo", "--from", "2025-01-01")
    assert back.code == 2 and "reach back" in flat(back.stderr)
    ok = vhc(home, "--json", "tax", "elect", "--method", "hifo", "--from", "2024-01-01")
    assert ok.code == 0, ok.stderr
    assert json.loads(ok.stdout)["method"] == "hifo"
    # ...but it was recorded after the 2025 sale, so that sale stays FIFO (standing orders only)
    again = vhc(home, "--json", "tax-report", "--year", "2025")
    assert json.loads(again.stdout)["long_term"]["gain"] == "14985"
    with open_ledger(Workspace.locate(str(home)).ledger_path) as ledger:
        kinds = [r[0] for r in ledger.query("SELECT kind FROM control_events")]
    assert "tax.election" in kinds


def test_future_election_applies_to_later_sales(home: Path) -> None:
    ws = Workspace.locate(str(home))
    vhc(home, "tax", "elect", "--method", "hifo")  # from today
    later = datetime.now().year + 1
    with open_ledger(ws.ledger_path) as ledger:
        ledger.append("trades", [
            trade(f"{later}-01-01T00:00:00", "BTC/USD", "buy", "1", "10", "T4"),
            trade(f"{later}-06-01T00:00:00", "BTC/USD", "sell", "1", "20000", "T5"),
        ])  # fmt: skip
    # Only in the test: a sale dated in the future is after the election was recorded.
    run = vhc(home, "--json", "tax-report", "--year", str(later))
    doc = json.loads(run.stdout)
    # HIFO takes the 30,000 lot of 2025 (long-term by then): 20,000 - 30,000 = -10,000
    assert doc["method"] == "hifo" and doc["long_term"]["gain"] == "-10000"
    assert vhc(home, "tax-report", "--year", str(later), "--method", "hifo").code == 0
    assert vhc(home, "tax-report", "--year", str(later), "--method", "fifo").code == 2


def test_oversell_is_an_error_naming_the_trade(home: Path) -> None:
    with open_ledger(Workspace.locate(str(home)).ledger_path) as ledger:
        ledger.append("trades", [trade("2025-05-01T00:00:00", "BTC/USD", "sell", "5", "1", "T9")])
    run = vhc(home, "tax-report", "--year", "2025")
    assert run.code == 2
    assert "trade T9 on paper at 2025-05-01T00:00:00Z" in flat(run.stderr)
    assert "Traceback" not in run.stderr


def test_missing_prices_listed_then_fetched_from_paper_feed(home: Path) -> None:
    ws = Workspace.locate(str(home))
    with open_ledger(ws.ledger_path) as ledger:
        ledger.append("trades", [
            trade("2025-01-15T10:30:00", "ETH/BTC", "buy", "1", "0.03", "X1"),
            trade("2025-01-15T11:30:00", "ETH/BTC", "sell", "0.5", "0.031", "X2"),
        ])  # fmt: skip
    run = vhc(home, "tax-report", "--year", "2025")
    assert run.code == 2
    text = flat(run.stderr)
    assert "2 trade(s)/transfer(s) need a USD price" in text
    assert "trade X1 on paper" in text and "trade X2 on paper" in text
    assert "vhc prices fetch" in text

    fetched = vhc(home, "--json", "prices", "fetch", "--symbol", "BTC/USD",
                  "--start", "2025-01-15", "--end", "2025-01-15")  # fmt: skip
    assert fetched.code == 0, fetched.stderr
    doc = json.loads(fetched.stdout)
    assert doc["recorded"] == 24 and doc["exchange"] == "paper"
    again = vhc(home, "--json", "prices", "fetch", "--symbol", "BTC/USD",
                "--start", "2025-01-15", "--end", "2025-01-15")  # fmt: skip
    assert json.loads(again.stdout)["recorded"] == 0  # nothing doubled

    report = vhc(home, "--json", "tax-report", "--year", "2025")
    assert report.code == 0, report.stderr
    rows = (home / "reports" / "tax_2025.csv").read_text().splitlines()[1:]
    assert any(r.startswith("0.03 BTC,") for r in rows)  # BTC given up for ETH is a disposal
    assert any(r.startswith("0.5 ETH,") for r in rows)


def test_prices_fetch_defaults_to_what_the_ledger_needs(home: Path) -> None:
    ws = Workspace.locate(str(home))
    with open_ledger(ws.ledger_path) as ledger:
        ledger.append("trades", [trade("2025-01-15T10:30:00", "ETH/BTC", "buy", "1", "0.03", "X1")])
    run = vhc(home, "--json", "prices", "fetch")
    assert run.code == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["symbols"] == ["BTC/USD"] and doc["recorded"] > 0


def test_1099da_config_selects_box_g(home: Path) -> None:
    path = home / "config" / "trading_config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["tax"]["form_1099da"] = {"paper": "basis_reported"}
    cfg["tax"]["basis"] = "universal"
    write_private(path, yaml.safe_dump(cfg))
    vhc(home, "tax-report", "--year", "2025")
    row = (home / "reports" / "tax_2025.csv").read_text().splitlines()[1]
    assert row.endswith(",long,J,paper")


def test_bad_input_is_one_line_exit_2(home: Path) -> None:
    assert vhc(home, "tax-report", "--year", "2025", "--method", "avg").code == 2
    assert vhc(home, "tax-report", "--year", "2025", "--what-if").code == 2
    bad = vhc(home, "tax", "elect", "--method", "fifo", "--from", "tomorrow")
    assert bad.code == 2 and "--from" in bad.stderr
