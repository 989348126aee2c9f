"""`vhc trade` and `vhc kill-switch --activate` as concurrent processes: nothing survives it."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccxtkit.ledger.store import open_ledger
from ccxtkit.risk import killswitch
from tests.test_killswitch import make_workspace

# A trader: `vhc trade buy` (a resting limit order) again and again until told to stop.
TRADER = """
import json, os, sys, time
from ccxtkit.cli.app import main
home, stop = sys.argv[1], sys.argv[2]
while not os.path.exists(stop):
    start = time.time()
    try:
        main(["--home", home, "trade", "buy", "BTC/USD", "0.001", "--type", "limit",
              "--price", "1000", "--exchange", "kraken", "--yes"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    print(json.dumps({"start": start, "end": time.time(), "code": code}), flush=True)
"""


@pytest.fixture
def traders():
    """Start trader processes; always stopped (and reaped) at teardown."""
    procs: list[subprocess.Popen] = []

    def start(home: Path, stop: Path, count: int) -> list[subprocess.Popen]:
        for _ in range(count):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", TRADER, str(home), str(stop)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    env=os.environ.copy(),
                )
            )
        return procs

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_no_order_is_sent_after_activation_returns(tmp_path, kraken_server, monkeypatch, traders):
    creds = kraken_server.credentials()
    monkeypatch.setenv("KRAKEN_API_KEY", creds["apiKey"])
    monkeypatch.setenv("KRAKEN_API_SECRET", creds["secret"])
    kraken_server.set_balance("USD", "1000000")
    kraken_server.set_price("BTC/USD", "60000")
    account = {
        "secrets": "env",
        "rate_limit": 1000,
        "ccxt": {**kraken_server.ccxt_config(), "timeout": 5000},
    }
    ws = make_workspace(tmp_path, {"kraken": account}, risk={"max_open_orders": 10000})
    kraken_server.latency = 0.05  # every call takes a while, so sends are in flight when it hits
    with open_ledger(ws.ledger_path, wait_seconds=5):
        pass  # created up front: first-time creation races other processes' permission check
    stop = tmp_path / "stop"
    procs = traders(tmp_path, stop, 2)

    deadline = time.time() + 30
    while len(kraken_server.orders) < 2:  # orders are flowing from the traders
        assert time.time() < deadline, "the traders never placed an order"
        time.sleep(0.05)
    activation = subprocess.run(
        [sys.executable, "-m", "ccxtkit", "--home", str(tmp_path), "--json", "kill-switch",
         "--activate", "--reason", "race drill"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=60,
    )  # fmt: skip
    returned = time.time()
    assert activation.returncode == 0, activation.stderr
    time.sleep(0.5)  # the traders keep trying after the switch
    stop.touch()
    attempts = []
    for proc in procs:
        out, _ = proc.communicate(timeout=30)
        attempts += [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    # Nothing was sent after activation returned, and nothing it could see survived it.
    placed = kraken_server.orders
    assert placed and all(o.opentm < returned for o in placed)
    assert kraken_server.open_orders() == []
    report = json.loads(activation.stdout)["accounts"][0]
    assert report["ok"] and len(report["canceled"]) >= 1
    # Every attempt that started after activation returned was refused with exit 4.
    late = [a for a in attempts if a["start"] > returned]
    assert late and {a["code"] for a in late} == {4}
    assert {a["code"] for a in attempts} <= {0, 4}
    assert killswitch.is_active(ws)
