"""Start-up: each command loads only what it needs, and the kill switch blocks before ccxt loads.

The subprocess tests put tests/startup on PYTHONPATH: its sitecustomize notes, in the real
`vhc` process, which modules were imported and what the kill switch's state file said when
`import ccxt` began.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ccxtkit.risk.killswitch import state_path
from ccxtkit.workspace import Workspace
from tests.kraken_server import KrakenServer
from tests.test_killswitch import make_workspace, paper, place_resting

HARNESS = Path(__file__).parent / "startup"
VHC = str(Path(sys.executable).with_name("vhc"))
HEAVY = (
    "ccxt",
    "duckdb",
    "pydantic",
    "pyarrow",
    "hvac",
    "boto3",
    "prometheus_client",
    "yaml",
    "starlette",
    "uvicorn",
    "jwt",
)


def test_help_imports_no_heavy_library() -> None:
    # The whole typer tree (every command module), as `vhc --help` builds it.
    code = (
        "import sys, ccxtkit.cli.app, ccxtkit.cli.root\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def watched(tmp_path: Path, home: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    """Run `vhc --home HOME ARGS` under the harness; its exit code, stderr and what it imported."""
    out = tmp_path / f"imports-{len(list(tmp_path.glob('imports-*')))}.json"
    ws = Workspace.locate(str(home))
    run_env = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": str(HARNESS),
        "VHC_TEST_IMPORTS_OUT": str(out),
        "VHC_TEST_STATE_FILE": str(state_path(ws)),
    }
    done = subprocess.run(
        [VHC, "--home", str(home), *args], capture_output=True, text=True, env=run_env, timeout=120
    )
    seen = json.loads(out.read_text("utf-8"))
    return {"code": done.returncode, "err": done.stderr, "out": done.stdout, **seen}


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace from `vhc init` (paper account only) with a few paper trades in its ledger."""
    home = tmp_path_factory.mktemp("startup") / "ws"
    subprocess.run([VHC, "init", str(home)], check=True, capture_output=True)
    trade = [VHC, "--home", str(home), "trade", "buy", "BTC/USD", "0.01"]
    subprocess.run(trade, check=True, capture_output=True)
    return home


#: Commands that never talk to an exchange, with the exit code each gives on `offline`.
OFFLINE_COMMANDS = [
    (["ledger", "verify"], 0),
    (["ledger", "digest"], 0),
    (["ledger", "log"], 0),
    (["ledger", "export"], 0),
    (["config", "validate"], 0),
    (["config", "show"], 0),
    (["config", "diff"], 0),
    (["totp", "list"], 0),
    (["kill-switch", "--status"], 0),
    (["kill-switch", "--check"], 0),
    (["--json", "kill-switch", "--check"], 0),
    (["tax-report", "--year", "2025"], 0),
    (["doctor"], None),  # its own findings decide the code; paper only: no exchange library
    (["--help"], 0),
]


@pytest.mark.parametrize(("args", "expected"), OFFLINE_COMMANDS, ids=lambda v: str(v))
def test_commands_that_do_not_talk_to_an_exchange_never_import_ccxt(
    tmp_path: Path, offline: Path, args: list[str], expected: int | None
) -> None:
    run = watched(tmp_path, offline, *args)
    assert expected is None or run["code"] == expected, run["err"]
    assert "ccxt" not in run["modules"]
    assert "ccxtkit" in run["modules"]  # the harness saw the real process


def test_kill_switch_check_loads_neither_typer_nor_rich(tmp_path: Path, offline: Path) -> None:
    # The every-minute cron job: no CLI framework, no terminal renderer, no exchange library.
    for args in (["kill-switch", "--check"], ["-q", "kill-switch", "--check", "--timeout", "5"]):
        run = watched(tmp_path, offline, *args)
        assert run["code"] == 0, run["err"]
        assert not {"typer", "rich", "ccxt"} & set(run["modules"]), args
        assert run["out"] == ("no trigger fired\n" if "-q" not in args else "")
    # A spelling the fast path does not take goes through typer, with typer's message.
    run = watched(tmp_path, offline, "kill-switch", "--check", "--timeout", "0")
    assert run["code"] == 2 and "--timeout" in run["err"] and "typer" in run["modules"]


def test_ledger_verify_loads_neither_typer_nor_rich(tmp_path: Path, offline: Path) -> None:
    # The nightly whole-file check: its start-up counts against its rows per second.
    digest = tmp_path / "digest.json"
    done = subprocess.run(
        [VHC, "--home", str(offline), "ledger", "digest", "--output", str(digest)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for args in (["ledger", "verify"], ["--json", "ledger", "verify", "--digest", str(digest)]):
        run = watched(tmp_path, offline, *args)
        assert run["code"] == 0, run["err"]
        assert not {"typer", "rich", "ccxt"} & set(run["modules"]), args
    assert watched(tmp_path, offline, "ledger", "verify")["out"].startswith("ledger OK: ")
    # Anything else (here a digest file that is not there) gives the same answer as before.
    run = watched(tmp_path, offline, "ledger", "verify", "--digest", str(tmp_path / "none"))
    assert run["code"] == 2 and "not found" in run["err"]
    run = watched(tmp_path, offline, "ledger", "verify", "--help")
    assert run["code"] == 0 and "typer" in run["modules"]


def test_ledger_import_of_trades_loads_neither_typer_nor_rich(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    subprocess.run([VHC, "init", str(home)], check=True, capture_output=True)
    csv = tmp_path / "trades.csv"
    csv.write_text(
        "timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id\n"
        "2025-01-02T03:04:05Z,kraken,BTC/USD,buy,0.5,40000,1.5,USD,K-1\n",
        encoding="utf-8",
    )
    run = watched(tmp_path, home, "ledger", "import", "--trades", str(csv))
    assert run["code"] == 0, run["err"]
    assert run["out"] == f"{csv}: 1 rows, 1 imported, 0 already in the ledger\n"
    assert not {"typer", "rich", "ccxt"} & set(run["modules"])
    again = watched(tmp_path, home, "--json", "ledger", "import", "--trades", str(csv))
    assert again["code"] == 0 and '"duplicates": 1' in again["out"]
    piped = subprocess.run(
        [VHC, "--home", str(home), "ledger", "import", "--trades", "-"],
        input=csv.read_text("utf-8"), capture_output=True, text=True,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "-: 1 rows, 0 imported, 1 already in the ledger\n"  # not a temp path
    # --from (an exchange's export) and mistakes go through typer, with its messages.
    run = watched(tmp_path, home, "ledger", "import", "--trades")
    assert run["code"] == 2 and "typer" in run["modules"]


def test_kill_switch_state_is_written_before_ccxt_is_imported(
    tmp_path: Path, kraken_server: KrakenServer
) -> None:
    kraken_server.set_balance("USD", 100000)
    env = {"KRAKEN_API_KEY": kraken_server.api_key, "KRAKEN_API_SECRET": kraken_server.api_secret}
    os.environ.update(env)  # place_resting below resolves the keys in this process
    try:
        kraken = {"id": "kraken", "secrets": "env", "ccxt": kraken_server.ccxt_config()}
        ws = make_workspace(tmp_path / "ws", {"kraken": kraken, "p": paper()})
        place_resting(ws, "kraken", 2)
    finally:
        for key in env:
            os.environ.pop(key, None)
    assert not state_path(ws).exists() or not json.loads(state_path(ws).read_text())["active"]
    run = watched(
        tmp_path, ws.home, "--json", "kill-switch", "--activate", "--reason", "drill", env=env
    )
    assert run["code"] == 0, run["err"]
    assert "ccxt" in run["modules"], "the Kraken account's sweep must have loaded ccxt"
    assert run["ccxt"]["state_active"] is True, run["ccxt"]  # blocked before ccxt began
    assert "typer" not in run["modules"]  # the fast path: no CLI framework before the write
    # Nor the config model or the ledger's database: the state file is the first thing done.
    assert run["pydantic"]["state_active"] is True and run["duckdb"]["state_active"] is True
    assert json.loads(run["out"])["state"]["reason"] == "drill"
    assert kraken_server.open_orders() == []
