"""Risk limits through `vhc trade` on the paper exchange: worst-price valuation, and resting
and in-flight orders counted against position, daily volume and open-order limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from ccxtkit.cli.app import main
from ccxtkit.workspace import Workspace, init_workspace


def run(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    """Run vhc in-process through main(): exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--home", str(home), *args])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(home / "ledger" / "vhc.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def workspace(
    tmp_path: Path,
    balances: dict[str, str] | None = None,
    risk: dict[str, Any] | None = None,
    paper: dict[str, Any] | None = None,
    prices: dict[str, str] | None = None,
) -> Path:
    """A paper workspace with the given starting balances, risk settings and fixed prices."""
    from importlib.resources import files

    home = tmp_path / "ws"
    example = files("ccxtkit").joinpath("data/trading_config.example.yaml").read_text("utf-8")
    data = yaml.safe_load(example)
    settings = data["exchanges"]["paper"].setdefault("paper", {})
    settings["starting_balances"] = balances or {"USD": "100000"}
    settings.update(paper or {})
    data["risk"] = {**data.get("risk", {}), **(risk or {})}
    # Written at init, so the paper account opens (and is recorded) with these balances.
    init_workspace(home, yaml.safe_dump(data))
    set_prices(home, prices or {"BTC/USD": "60000", "ETH/USD": "3000", "ETH/BTC": "0.05"})
    return home


def set_prices(home: Path, prices: dict[str, str]) -> None:
    from ccxtkit.exchanges.factory import open_exchange

    exchange = open_exchange(Workspace.locate(str(home)), "paper")
    for symbol, price in prices.items():
        exchange.set_price(symbol, D(price))  # type: ignore[attr-defined]


# -- finding 1: every order is valued at the worst price it can fill at ---------------------
def test_marketable_limit_sell_is_valued_at_the_bid_not_its_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = workspace(tmp_path, {"USD": "100000", "BTC": "1"})
    code, _, err = run(
        capsys, home, "trade", "sell", "BTC/USD", "0.32", "--type", "limit", "--price", "0.01"
    )
    assert code == 3, err
    assert "max_order_value" in err and "$19,1" in err  # 0.32 x the bid, not 0.32 x $0.01
    assert rows(home, "SELECT count(*) FROM orders") == [(0,)]
    # A limit sell above the bid is valued at its limit.
    code, _, err = run(
        capsys, home, "trade", "sell", "BTC/USD", "0.1", "--type", "limit", "--price", "90000"
    )
    assert code == 0, err
    code, _, err = run(
        capsys, home, "trade", "sell", "BTC/USD", "0.12", "--type", "limit", "--price", "90000"
    )
    assert code == 3 and "max_order_value" in err and "$10,800.00" in err


def test_market_buy_is_valued_at_the_ask(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 10000 / 60000 = 0.16666: at the last price 0.1666 passes; at the ask (+5 bps) it does not.
    home = workspace(tmp_path, risk={"max_order_value": "10000"})
    code, _, err = run(capsys, home, "--json", "trade", "buy", "BTC/USD", "0.16662", "--dry-run")
    assert code == 3, err
    assert "max_order_value" in err
    code, _, err = run(capsys, home, "trade", "buy", "BTC/USD", "0.1665", "--dry-run")
    assert code == 0, err


def test_limit_sell_for_btc_at_a_tiny_price_counts_the_btc_it_acquires(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 0.4 BTC = $24,000 of a $25,000 cap; selling 1 ETH at any limit fills at the bid (~0.05 BTC).
    home = workspace(tmp_path, {"USD": "10000", "BTC": "0.4", "ETH": "10"})
    code, _, err = run(
        capsys, home, "trade", "sell", "ETH/BTC", "1", "--type", "limit", "--price", "0.00001"
    )
    assert code == 3, err
    assert "max_position_size" in err and "BTC position" in err
    assert rows(home, "SELECT count(*) FROM orders") == [(0,)]
    code, _, err = run(
        capsys, home, "trade", "sell", "ETH/BTC", "0.3", "--type", "limit", "--price", "0.00001"
    )
    assert code == 0, err


# -- finding 2: resting and in-flight orders count ------------------------------------------
def test_resting_limit_buys_count_against_the_position_and_cancel_releases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = workspace(tmp_path)
    limit = ("--type", "limit", "--price", "59000")
    ok = [run(capsys, home, "--json", "trade", "buy", "BTC/USD", "0.16", *limit) for _ in range(2)]
    assert [c for c, _, _ in ok] == [0, 0], ok
    code, _, err = run(capsys, home, "trade", "buy", "BTC/USD", "0.16", *limit)
    assert code == 3, err
    # Two resting 0.16 BTC at the $60,000 market = $19,200 already counted.
    assert "max_position_size" in err and "$19,200.00" in err and "open orders" in err
    code, out, _ = run(capsys, home, "--json", "trade", "orders")
    open_ids = [o["client_order_id"] for o in json.loads(out)]
    assert len(open_ids) == 2
    code, _, err = run(capsys, home, "trade", "cancel", open_ids[0])
    assert code == 0, err
    # The cancelled order's headroom is released.
    code, _, err = run(capsys, home, "trade", "buy", "BTC/USD", "0.16", *limit)
    assert code == 0, err


def test_resting_orders_count_against_daily_volume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = workspace(tmp_path, risk={"max_daily_volume": "20000", "max_position_size": "1E9"})
    limit = ("--type", "limit", "--price", "50000")
    assert run(capsys, home, "trade", "buy", "BTC/USD", "0.15", *limit)[0] == 0  # $7,500
    assert run(capsys, home, "trade", "buy", "BTC/USD", "0.15", *limit)[0] == 0  # $15,000
    code, _, err = run(capsys, home, "trade", "buy", "BTC/USD", "0.15", *limit)
    assert code == 3 and "max_daily_volume" in err and "open orders" in err


def test_concurrent_market_buys_with_latency_share_one_headroom(tmp_path: Path) -> None:
    home = workspace(tmp_path, paper={"latency_ms": "150"})
    env = {**os.environ, "VHC_HOME": str(home)}
    vhc = [str(Path(sys.executable).with_name("vhc"))]
    procs = [
        subprocess.Popen(
            [*vhc, "trade", "buy", "BTC/USD", "0.16"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    for p in procs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    codes = sorted(c for c, _ in results)
    # $9,600 each against a $25,000 cap: two fit, the other four are refused (exit 3).
    assert codes == [0, 0, 3, 3, 3, 3], results
    assert all("max_position_size" in e for c, e in results if c == 3)
    ((btc,),) = rows(home, "SELECT sum(amount) FROM trades WHERE asset = 'BTC'")
    assert btc == D("0.32")
