"""`vhc ledger import --from coinbase|kraken|binanceus FILE`: each exchange's own history export,
mapped to trades and transfers, each once, and the same trade from the file and from
`ledger sync` recorded once."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from ccxtkit.workspace import init_workspace
from tests.exchange_fixtures import add_kraken_account
from tests.kraken_server import KrakenServer
from tests.test_ledger_sync import Clock, at, fill
from tests.test_reconcile_paper import rows, run

DATA = Path(__file__).parent / "data" / "exports"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    init_workspace(ws)
    return ws


def imp(capsys: pytest.CaptureFixture[str], home: Path, source: str, path: Path,
        *extra: str) -> tuple[int, Any, str]:  # fmt: skip
    code, out, err = run(capsys, "--home", str(home), "--json", "ledger", "import", "--from",
                         source, str(path), *extra)  # fmt: skip
    return code, json.loads(out) if out.strip() else None, err


def trades(home: Path, exchange: str) -> list[tuple[Any, ...]]:
    return rows(
        home,
        "SELECT trade_id, symbol, side, amount, cost, fee, fee_currency FROM trades "
        f"WHERE exchange = '{exchange}' ORDER BY timestamp, trade_id",
    )


def transfers(home: Path, exchange: str) -> list[tuple[Any, ...]]:
    return rows(
        home,
        "SELECT transfer_id, kind, asset, amount, coalesce(fee, 0), notes FROM transfers "
        f"WHERE exchange = '{exchange}' ORDER BY timestamp",
    )


def test_kraken_ledgers_export(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, err = imp(capsys, home, "kraken", DATA / "kraken_ledgers.csv")
    assert code == 0, err
    assert (doc["rows"], doc["added"], doc["known"]) == (9, 5, 0)
    assert doc["skipped"] == {"transfer/spottostaking (between wallets of the account)": 1,
                              "transfer/stakingfromspot (between wallets of the account)": 1}  # fmt: skip
    assert trades(home, "kraken") == [
        ("TBUY01-BBBBB-CCCCCC", "BTC/USD", "buy", D("0.1"), D(4000), D("10.4"), "USD"),
        ("TSEL01-BBBBB-CCCCCC", "BTC/USD", "sell", D("0.04"), D(2400), D("6.24"), "USD"),
    ]
    got = transfers(home, "kraken")
    assert [g[:5] for g in got] == [
        ("FTdepositUSD0000000000000001", "deposit", "USD", D(10000), D(0)),
        ("LSTK03-AAAAA-AAAAAA", "deposit", "ETH", D("0.0025"), D(0)),
        ("FTwithdrawBTC00000000000000001", "withdrawal", "BTC", D("0.05"), D("0.0001")),
    ]
    assert "staking reward" in got[1][5]
    price = rows(home, "SELECT price FROM trades WHERE trade_id = 'TBUY01-BBBBB-CCCCCC'")
    assert price == [(D(40000),)]  # derived from the ledger's cost and amount
    # The same file again: nothing twice.
    code, doc, err = imp(capsys, home, "kraken", DATA / "kraken_ledgers.csv")
    assert code == 0, err
    assert (doc["added"], doc["known"]) == (0, 5)
    assert len(trades(home, "kraken")) == 2 and len(transfers(home, "kraken")) == 3


def test_coinbase_transaction_history(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, err = imp(capsys, home, "coinbase", DATA / "coinbase_transactions.csv")
    assert code == 0, err
    assert (doc["rows"], doc["added"]) == (7, 8)  # the conversion is two fills
    assert trades(home, "coinbase") == [
        ("65a1000000000000000000a2", "BTC/USD", "buy", D("0.1"), D(4500), D("49.99"), "USD"),
        ("65a1000000000000000000a4", "BTC/USDC", "sell", D("0.04"), D(2800), D("11.2"), "USDC"),
        ("65a1000000000000000000a5-buy", "ETH/USD", "buy", D("0.2"), D(650), D(0), None),
        ("65a1000000000000000000a5-sell", "BTC/USD", "sell", D("0.01"), D(650), D(0), None),
    ]
    got = transfers(home, "coinbase")
    assert [g[1:4] for g in got] == [
        ("deposit", "USD", D(5000)), ("deposit", "ETH", D("0.01")),
        ("withdrawal", "BTC", D("0.02")), ("deposit", "ETH", D("0.5")),
    ]  # fmt: skip
    assert "cost_basis_usd=23.00" in got[1][5]  # staking income at its value when received
    code, doc, err = imp(capsys, home, "coinbase", DATA / "coinbase_transactions.csv")
    assert (code, doc["added"], doc["known"]) == (0, 0, 8)


def test_binanceus_transaction_history(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, err = imp(capsys, home, "binanceus", DATA / "binanceus_transactions.csv")
    assert code == 0, err
    assert (doc["rows"], doc["added"]) == (7, 6)
    assert trades(home, "binanceus") == [
        ("5000001", "BTC/USD", "buy", D("0.2"), D(8000), D(8), "USD"),
        ("5000002", "BTC/USD", "sell", D("0.05"), D(2500), D("2.5"), "USD"),
        ("900000005", "BTC/ETH", "sell", D("0.01"), D("0.2"), D(0), None),
    ]
    got = transfers(home, "binanceus")
    assert [g[:5] for g in got] == [
        ("900000001", "deposit", "USD", D(10000), D(0)),
        ("900000002", "deposit", "ETH", D("0.004"), D(0)),
        ("900000004", "withdrawal", "BTC", D("0.1"), D("0.0002")),
    ]
    assert "cost_basis_usd=12.34" in got[1][5]
    assert doc["skipped"] == {"Staking/Stake (between wallets of the account)": 1}


def test_unknown_row_types_are_listed_and_the_rest_imported(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cb.csv"
    shutil.copy(DATA / "coinbase_transactions.csv", path)
    with open(path, "a") as f:
        f.write("65a1000000000000000000b1,2024-06-01 00:00:00 UTC,Mystery Airdrop,XYZ,5,USD,"
                "$0.10,$0.50,$0.50,$0.00,\n")  # fmt: skip
    code, out, err = run(capsys, "--home", str(home), "ledger", "import", "--from", "coinbase",
                         str(path))  # fmt: skip
    assert code == 1, out + err
    assert "Mystery Airdrop (line 12)" in err and "not imported" in err
    assert len(trades(home, "coinbase")) == 4  # everything it understood is recorded
    assert rows(home, "SELECT count(*) FROM transfers WHERE asset = 'XYZ'") == [(0,)]


def test_a_bad_value_names_the_file_and_line(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bus.csv"
    text = (
        (DATA / "binanceus_transactions.csv")
        .read_text()
        .replace(",USD,8000,8000,", ",USD,8k,8000,")
    )
    path.write_text(text)
    code, out, err = run(capsys, "--home", str(home), "ledger", "import", "--from", "binanceus",
                         str(path))  # fmt: skip
    assert code == 2, out + err
    assert f"{path}:3:" in err and "not a number" in err and "Traceback" not in err
    assert rows(home, "SELECT count(*) FROM trades WHERE exchange = 'binanceus'") == [(0,)]
    code, out, err = run(capsys, "--home", str(home), "ledger", "import", "--from", "gemini",
                         str(path))  # fmt: skip
    assert code == 2 and "coinbase, kraken, binanceus" in err


def kraken_ledgers_export(server: KrakenServer, path: Path) -> None:
    """The server's ledger as Kraken's "Ledgers" CSV export writes it."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
        w.writerow(["txid", "refid", "time", "type", "subtype", "aclass", "asset", "wallet",
                    "amount", "fee", "balance"])  # fmt: skip
        for e in server.ledger:
            when = datetime.fromtimestamp(e["time"], UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            w.writerow([e["id"], e["refid"], when, e["type"], e["subtype"], e["aclass"],
                        e["asset"], "spot / main", e["amount"], e["fee"], e["balance"]])  # fmt: skip


@pytest.mark.parametrize("first", ["import", "sync"])
def test_import_and_sync_of_the_same_trades_record_them_once(
    first: str, home: Path, tmp_path: Path, kraken_server: KrakenServer,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    add_kraken_account(home, kraken_server, monkeypatch)
    clock = Clock("2024-01-01T00:00:00")
    kraken_server.clock = clock
    kraken_server.add_deposit("USD", "100000", when=at("2024-01-02T00:00:00"))
    ids = [fill(kraken_server, clock, f"2024-02-{d:02d}T10:00:00", side, "0.0123457", px)
           for d, side, px in ((1, "buy", "40000.1"), (2, "buy", "41234.5"), (9, "sell", "45000.7"))]  # fmt: skip
    kraken_server.add_withdrawal("USD", "250", fee="5", when=at("2024-03-01T00:00:00"))
    clock.set("2024-04-01T00:00:00")
    export = tmp_path / "ledgers.csv"
    kraken_ledgers_export(kraken_server, export)

    def do(step: str) -> dict[str, Any]:
        if step == "import":
            code, doc, err = imp(capsys, home, "kraken", export)
            assert code == 0, err
            return {"trades": doc["added"]}
        code, out, err = run(capsys, "--home", str(home), "--json", "ledger", "sync",
                             "--exchange", "kraken", "--since", "2024-01-01")  # fmt: skip
        assert code == 0, out + err
        return dict(json.loads(out)["added"])

    second = "sync" if first == "import" else "import"
    assert sum(do(first).values()) == 5  # 3 fills, a deposit and a withdrawal
    assert sum(do(second).values()) == 0  # the same ones, by the exchange's own ids
    assert sorted(r[0] for r in trades(home, "kraken")) == sorted(ids)
    assert len(transfers(home, "kraken")) == 2
    assert rows(home, "SELECT count(*) FROM control_events WHERE kind LIKE '%.conflict'") == [(0,)]
    code, out, err = run(capsys, "--home", str(home), "ledger", "verify")
    assert code == 0, out + err


def test_binanceus_sync_then_its_export_records_each_trade_once(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.binanceus_server import BinanceUSServer
    from tests.exchange_fixtures import add_binanceus_account

    with BinanceUSServer() as server:
        server.set_balance("USD", "100000")
        server.set_balance("BTC", "0.2")
        server.set_balance("ETH", "1")
        add_binanceus_account(home, server, monkeypatch)
        with server._lock:
            for symbol, side, qty in (("BTCUSD", "BUY", "0.01"), ("ETHBTC", "SELL", "0.1")):
                server._new_order({"symbol": symbol, "side": side, "type": "MARKET",
                                   "quantity": qty})  # fmt: skip
        server.add_deposit("BTC", "0.05")
        since = datetime.now(UTC).strftime("%Y-%m-%d")
        sync = ["--home", str(home), "--json", "ledger", "sync", "--exchange", "binanceus",
                "--since", since]  # fmt: skip
        for added in ({"trades": 2, "deposits": 1, "withdrawals": 0}, dict.fromkeys(
            ("trades", "deposits", "withdrawals"), 0)):  # fmt: skip
            code, out, err = run(capsys, *sync)
            assert code == 0, out + err
            assert json.loads(out)["added"] == added
        export = tmp_path / "bus.csv"
        header = (DATA / "binanceus_transactions.csv").read_text().splitlines()[0]
        lines = [header]
        for t in server.trades:
            p = t.order.pair
            when = datetime.fromtimestamp(t.time / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
            lines.append(
                f"1,{when},Spot Trading,{t.order.side.title()},{t.order.order_id},{t.trade_id},,,,"
                f"{p.base},{t.qty},,{p.quote},{t.qty * t.price},,{t.commission_asset},"
                f"{t.commission},,,,"
            )
        export.write_text("\n".join(lines) + "\n")
        code, doc, err = imp(capsys, home, "binanceus", export)
        assert code == 0, err
        assert (doc["added"], doc["known"]) == (0, 2)
    assert rows(home, "SELECT count(*) FROM trades WHERE exchange = 'binanceus'") == [(2,)]


def test_kraken_trades_export_and_its_ledgers_export_are_the_same_fills(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc, err = imp(capsys, home, "kraken", DATA / "kraken_trades.csv")
    assert code == 0 and doc["added"] == 2, err
    assert trades(home, "kraken") == [
        ("TBUY01-BBBBB-CCCCCC", "BTC/USD", "buy", D("0.1"), D(4000), D("10.4"), "USD"),
        ("TETH01-BBBBB-CCCCCC", "ETH/BTC", "sell", D(1), D("0.055"), D("0.000143"), "BTC"),
    ]
    # The Ledgers export holds the same BTC/USD buy (by its trade id): recorded once.
    code, doc, err = imp(capsys, home, "kraken", DATA / "kraken_ledgers.csv")
    assert code == 0, err
    assert (doc["added"], doc["known"]) == (4, 1)
    assert rows(home, "SELECT count(*) FROM trades WHERE trade_id = 'TBUY01-BBBBB-CCCCCC'") == [
        (1,)
    ]


def test_sync_prints_no_progress_bar_when_piped(
    home: Path, kraken_server: KrakenServer, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    add_kraken_account(home, kraken_server, monkeypatch)
    code, out, err = run(capsys, "--home", str(home), "ledger", "sync", "--exchange", "kraken",
                         "--since", datetime.now(UTC).strftime("%Y-%m-%d"))  # fmt: skip
    assert code == 0, err
    assert out.startswith("kraken: 0 trades, 0 deposits, 0 withdrawals recorded")
    assert "syncing" not in err and "\x1b[" not in out + err
