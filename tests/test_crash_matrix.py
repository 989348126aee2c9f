"""Crash matrix: the real `vhc` dies at each named crash point; recovery leaves nothing lost or doubled.

For every point in `tests.crash.POINTS` a subprocess runs the real command against the local
Kraken-protocol server (and the paper exchange) and ends with `os._exit(137)` right there
(see tests/crash/sitecustomize.py). Each test FIRST checks that the crash happened at that
point (the state that point implies), then runs the recovery command and the next ordinary
command, and checks: exchange and ledger agree, nothing was sent twice, the chain verifies.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pyotp
import pytest
import yaml

from ccxtkit.cli.app import main
from ccxtkit.workspace import Workspace, write_private
from tests.crash import POINTS, run_vhc
from tests.crash.agree import (
    assert_orders_agree,
    control_events,
    intents,
    kraken_view,
    latest_events,
    ledger_rows,
    paper_view,
)
from tests.kraken_server import KrakenServer

SRC = Path(__file__).resolve().parents[1] / "src" / "ccxtkit"
ADDR = "bc1qcoldwalletaddressforvhctests0000000000"
SETUP = datetime.now(UTC) - timedelta(days=2)
OPENING = {"USD": D(100000)}


def cli(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    """Run `vhc --home HOME ARGS` in-process (the next command after a crash)."""
    capsys.readouterr()
    try:
        main(["--home", str(home), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_verifies(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    code, out, err = cli(capsys, home, "ledger", "verify")
    assert code == 0, out + err


@pytest.fixture
def home(
    tmp_path: Path, kraken_server: KrakenServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A workspace with a paper account and a `kraken` account on the local server."""
    monkeypatch.delenv("VHC_TOTP_SECRET", raising=False)
    monkeypatch.delenv("VHC_CONTROL_KEY", raising=False)
    creds = kraken_server.credentials()
    monkeypatch.setenv("KRAKEN_API_KEY", creds["apiKey"])
    monkeypatch.setenv("KRAKEN_API_SECRET", creds["secret"])
    cfg = {
        "version": "1.0",
        "exchanges": {
            "paper": {"id": "paper", "paper": {"starting_balances": {"USD": 100000}}},
            "kraken": {
                "secrets": "env",
                "rate_limit": 1000,
                "ccxt": {**kraken_server.ccxt_config(), "timeout": 3000},
            },
        },
        "secrets": {"backend": "env"},
        "withdrawals": {"daily_limit_usd": 20000, "require_two_approvals_over": 10000},
    }
    write_private(tmp_path / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    kraken_server.set_balance("USD", "100000")
    kraken_server.set_price("BTC/USD", "60000")
    yield tmp_path


def view(home: Path, exchange: str, server: KrakenServer):  # type: ignore[no-untyped-def]
    return kraken_view(server) if exchange == "kraken" else paper_view(home)


# -- the points are placed, and only the test harness can make them do anything ------------
def test_every_crash_point_is_placed_and_covered() -> None:
    calls = re.findall(r'crashpoints\.reach\("([^"]+)"\)', "".join(
        p.read_text() for p in SRC.rglob("*.py")
    ))  # fmt: skip
    assert set(calls) == set(POINTS), "tests.crash.POINTS and the src/ call sites differ"
    covered = {p for p in POINTS if f'"{p}"' in Path(__file__).read_text()}
    assert covered == set(POINTS), f"no matrix case for {set(POINTS) - covered}"


def test_crash_points_do_nothing_without_the_harness(home: Path) -> None:
    # The variable the harness reads, set in a user's environment, changes nothing.
    for path in SRC.rglob("*.py"):
        assert "VHC_TEST_CRASH" not in path.read_text(), path
    # crashpoints.py imports nothing and `reach` has no body: nothing there can be switched on.
    tree = ast.parse((SRC / "crashpoints.py").read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [getattr(n, "module", None) for n in imports] == ["__future__"]
    (reach,) = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert len(reach.body) == 1 and isinstance(reach.body[0], ast.Expr)  # the docstring alone
    run = run_vhc(
        home,
        ["trade", "buy", "BTC/USD", "0.01", "--exchange", "paper"],
        env={"VHC_TEST_CRASH_AT": "order.intent_recorded"},
        harness=False,
    )
    assert run.code == 0, run.err
    assert latest_events(home, "paper") == {intents(home, "paper")[0]: "filled"}


# -- orders: intent -> send once -> outcome -> fills -----------------------------------------
ORDER_POINTS = ["order.intent_recorded", "order.sent", "order.outcome_recorded"]


@pytest.mark.parametrize("exchange", ["kraken", pytest.param("paper", marks=pytest.mark.slow)])
@pytest.mark.parametrize("point", ORDER_POINTS)
def test_order_crash_then_recover(
    point: str,
    exchange: str,
    home: Path,
    kraken_server: KrakenServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    buy = ["trade", "buy", "BTC/USD", "0.01", "--exchange", exchange, "--yes"]
    run = run_vhc(home, buy, crash_at=point)
    # 1. It crashed there: an intent exists; the exchange has the order or not, as implied.
    assert run.crashed, (run.code, run.err)
    (cid,) = intents(home, exchange)
    before = view(home, exchange, kraken_server)
    if point == "order.intent_recorded":
        assert dict(before.sends) == {}  # never sent
    else:
        assert dict(before.sends) == {cid: 1} and before.orders == {cid: "closed"}
    # The outcome and its fills are one transaction: a crash between them leaves neither.
    assert latest_events(home, exchange) == {}
    assert ledger_rows(home, "SELECT count(*) FROM trades") == [(0,)]
    assert_verifies(capsys, home)

    # 2. Recovery resolves the intent against the exchange, and sends nothing.
    code, out, err = cli(capsys, home, "trade", "recover", "--exchange", exchange)
    assert code == 0, err
    expected = "not_found" if point == "order.intent_recorded" else "filled"
    assert latest_events(home, exchange) == {cid: expected}
    assert view(home, exchange, kraken_server).sends == before.sends
    assert_orders_agree(home, exchange, view(home, exchange, kraken_server), OPENING)

    # 3. The next ordinary order is sent once; everything still agrees.
    code, out, err = cli(capsys, home, *buy)
    assert code == 0, err
    after = view(home, exchange, kraken_server)
    assert sum(after.sends.values()) == sum(before.sends.values()) + 1
    assert_orders_agree(home, exchange, after, OPENING)
    assert_verifies(capsys, home)


# -- withdrawals: claim -> send once -> outcome ----------------------------------------------
WITHDRAW_POINTS = ["withdraw.claimed", "withdraw.sent", "withdraw.recorded"]


def withdrawal_setup(home: Path, server: KrakenServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """1 BTC on kraken, withdrawal key `cold`, allowlisted two days ago; returns the TOTP secret."""
    from ccxtkit.auth import totp
    from ccxtkit.withdrawals import allowlist

    server.set_balance("BTC", "1")
    server.register_withdrawal_key("BTC", "cold", ADDR)
    ws = Workspace.locate(str(home))
    enrolled = totp.enrol(ws, "admin", backend="env", now=SETUP)
    for name, value in enrolled.exports.items():  # VHC_TOTP_SECRET and VHC_CONTROL_KEY
        monkeypatch.setenv(name, value)
    secret = enrolled.secret
    assert secret is not None
    code = pyotp.TOTP(secret).at(SETUP)
    allowlist.add_entry(ws, "BTC", ADDR, None, "cold", code, now=SETUP)
    return secret


def request_withdrawal(capsys: pytest.CaptureFixture[str], home: Path, amount: str) -> str:
    code, out, err = cli(
        capsys, home, "--json", "withdraw", "request", "kraken", "BTC", amount, ADDR
    )
    assert code == 0, err
    return str(json.loads(out)["id"])


def withdrawal_status(home: Path, request_id: str) -> str:
    from ccxtkit.ledger.store import open_ledger
    from ccxtkit.withdrawals.requests import load_requests

    with open_ledger(home / "ledger" / "vhc.duckdb", wait_seconds=5) as ledger:
        return load_requests(ledger, request_id)[request_id].status


def assert_withdrawals_agree(home: Path, server: KrakenServer) -> None:
    """Every withdrawal on the exchange is one recorded transfer of one request, and back."""
    sent = {t.refid: (t.amount, t.fee) for t in server.transfers if t.kind == "withdrawal"}
    rows = ledger_rows(
        home,
        "SELECT transfer_id, amount, fee, request_id FROM transfers WHERE kind = 'withdrawal'",
    )
    assert {r[0]: (r[1], r[2]) for r in rows} == sent
    assert len({r[3] for r in rows}) == len(rows), "one request recorded as two transfers"
    assert len(server.requests_to("Withdraw")) == len(sent), "a Withdraw call was repeated"
    gone = sum((amount + fee for amount, fee in sent.values()), D(0))
    assert server.balance("BTC") == D(1) - gone


@pytest.mark.parametrize("point", WITHDRAW_POINTS)
def test_withdrawal_crash_then_recover(
    point: str,
    home: Path,
    kraken_server: KrakenServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = withdrawal_setup(home, kraken_server, monkeypatch)
    rid = request_withdrawal(capsys, home, "0.1")
    now = datetime.now(UTC)
    run = run_vhc(
        home, ["withdraw-approve", rid, "--auth-code", pyotp.TOTP(secret).at(now)], crash_at=point
    )
    # 1. It crashed there: claimed (money may have left) and sent, or not, as implied.
    assert run.crashed, (run.code, run.err)
    withdraw_calls = len(kraken_server.requests_to("Withdraw"))
    assert withdraw_calls == (0 if point == "withdraw.claimed" else 1)
    recorded = ledger_rows(home, "SELECT count(*) FROM transfers")[0][0]
    assert recorded == (1 if point == "withdraw.recorded" else 0)
    assert withdrawal_status(home, rid) == ("executed" if recorded else "executing")
    assert_verifies(capsys, home)

    # 2. Recovery looks it up and never sends it again.
    code, out, err = cli(capsys, home, "withdraw", "recover")
    if point == "withdraw.claimed":
        # Nothing listed yet: it stays claimed (exit 1, needs a person) until the grace period
        # ends; then, still not listed, it is failed. It is never sent.
        assert code == 1 and "not listed yet" in out, out + err
        from ccxtkit.withdrawals import recover
        from ccxtkit.withdrawals.execute import LOOKUP_GRACE

        later = now + LOOKUP_GRACE + timedelta(minutes=1)
        late = recover.recover(Workspace.locate(str(home)), now=later)
        assert [(r.request_id, r.after) for r in late] == [(rid, "failed")]
    else:
        assert code == 0, out + err
    assert withdrawal_status(home, rid) == ("failed" if point == "withdraw.claimed" else "executed")
    assert len(kraken_server.requests_to("Withdraw")) == withdraw_calls
    assert_withdrawals_agree(home, kraken_server)
    code, out, err = cli(capsys, home, "withdraw", "recover")
    assert code == 0 and "nothing to recover" in out, out + err

    # 3. The next ordinary withdrawal is sent once; everything still agrees.
    rid2 = request_withdrawal(capsys, home, "0.1")
    next_code = pyotp.TOTP(secret).at(now + timedelta(seconds=30))  # a code not used yet
    code, out, err = cli(capsys, home, "withdraw-approve", rid2, "--auth-code", next_code)
    assert code == 0, out + err
    assert withdrawal_status(home, rid2) == "executed"
    assert len(kraken_server.requests_to("Withdraw")) == withdraw_calls + 1
    assert_withdrawals_agree(home, kraken_server)
    assert_verifies(capsys, home)


# -- kill switch: state file -> sweep each account -> its ledger event ----------------------
KILL_POINTS = [
    "killswitch.state_written",
    "killswitch.swept_account",
    "killswitch.before_sweep_event",
]


def rest_orders(home: Path, account: str, count: int) -> None:
    """Rest `count` far-from-market limit buys on `account` (set-up, outside vhc's order path)."""
    from ccxtkit.exchanges.factory import open_exchange
    from ccxtkit.secrets import resolve_credentials

    ws = Workspace.locate(str(home))
    client = open_exchange(ws, account, resolve_credentials(ws, account))
    try:
        for i in range(count):
            client.create_order("BTC/USD", "buy", "limit", D("0.001"), D("1000"), f"rest{i}")
    finally:
        client.close()


def open_orders(home: Path, server: KrakenServer) -> dict[str, int]:
    paper = paper_view(home).orders.values()
    return {"kraken": len(server.open_orders()), "paper": sum(s == "open" for s in paper)}


def kill_state(home: Path) -> dict[str, object]:
    return dict(json.loads((home / "state" / "kill_switch.json").read_text()))


def outbox_kinds(home: Path) -> list[str]:
    path = home / "ledger" / "vhc.duckdb.outbox.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line)["kind"] for line in lines if line.strip()]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_switch_crash_then_sweep_again(
    point: str, home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    rest_orders(home, "kraken", 3)
    rest_orders(home, "paper", 3)
    sends = len(kraken_server.requests_to("AddOrder"))
    assert open_orders(home, kraken_server) == {"kraken": 3, "paper": 3}
    # Kraken answers slowly, so the paper account is the one swept when the crash comes.
    kraken_server.latency = 0.5 if point == "killswitch.swept_account" else 0
    activate = ["kill-switch", "--activate", "--reason", "crash matrix"]
    run = run_vhc(home, activate, crash_at=point)
    kraken_server.latency = 0
    # 1. It crashed there: trading is blocked from the state file on; the sweep got as far as implied.
    assert run.crashed, (run.code, run.err)
    state = kill_state(home)
    assert state["active"] is True
    last = state["last_activation"]
    assert isinstance(last, dict)
    expected_open = {
        "killswitch.state_written": {"kraken": 3, "paper": 3},
        "killswitch.swept_account": {"kraken": 3, "paper": 0},
        "killswitch.before_sweep_event": {"kraken": 0, "paper": 0},
    }[point]
    assert open_orders(home, kraken_server) == expected_open
    done = point == "killswitch.before_sweep_event"
    assert last["status"] == ("ok" if done else "in_progress")
    activation_queued = point != "killswitch.state_written"
    # The activation is queued in the outbox; the sweep's own ledger visits (recording the
    # orders it cancelled) may already have drained it into the chain: once, either way.
    chained = [kind for kind, _ in control_events(home, "kill_switch.")]
    assert outbox_kinds(home) + chained == (["kill_switch.activate"] if activation_queued else [])
    code, _, err = cli(capsys, home, "trade", "buy", "BTC/USD", "0.01", "--exchange", "paper")
    assert code == 4, err  # blocked already

    # 2. Recovery: --status shows how far the sweep got; the next activation sweeps again.
    code, out, err = cli(capsys, home, "kill-switch", "--status")
    assert code == 0 and "ACTIVE" in out and f"status {last['status']}" in out, out + err
    code, out, err = cli(capsys, home, *activate)
    assert code == 0, out + err
    assert open_orders(home, kraken_server) == {"kraken": 0, "paper": 0}
    events = control_events(home, "kill_switch.")
    sweeps = [d for kind, d in events if kind == "kill_switch.sweep"]
    assert len(sweeps) == 1 and sweeps[0]["ok"] is True
    activations = [d for kind, d in events if kind == "kill_switch.activate"]
    # The first activation's event was queued before the sweep: it reaches the chain too.
    assert len(activations) == (2 if activation_queued else 1)
    assert outbox_kinds(home) == []

    # 3. The next ordinary order is refused and nothing is sent; the chain verifies.
    code, _, err = cli(
        capsys, home, "trade", "buy", "BTC/USD", "0.01", "--exchange", "kraken", "--yes"
    )
    assert code == 4, err
    assert len(kraken_server.requests_to("AddOrder")) == sends
    assert_verifies(capsys, home)


# -- imports: all rows or none, each trade once -----------------------------------------------
def trades_csv(path: Path, rows: int, padded: bool) -> Path:
    """A trades CSV; `padded` ids (" T-1 ") are not for the bulk path: the row parser takes them."""
    lines = ["timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id"]
    for i in range(rows):
        trade_id = f" T-{i} " if padded else f"T-{i}"
        lines.append(f"2025-03-01T10:{i // 60:02d}:{i % 60:02d}Z,coinbase,BTC/USD,buy,0.01,"
                     f"50000,0.5,USD,{trade_id}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("path_kind", ["bulk", pytest.param("row_by_row", marks=pytest.mark.slow)])
def test_import_crash_mid_batch_then_import_again(
    path_kind: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = trades_csv(tmp_path / "trades.csv", 120, padded=path_kind == "row_by_row")
    imported = ["--json", "ledger", "import", "--trades", str(csv_path)]
    run = run_vhc(home, imported, crash_at="ledger.import.mid_batch")
    # 1. It crashed there, with the rows written but not committed: none of them is on the record.
    assert run.crashed, (run.code, run.err)
    assert ledger_rows(home, "SELECT count(*) FROM trades") == [(0,)]
    assert control_events(home, "ledger.import") == []
    assert_verifies(capsys, home)

    # 2. Recovery is importing the file again: every row once.
    code, out, err = cli(capsys, home, *imported)
    assert code == 0, err
    assert (json.loads(out)["imported"], json.loads(out)["duplicates"]) == (120, 0)
    # 3. And the next import of the same file adds nothing.
    code, out, err = cli(capsys, home, *imported)
    assert code == 0, err
    assert (json.loads(out)["imported"], json.loads(out)["duplicates"]) == (0, 120)
    ids = [r[0] for r in ledger_rows(home, "SELECT trade_id FROM trades ORDER BY seq")]
    assert ids == [f"T-{i}" for i in range(120)]
    assert [k for k, _ in control_events(home, "ledger.import")] == ["ledger.import"] * 2
    assert_verifies(capsys, home)


# -- reconcile --auto-sync: what the exchange has and the ledger lacks, appended once ---------
def test_sync_crash_mid_batch_then_sync_again(
    home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from ccxtkit.exchanges.factory import open_exchange
    from ccxtkit.secrets import resolve_credentials

    # Trades made outside vhc (on the exchange's website, say): --auto-sync appends them.
    ws = Workspace.locate(str(home))
    client = open_exchange(ws, "kraken", resolve_credentials(ws, "kraken"))
    try:
        for i in range(3):
            client.create_order("BTC/USD", "buy", "market", D("0.01"), None, f"web{i}")
    finally:
        client.close()
    on_exchange = {t.txid for t in kraken_server.trades}
    sync = ["--json", "reconcile", "--date", "today", "--exchange", "kraken", "--auto-sync"]
    run = run_vhc(home, sync, crash_at="reconcile.sync.mid_batch")
    # 1. It crashed there, with the trades appended but not committed: none is on the record.
    assert run.crashed, (run.code, run.err)
    assert ledger_rows(home, "SELECT count(*) FROM trades") == [(0,)]
    assert control_events(home, "reconcile") == []
    assert_verifies(capsys, home)

    # 2. Recovery is the same command again: every trade appended once.
    code, out, err = cli(capsys, home, *sync)
    assert code in (0, 1), out + err  # 1: the synced trades are findings a person should see
    trades = [r[0] for r in ledger_rows(home, "SELECT trade_id FROM trades")]
    assert sorted(trades) == sorted(on_exchange)
    # 3. The next reconcile finds the ledger and the exchange in agreement.
    code, out, err = cli(
        capsys, home, "--json", "reconcile", "--date", "today", "--exchange", "kraken"
    )
    assert code == 0, out + err
    assert json.loads(out)["accounts"]["kraken"]["findings"] == []
    assert len(ledger_rows(home, "SELECT trade_id FROM trades")) == len(on_exchange)
    assert len(kraken_server.requests_to("AddOrder")) == 3  # reconcile never sends
    assert_verifies(capsys, home)


# -- ledger sync: a batch in flight is lost whole; the next run resumes from its cursor --------
def test_ledger_sync_crash_mid_batch_then_sync_again(
    home: Path, kraken_server: KrakenServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with kraken_server._lock:
        for _ in range(3):  # fills made on the exchange before vhc
            kraken_server._private_AddOrder({"pair": "XBTUSD", "type": "buy",
                                             "ordertype": "market", "volume": "0.01"})  # fmt: skip
    on_exchange = sorted(t.txid for t in kraken_server.trades)
    since = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%d")
    sync = ["--json", "ledger", "sync", "--exchange", "kraken", "--since", since]
    run = run_vhc(home, sync, crash_at="ledger.sync.mid_batch")
    # 1. It crashed there, with the fills appended but not committed: none is on the record.
    assert run.crashed, (run.code, run.err)
    assert ledger_rows(home, "SELECT count(*) FROM trades WHERE exchange = 'kraken'") == [(0,)]
    assert control_events(home, "ledger.sync") == []
    assert_verifies(capsys, home)
    # 2. Recovery is the same command again: every fill once; 3. and again adds nothing.
    for added in (3, 0):
        code, out, err = cli(capsys, home, *sync)
        assert code == 0, out + err
        assert json.loads(out)["added"]["trades"] == added
    trades = [r[0] for r in ledger_rows(home, "SELECT trade_id FROM trades ORDER BY trade_id")]
    assert trades == on_exchange
    assert len(kraken_server.requests_to("AddOrder")) == 0  # sync never sends
    assert_verifies(capsys, home)
