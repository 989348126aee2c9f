"""`vhc trade`: intent before send, each order once, recovery after a crash or a lost reply."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import yaml

from ccxtkit.cli.app import main
from ccxtkit.workspace import init_workspace, write_private
from tests.crash import vhc_command
from tests.crash.agree import assert_orders_agree, intents, kraken_view
from tests.exchange_fixtures import add_kraken_account
from tests.kraken_server import KrakenServer


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run vhc in-process through main(): exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def ledger_rows(home: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(home / "ledger" / "vhc.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def paper_ws(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    init_workspace(home)
    return home


def test_market_buy_records_intent_outcome_and_fill(
    paper_ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--home", str(paper_ws), "trade", "buy", "BTC/USD", "0.01")
    assert code == 0, err
    assert "CLOSED" in out
    orders = ledger_rows(paper_ws, "SELECT client_order_id, side, amount FROM orders")
    assert len(orders) == 1 and orders[0][1] == "buy" and orders[0][2] == Decimal("0.01")
    events = ledger_rows(paper_ws, "SELECT event FROM order_events")
    assert [e[0] for e in events] == ["filled"]
    trades = ledger_rows(paper_ws, "SELECT client_order_id, amount, source FROM trades")
    assert trades == [(orders[0][0], Decimal("0.01").quantize(Decimal("1E-18")), "trade")]
    code, _, err = run(capsys, "--home", str(paper_ws), "ledger", "verify")
    assert code == 0, err


def test_dry_run_sends_and_records_nothing(
    paper_ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--home", str(paper_ws), "trade", "buy", "ETH/USD", "1", "--dry-run")
    assert code == 0
    assert "DRY RUN" in out
    assert ledger_rows(paper_ws, "SELECT count(*) FROM orders") == [(0,)]
    code, out, _ = run(capsys, "--home", str(paper_ws), "--json", "balances")
    assert '"ETH"' not in out  # nothing was bought


def test_refusal_is_exit_3_and_on_the_record(
    paper_ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--home", str(paper_ws), "trade", "buy", "BTC/USD", "1")
    assert code == 3
    assert "max_order_value" in err and "headroom" in err
    assert len(err.strip().splitlines()) == 1
    kinds = ledger_rows(paper_ws, "SELECT kind FROM control_events WHERE kind = 'order.refused'")
    assert kinds == [("order.refused",)]
    assert ledger_rows(paper_ws, "SELECT count(*) FROM orders") == [(0,)]


def test_reused_client_id_is_refused(paper_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--home", str(paper_ws), "trade", "buy", "BTC/USD", "0.01", "--client-id", "my-1")
    assert run(capsys, *args)[0] == 0
    code, _, err = run(capsys, *args)
    assert code == 2 and "already used" in err
    assert ledger_rows(paper_ws, "SELECT count(*) FROM orders") == [(1,)]


def test_bad_input_is_one_line_exit_2(paper_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (
        ("trade", "buy", "BTCUSD", "1"),
        ("trade", "buy", "BTC/USD", "-1"),
        ("trade", "buy", "BTC/USD", "abc"),
        ("trade", "buy", "BTC/USD", "1", "--type", "limit"),
        ("trade", "buy", "DOGE/USD", "1"),
        ("trade", "buy", "BTC/USD", "1", "--exchange", "nope"),
    ):
        code, _, err = run(capsys, "--home", str(paper_ws), *args)
        assert code == 2, (args, err)
        assert err.startswith("error: ") and "Traceback" not in err, err


def test_limit_order_rests_then_fill_is_recovered(
    paper_ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ccxtkit.exchanges.factory import open_exchange
    from ccxtkit.workspace import Workspace

    ws = Workspace.locate(str(paper_ws))
    open_exchange(ws, "paper").set_price("BTC/USD", Decimal("60000"))  # type: ignore[attr-defined]
    code, out, err = run(
        capsys, "--home", str(paper_ws), "trade", "buy", "BTC/USD", "0.1",
        "--type", "limit", "--price", "59000",
    )  # fmt: skip
    assert code == 0, err
    assert "OPEN" in out
    code, out, _ = run(capsys, "--home", str(paper_ws), "--json", "trade", "orders")
    assert '"status": "open"' in out
    open_exchange(ws, "paper").set_price("BTC/USD", Decimal("58000"))  # type: ignore[attr-defined]
    code, out, err = run(capsys, "--home", str(paper_ws), "trade", "recover")
    assert code == 0, err
    assert "open -> filled" in out
    trades = ledger_rows(paper_ws, "SELECT price, source FROM trades")
    assert len(trades) == 1 and trades[0][1] == "recover" and trades[0][0] <= Decimal("59000")
    code, out, _ = run(capsys, "--home", str(paper_ws), "trade", "recover")
    assert "nothing to recover" in out


def test_kill_switch_blocks_orders(paper_ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ccxtkit.risk import killswitch
    from ccxtkit.workspace import Workspace

    killswitch.activate(Workspace.locate(str(paper_ws)), reason="test")
    code, _, err = run(capsys, "--home", str(paper_ws), "trade", "buy", "BTC/USD", "0.01")
    assert code == 4 and "kill switch" in err
    assert ledger_rows(paper_ws, "SELECT count(*) FROM orders") == [(0,)]


# -- against the real ccxt client and a Kraken-protocol server -------------------------------
def test_lost_reply_order_is_found_not_resent(
    paper_ws: Path,
    kraken_server: KrakenServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_kraken_account(paper_ws, kraken_server, monkeypatch)
    kraken_server.set_balance("USD", "100000")
    kraken_server.set_price("BTC/USD", "60000")
    kraken_server.drop_reply_next("AddOrder")
    code, out, err = run(
        capsys, "--home", str(paper_ws), "trade", "buy", "BTC/USD", "0.01",
        "--exchange", "kraken", "--yes",
    )  # fmt: skip
    assert code == 0, err
    assert len(kraken_server.requests_to("AddOrder")) == 1  # sent once, never resent
    assert len(kraken_server.orders) == 1
    assert ledger_rows(paper_ws, "SELECT count(*) FROM orders") == [(1,)]
    events = [e[0] for e in ledger_rows(paper_ws, "SELECT event FROM order_events ORDER BY seq")]
    assert events == ["filled"]
    trades = ledger_rows(paper_ws, "SELECT trade_id FROM trades")
    assert [t[0] for t in trades] == [t.txid for t in kraken_server.trades]


def test_auth_error_is_exit_5_one_line(
    paper_ws: Path,
    kraken_server: KrakenServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_kraken_account(paper_ws, kraken_server, monkeypatch)
    monkeypatch.setenv("KRAKEN_API_SECRET", "d3JvbmcgYnV0IGJhc2U2NA==")
    code, _, err = run(capsys, "--home", str(paper_ws), "balances", "--exchange", "kraken")
    assert code == 5
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "d3JvbmcgYnV0IGJhc2U2NA==" not in err


@pytest.mark.slow
def test_random_kill_9_then_recover_agrees_with_exchange(
    paper_ws: Path,
    kraken_server: KrakenServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SIGKILL `vhc trade` at random moments; the named crash points are in test_crash_matrix.

    The moment is the k-th request the exchange receives, k drawn at random from each quarter
    of one order's requests, so the kills spread over the whole flow whatever the machine's
    speed, and some must land after the intent is on the record.
    """
    add_kraken_account(paper_ws, kraken_server, monkeypatch)
    kraken_server.set_balance("USD", "100000")
    kraken_server.set_price("BTC/USD", "60000")
    buy = ("--home", str(paper_ws), "trade", "buy", "BTC/USD", "0.01", "--exchange", "kraken",
           "--yes")  # fmt: skip
    assert run(capsys, *buy)[0] == 0  # a reference order: how many requests one order makes
    per_order = len(kraken_server.requests)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    kraken_server.latency = 0.05  # each request is in flight for a while when the kill lands
    after_intent = []
    for quarter in range(4):
        lo, hi = quarter * per_order // 4, (quarter + 1) * per_order // 4
        k = rng.randint(lo + 1, max(lo + 1, hi))
        base, intents_before = len(kraken_server.requests), len(intents(paper_ws, "kraken"))
        proc = subprocess.Popen(
            [*vhc_command(), *buy], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while proc.poll() is None and len(kraken_server.requests) - base < k:
            assert time.monotonic() < deadline, f"seed {seed}: no progress"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        if proc.wait() != -signal.SIGKILL:
            continue  # it finished before the kill: nothing to recover
        after_intent.append(len(intents(paper_ws, "kraken")) > intents_before)
        kraken_server.latency = 0
        code, _, err = run(capsys, "--home", str(paper_ws), "trade", "recover", "--exchange",
                           "kraken")  # fmt: skip
        assert code == 0, err
        assert_orders_agree(
            paper_ws, "kraken", kraken_view(kraken_server), {"USD": Decimal(100000)}
        )
        kraken_server.latency = 0.05
    assert any(after_intent), f"seed {seed}: no kill landed after an intent ({after_intent})"
    assert run(capsys, "--home", str(paper_ws), "ledger", "verify")[0] == 0


def test_rejections_trip_the_circuit_breaker_from_the_trade_path(
    paper_ws: Path,
    kraken_server: KrakenServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    add_kraken_account(paper_ws, kraken_server, monkeypatch)
    path = paper_ws / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["risk"]["circuit_breaker"] = {"max_failures": 3, "window_minutes": 5}
    write_private(path, yaml.safe_dump(data))
    kraken_server.set_balance("USD", "100000")
    kraken_server.set_price("BTC/USD", "60000")
    buy = ("--home", str(paper_ws), "trade", "buy", "BTC/USD", "0.00001", "--exchange", "kraken",
           "--yes")  # fmt: skip
    for _ in range(2):
        code, _, err = run(capsys, *buy)
        assert code == 5 and "minimum" in err  # the exchange rejects a dust order
    code, _, err = run(capsys, *buy)
    assert code == 5
    state = yaml.safe_load((paper_ws / "state" / "kill_switch.json").read_text())
    assert state["active"] is True and state["trigger"] == "circuit_breaker"
    code, _, err = run(capsys, *buy)
    assert code == 4  # nothing more is sent
    assert len(kraken_server.requests_to("AddOrder")) == 3
    events = ledger_rows(paper_ws, "SELECT event FROM order_events")
    assert [e[0] for e in events] == ["rejected"] * 3


def test_trading_log_records_orders_and_masks_codes(
    paper_ws: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--home", str(paper_ws), "trade", "buy", "BTC/USD", "0.01")[0] == 0
    assert run(capsys, "--home", str(paper_ws), "trade", "buy", "BTC/USD", "50")[0] == 3
    run(capsys, "--home", str(paper_ws), "kill-switch", "--deactivate", "--auth-code", "424242")
    log_path = paper_ws / "logs" / "trading.log"
    text = log_path.read_text()
    assert "order intent" in text and "closed, filled 0.01" in text
    assert "order refused on paper" in text and "trade buy BTC/USD 50 -> exit 3" in text
    assert "424242" not in text and "--auth-code ***" in text
    assert oct(log_path.stat().st_mode & 0o777) == "0o600"
