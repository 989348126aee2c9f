"""The kill switch: blocks at once, sweeps every account concurrently, survives a busy ledger."""

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
import yaml

from ccxtkit.errors import KillSwitchActiveError
from ccxtkit.exchanges.factory import open_exchange
from ccxtkit.ledger.outbox import outbox_path
from ccxtkit.ledger.store import open_ledger
from ccxtkit.risk import killswitch
from ccxtkit.secrets import resolve_credentials
from ccxtkit.workspace import Workspace, write_private
from tests.exchange_fixtures import vhc


# -- helpers shared with test_totp / test_killswitch_trade ------------------------------------
def make_workspace(home: Path, accounts: dict, secrets_backend="env", risk=None) -> Workspace:
    """Write a config with these accounts and return a fresh Workspace on it."""
    cfg = {
        "version": "1.0",
        "exchanges": accounts,
        "secrets": {"backend": secrets_backend},
        "risk": risk or {},
    }
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    return Workspace.locate(str(home))


def run_cli(ws: Workspace, args: list[str], capsys) -> tuple[int, str, str]:
    """Run `vhc --home WS ARGS` in-process; returns (exit code, stdout, stderr)."""
    return vhc(capsys, ws, *args)


def place_resting(ws: Workspace, name: str, count: int) -> list[str]:
    """Rest `count` far-from-market limit buys on account `name`; returns their ids."""
    client = open_exchange(ws, name, resolve_credentials(ws, name))
    try:
        ids = []
        for _ in range(count):
            cid = "t" + uuid.uuid4().hex[:16]
            order = client.create_order("BTC/USD", "buy", "limit", D("0.001"), D("1000"), cid)
            assert order.status == "open"
            ids.append(order.id)
        return ids
    finally:
        client.close()


def open_ids(ws: Workspace, name: str) -> list[str]:
    client = open_exchange(ws, name, resolve_credentials(ws, name))
    try:
        return [o.id for o in client.fetch_open_orders()]
    finally:
        client.close()


def paper(**settings) -> dict:
    return {"id": "paper", "paper": settings} if settings else {"id": "paper"}


# -- concurrency, failure report, every cancellable order cancelled ----------------------------
def test_activation_sweeps_accounts_concurrently(tmp_path, kraken_server, monkeypatch, capsys):
    monkeypatch.setenv("KRAKEN_API_KEY", kraken_server.api_key)
    monkeypatch.setenv("KRAKEN_API_SECRET", kraken_server.api_secret)
    kraken_server.set_balance("USD", 100000)
    kraken = {"id": "kraken", "secrets": "env", "ccxt": kraken_server.ccxt_config()}
    plain = {"fast": paper(), "slow": paper(), "broken": paper(), "kraken": kraken}
    ws = make_workspace(tmp_path, plain)
    placed = {name: place_resting(ws, name, 3) for name in plain}
    assert len(kraken_server.open_orders()) == 3

    # Now make them slow and failing, as exchanges are on a bad day.
    faulty = {
        "fast": paper(latency_ms=50),
        "slow": paper(latency_ms=300),
        "broken": paper(fail_calls=True),
        "kraken": kraken,
    }
    ws_faulty = make_workspace(tmp_path, faulty)
    kraken_server.latency = 0.15
    code, out, err = run_cli(
        ws_faulty, ["--json", "kill-switch", "--activate", "--reason", "drill"], capsys
    )
    kraken_server.latency = 0.0
    doc = json.loads(out)
    assert code == 5, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken" in errors[0]  # one line, naming the failed account
    by_name = {a["account"]: a for a in doc["accounts"]}
    assert not by_name["broken"]["ok"] and "did not answer" in by_name["broken"]["errors"][0]
    for name in ("fast", "slow", "kraken"):
        assert by_name[name]["ok"], by_name[name]
        assert sorted(by_name[name]["canceled"]) == sorted(placed[name])
    # Concurrent: about the slowest healthy account, far from the sum of them all.
    seconds = {n: a["seconds"] for n, a in by_name.items()}
    slowest = max(seconds["slow"], seconds["kraken"])
    assert seconds["slow"] >= 0.3  # one call at 300 ms: the cancel-all answers its ids
    assert seconds["kraken"] >= 0.3  # list, cancel all: two calls at 150 ms
    assert doc["seconds"] < slowest + 0.4, seconds
    assert doc["seconds"] < 0.75 * sum(seconds.values()), seconds

    # Verify on the exchanges themselves.
    ws_plain = make_workspace(tmp_path, plain)
    assert open_ids(ws_plain, "fast") == [] and open_ids(ws_plain, "slow") == []
    assert kraken_server.open_orders() == []
    assert sorted(open_ids(ws_plain, "broken")) == sorted(placed["broken"])  # not cancellable
    state = killswitch.read_state(ws_plain)
    assert state.active and state.trigger == "manual" and state.reason == "drill"
    assert state.last_activation["status"] == "failed"
    assert set(state.last_activation["accounts"]) == set(plain)
    mode = killswitch.state_path(ws_plain).stat().st_mode & 0o777
    assert mode == 0o600


def test_state_blocks_orders_before_the_sweep_ends(tmp_path):
    ws = make_workspace(tmp_path, {"slow": paper(latency_ms=600)})
    assert not killswitch.is_active(ws)  # never activated: allowed, and the state file written
    killswitch.ensure_trading_allowed(ws)
    started = time.monotonic()
    worker = threading.Thread(target=killswitch.activate, args=(ws, "key leak"))
    worker.start()
    try:
        while not killswitch.is_active(ws):
            assert time.monotonic() - started < 0.5
            time.sleep(0.005)
        blocked_after = time.monotonic() - started
        assert worker.is_alive()  # the sweep (two 600 ms calls) is still running
        with pytest.raises(KillSwitchActiveError, match="key leak.*--deactivate") as info:
            killswitch.ensure_trading_allowed(ws)
        assert info.value.exit_code == 4
    finally:
        worker.join()
    assert blocked_after < 0.3


def test_unreadable_state_fails_closed(tmp_path):
    ws = make_workspace(tmp_path, {"p": paper()})
    ws.ensure_private_dir(ws.state_dir)
    write_private(killswitch.state_path(ws), "{broken")
    assert killswitch.is_active(ws)
    with pytest.raises(KillSwitchActiveError, match="unreadable"):
        killswitch.ensure_trading_allowed(ws)
    killswitch.activate(ws, "repair")  # activation repairs it
    assert killswitch.read_state(ws).reason == "repair"


# -- the ledger busy ---------------------------------------------------------------------------
HOLDER = """
import sys
from pathlib import Path
from ccxtkit.ledger.store import open_ledger
with open_ledger(Path(sys.argv[1]), wait_seconds=5):
    print("ready", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def ledger_holder():
    """Start a process that holds a ledger's lock until stopped; always stopped at teardown."""
    procs = []

    def start(path: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_activation_while_another_process_holds_the_ledger(tmp_path, ledger_holder, capsys):
    ws = make_workspace(tmp_path, {"p": paper()})
    place_resting(ws, "p", 2)
    holder = ledger_holder(ws.ledger_path)
    started = time.monotonic()
    code, out, err = run_cli(ws, ["--json", "kill-switch", "--activate", "--reason", "x"], capsys)
    elapsed = time.monotonic() - started
    assert code == 0, err
    doc = json.loads(out)
    assert doc["recorded_in"] == "outbox" and doc["state"]["active"]
    assert elapsed < 2.0  # never waits the ledger's 30 s lock wait
    assert killswitch.is_active(ws) and open_ids(ws, "p") == []
    queued = outbox_path(ws.ledger_path).read_text().splitlines()
    assert [json.loads(line)["kind"] for line in queued] == [
        "kill_switch.activate",
        "kill_switch.sweep",
    ]
    # The holder leaves; the next process to open the ledger moves the events into the chain.
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=10) == 0
    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        kinds = [r[0] for r in ledger.query("SELECT kind FROM control_events ORDER BY seq")]
    assert kinds.count("kill_switch.activate") == 1 and kinds.count("kill_switch.sweep") == 1
    assert outbox_path(ws.ledger_path).stat().st_size == 0
    code, _, err = run_cli(ws, ["ledger", "verify"], capsys)
    assert code == 0, err


# -- status, usage, flatten, --check -----------------------------------------------------------
def test_status_exit_zero_either_way(tmp_path, capsys):
    ws = make_workspace(tmp_path, {"p": paper()})
    code, out, _ = run_cli(ws, ["--json", "kill-switch", "--status"], capsys)
    assert code == 0 and json.loads(out)["active"] is False
    code, out, _ = run_cli(ws, ["kill-switch", "--status"], capsys)
    assert code == 0 and "inactive" in out
    place_resting(ws, "p", 1)
    killswitch.activate(ws, "audit finding", flatten=False)
    code, out, _ = run_cli(ws, ["--json", "kill-switch", "--status"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["active"] and doc["reason"] == "audit finding"
    assert doc["trigger"] == "manual" and doc["since"]
    assert len(doc["last_activation"]["accounts"]["p"]["canceled"]) == 1
    code, out, _ = run_cli(ws, ["kill-switch", "--status"], capsys)
    assert code == 0 and "ACTIVE since" in out and "audit finding" in out


def test_usage_errors(tmp_path, capsys):
    ws = make_workspace(tmp_path, {"p": paper()})
    code, _, err = run_cli(ws, ["kill-switch"], capsys)
    assert code == 2 and "choose one of" in err
    code, _, err = run_cli(ws, ["kill-switch", "--activate"], capsys)
    assert code == 2 and "--reason" in err
    code, _, err = run_cli(ws, ["kill-switch", "--status", "--check"], capsys)
    assert code == 2
    assert not killswitch.is_active(ws)


def test_flatten_sells_holdings_down_to_dust(tmp_path, capsys):
    ws = make_workspace(tmp_path, {"p": paper()})
    client = open_exchange(ws, "p")
    client.create_order("BTC/USD", "buy", "market", D("0.01"), None, "buy-btc-1")
    client.create_order("ETH/USD", "buy", "market", D("0.5"), None, "buy-eth-1")
    assert client.fetch_balance()["BTC"].free == D("0.01")
    code, out, err = run_cli(
        ws, ["--json", "kill-switch", "--activate", "--reason", "r", "--flatten"], capsys
    )
    assert code == 0, err
    closed = {c["asset"]: c for c in json.loads(out)["accounts"][0]["closed"]}
    assert closed["BTC"]["amount"] == "0.01" and closed["BTC"]["status"] == "closed"
    assert closed["ETH"]["amount"] == "0.5"
    balances = client.fetch_balance()
    dust = ws.config.exchange("p").dust
    for asset in ("BTC", "ETH"):
        assert asset not in balances or balances[asset].total <= dust
    assert balances["USD"].total > 0


def _failures(ws: Workspace, count: int, now: datetime) -> None:
    rows = [
        {
            "timestamp": now - timedelta(seconds=10 + i),
            "client_order_id": f"c{i}",
            "exchange": "p",
            "event": "rejected",
            "status": "rejected",
        }
        for i in range(count)
    ]
    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        ledger.append("order_events", rows)


def test_check_trips_the_circuit_breaker(tmp_path, capsys):
    ws = make_workspace(tmp_path, {"p": paper()})
    now = datetime.now(UTC)
    _failures(ws, 9, now)
    code, out, _ = run_cli(ws, ["--json", "kill-switch", "--check"], capsys)
    assert code == 0 and json.loads(out)["fired"] == []
    assert not killswitch.is_active(ws)
    _failures(ws, 1, now)
    code, out, err = run_cli(ws, ["--json", "kill-switch", "--check"], capsys)
    doc = json.loads(out)
    assert code == 1, err
    assert [f["trigger"] for f in doc["fired"]] == ["circuit_breaker"]
    state = killswitch.read_state(ws)
    assert state.active and state.trigger == "circuit_breaker" and "10 failed" in state.reason
    code, _, _ = run_cli(ws, ["kill-switch", "--check"], capsys)
    assert code == 4  # already active: trading halted until someone deactivates


def test_check_respects_kill_switch_enabled(tmp_path, capsys):
    ws = make_workspace(tmp_path, {"p": paper()}, risk={"kill_switch_enabled": False})
    _failures(ws, 20, datetime.now(UTC))
    code, _, _ = run_cli(ws, ["kill-switch", "--check"], capsys)
    assert code == 0 and not killswitch.is_active(ws)
