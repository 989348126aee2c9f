"""`vhc reconcile` on the paper exchange: every finding type, auto-sync, adoption, exit codes."""

from __future__ import annotations

import csv
import json
import stat
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from ccxtkit.cli.app import main
from ccxtkit.exchanges.paper import PaperExchange
from ccxtkit.ledger.store import open_ledger
from ccxtkit.trading.recording import trade_row
from ccxtkit.workspace import Workspace, init_workspace, write_private


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run vhc in-process through main(): exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(home / "ledger" / "vhc.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def edit_config(home: Path, change: Any) -> None:
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    write_private(path, yaml.safe_dump(data))


def paper(home: Path, name: str = "paper") -> PaperExchange:
    client = Workspace.locate(str(home), None).config.exchange(name)
    return PaperExchange(name, client.paper, home / "state" / f"paper_{name}.json")


class Hook(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.posts.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    init_workspace(ws)
    return ws


@pytest.fixture
def adopted(home: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A paper workspace whose starting funds were adopted (a clean baseline)."""
    code, _, err = run(capsys, "--home", str(home), "reconcile", "--date", "today", "--auto-sync")
    assert code == 0, err
    return home


def findings(home: Path, label: str | None = None) -> list[dict[str, str]]:
    files = sorted((home / "reports").glob("reconciliation_*_findings.csv"))
    path = files[-1] if label is None else home / "reports" / f"reconciliation_{label}_findings.csv"
    with path.open() as fh:
        return list(csv.DictReader(fh))


def reconcile_json(capsys: pytest.CaptureFixture[str], home: Path, *extra: str) -> tuple[int, Any]:
    code, out, err = run(capsys, "--home", str(home), "--json", "reconcile", *extra)
    return code, json.loads(out)


def test_funded_account_is_adopted_once_then_clean(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `vhc init` recorded the paper account's opening balance; an account added later is not.
    assert reconcile_json(capsys, home)[0] == 0
    edit_config(home, lambda d: d["exchanges"].__setitem__("desk", dict(d["exchanges"]["paper"])))
    code, doc = reconcile_json(capsys, home)
    assert code == 1
    (usd,) = doc["accounts"]["desk"]["balances"]
    assert usd["discrepancy"] == "100000" and "no opening balance" in usd["status"]
    assert [f["finding"] for f in findings(home)] == ["balance_mismatch"]  # in the findings file
    code, doc = reconcile_json(capsys, home, "--auto-sync")
    assert code == 0 and doc["accounts"]["desk"]["adopted"] == {"USD": "100000"}
    opening = rows(
        home, "SELECT kind, asset, amount, source, notes FROM transfers WHERE exchange = 'desk'"
    )
    assert len(opening) == 1 and opening[0][:4] == (
        "opening_balance",
        "USD",
        Decimal(100000),
        "reconcile",
    )
    assert "cost basis unknown" in opening[0][4]
    before = rows(home, "SELECT count(*) FROM transfers UNION ALL SELECT count(*) FROM trades")
    code, doc = reconcile_json(capsys, home, "--auto-sync")
    assert code == 0 and doc["accounts"]["desk"]["adopted"] == {}
    assert (
        rows(home, "SELECT count(*) FROM transfers UNION ALL SELECT count(*) FROM trades") == before
    )
    assert run(capsys, "--home", str(home), "ledger", "verify")[0] == 0


def test_trades_through_vhc_reconcile_clean(
    adopted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--home", str(adopted), "trade", "buy", "BTC/USD", "0.01")[0] == 0
    assert run(capsys, "--home", str(adopted), "trade", "sell", "BTC/USD", "0.004")[0] == 0
    code, doc = reconcile_json(capsys, adopted)
    assert code == 0, doc
    assert {b["asset"] for b in doc["accounts"]["paper"]["balances"]} == {"BTC", "USD"}


def test_missing_trade_is_found_synced_once_then_clean(
    adopted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ex = paper(adopted)
    order = ex.create_order("BTC/USD", "buy", "market", Decimal("0.01"), None, "outside-1")
    code, doc = reconcile_json(capsys, adopted)
    assert code == 1
    (f,) = doc["accounts"]["paper"]["findings"]
    assert f["kind"] == "missing_trade" and f["id"] == order.trades[0].id
    statuses = {b["asset"]: b["status"] for b in doc["accounts"]["paper"]["balances"]}
    assert statuses == {"BTC": "missing trade", "USD": "missing trade"}
    assert findings(adopted)[0]["finding"] == "missing_trade"
    code, doc = reconcile_json(capsys, adopted, "--auto-sync")
    assert code == 0 and doc["accounts"]["paper"]["findings"][0]["action"] == "synced"
    assert rows(adopted, "SELECT trade_id, source FROM trades") == [
        (order.trades[0].id, "reconcile")
    ]
    code, doc = reconcile_json(capsys, adopted, "--auto-sync")
    assert code == 0 and doc["accounts"]["paper"]["findings"] == []
    assert rows(adopted, "SELECT count(*) FROM trades") == [(1,)]


def test_unknown_withdrawal_is_critical_alerted_and_synced(
    adopted: Path, capsys: pytest.CaptureFixture[str], hook: Hook
) -> None:
    url = f"http://127.0.0.1:{hook.server_address[1]}/alert"
    edit_config(
        adopted,
        lambda d: d.setdefault("monitoring", {}).update({"alerts": {"webhook": {"url": url}}}),
    )
    ex = paper(adopted)
    dep = ex.simulate_deposit("USD", Decimal(25))
    wd = ex.simulate_withdrawal("USD", Decimal(500), "attacker-address")
    code, doc = reconcile_json(capsys, adopted)
    assert code == 1
    found = {f["kind"]: f for f in doc["accounts"]["paper"]["findings"]}
    assert (
        found["unknown_withdrawal"]["severity"] == "critical"
        and found["unknown_withdrawal"]["id"] == wd.id
    )
    assert "UNAUTHORIZED" in found["unknown_withdrawal"]["detail"]
    assert found["unknown_deposit"]["label"] == "missing deposit"
    (usd,) = doc["accounts"]["paper"]["balances"]
    assert usd["status"] == "unknown withdrawal, missing deposit" and usd["discrepancy"] == "-475"
    critical = [p for p in hook.posts if p.get("severity") == "critical"]
    assert critical and "UNKNOWN WITHDRAWAL" in json.dumps(critical[0])
    # Synced, the withdrawal still needs a person once; the run after is clean.
    code, doc = reconcile_json(capsys, adopted, "--auto-sync")
    assert code == 1
    recorded = rows(adopted, "SELECT kind, transfer_id, txid, amount, fee, source FROM transfers "
                    "WHERE kind <> 'opening_balance' ORDER BY kind")  # fmt: skip
    assert recorded == [
        ("deposit", dep.id, dep.txid, Decimal(25), Decimal(0), "reconcile"),
        ("withdrawal", wd.id, wd.txid, Decimal(500), Decimal(0), "reconcile"),
    ]
    assert reconcile_json(capsys, adopted, "--auto-sync")[0] == 0
    assert len(rows(adopted, "SELECT * FROM transfers")) == 3


def test_phantom_and_mismatched_trades_are_reported_never_edited(
    adopted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ex = paper(adopted)
    order = ex.create_order("BTC/USD", "buy", "market", Decimal("0.01"), None, "outside-2")
    real = order.trades[0]
    from dataclasses import replace

    with open_ledger(adopted / "ledger" / "vhc.duckdb") as ledger:
        ledger.append("trades", [
            trade_row("paper", replace(real, price=real.price + 1, cost=real.cost + Decimal("0.01")), "import"),
            trade_row("paper", replace(real, id="GHOST-1"), "import"),
        ])  # fmt: skip
    code, doc = reconcile_json(capsys, adopted, "--auto-sync")
    assert code == 1
    kinds = {f["id"]: f["kind"] for f in doc["accounts"]["paper"]["findings"]}
    assert kinds == {real.id: "mismatched_trade", "GHOST-1": "phantom_trade"}
    assert all(f["action"] == "reported" for f in doc["accounts"]["paper"]["findings"])
    assert rows(adopted, "SELECT count(*) FROM trades") == [(2,)]


def test_unreadable_exchange_exits_5_and_the_others_are_reported(
    adopted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_config(adopted, lambda d: d["exchanges"].update(
        {"broken": {"id": "paper", "secrets": "none", "paper": {"fail_calls": True}}}))  # fmt: skip
    code, out, err = run(capsys, "--home", str(adopted), "reconcile", "--date", "2025-01-23")
    assert code == 5 and "could not read broken" in err
    report = (adopted / "reports" / "reconciliation_2025-01-23.csv").read_text().splitlines()
    assert (
        report[0]
        == "exchange,asset,local_balance,exchange_balance,discrepancy,discrepancy_usd,status"
    )
    assert report[1].startswith("paper,USD,100000,100000,0,0.00,OK")
    unread = findings(adopted, "2025-01-23")[0]
    assert unread["exchange"] == "broken" and unread["finding"] == "exchange_unreadable"
    (details,) = rows(adopted, "SELECT details FROM control_events WHERE kind = 'reconcile.completed' "
                      "ORDER BY seq DESC LIMIT 1")[0:1]  # fmt: skip
    event = json.loads(details[0])
    assert (
        event["ok"] is False
        and event["discrepancy_usd"] == {"paper": "0"}
        and "broken" in event["errors"]
    )


def test_seed_invocations_and_output_override(
    adopted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    h = str(adopted)
    assert run(capsys, "--home", h, "reconcile", "--date", "yesterday")[0] == 0
    code, _, err = run(capsys, "--home", h, "reconcile", "--exchange", "paper",
                       "--start", "2025-01-01", "--end", "2025-01-23")  # fmt: skip
    assert code == 0, err
    assert (adopted / "reports" / "reconciliation_2025-01-01_2025-01-23_findings.csv").exists()
    assert run(capsys, "--home", h, "reconcile", "--date", "today", "--auto-sync")[0] == 0
    out_file = adopted / "elsewhere" / "daily.csv"
    assert run(capsys, "--home", h, "reconcile", "--output", str(out_file))[0] == 0
    for path in (out_file, out_file.with_name("daily_findings.csv")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run(capsys, "--home", h, "reconcile", "--date", "tomorrowish")[0] == 2
    assert run(capsys, "--home", h, "reconcile", "--exchange", "nope")[0] == 2
