"""Metrics derived from a real DuckDB ledger, parsed back with prometheus_client's parser."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
from decimal import Decimal as D
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccxtkit.cli.app import main
from ccxtkit.ledger.store import ledger_lock, open_ledger
from ccxtkit.metrics import collect, export_metrics, record_latency, serve
from ccxtkit.metrics.latency import MAX_BYTES, latency_path, read_latency
from ccxtkit.workspace import Workspace
from tests.servers import free_port
from tests.test_alerts import Captured
from tests.test_alerts import http_capture as http_capture  # the fixture, shared

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
TODAY = NOW.replace(hour=0, minute=0, second=0) + dt.timedelta(seconds=1)


def make_ws(home: Path, extra: str = "") -> Workspace:
    (home / "config").mkdir(parents=True, exist_ok=True)
    path = home / "config" / "trading_config.yaml"
    path.write_text(f"monitoring:\n  textfile_dir: textfile\n{extra}")
    path.chmod(0o600)
    return Workspace.locate(str(home))


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(sample name, labels): value} of a text exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(parsed: dict, name: str, **labels: str) -> float:
    return parsed[(name, frozenset(labels.items()))]


def fill_ledger(ws: Workspace) -> None:
    """Orders, fills, trades, prices, snapshots and control events of two exchanges."""
    y = NOW - dt.timedelta(days=1)
    with open_ledger(ws.ledger_path, 5) as led:
        led.append("orders", [
            {"timestamp": TODAY, "client_order_id": f"c{i}", "exchange": ex, "symbol": "BTC/USD",
             "side": "buy", "type": "market", "amount": D("1"), "source": "vhc", "live": True}
            for i, ex in enumerate(["kraken", "kraken", "kraken", "coinbase"])
        ])  # fmt: skip
        led.append("order_events", [
            {"timestamp": TODAY, "client_order_id": cid, "exchange": ex, "event": ev}
            for cid, ex, ev in [
                ("c0", "kraken", "sent"), ("c0", "kraken", "filled"),
                ("c0", "kraken", "filled"),  # a repeated event counts once
                ("c1", "kraken", "rejected"), ("c2", "kraken", "failed"),
                ("c3", "coinbase", "filled"),
            ]
        ])  # fmt: skip
        led.append("prices", [
            {"timestamp": y - dt.timedelta(days=1), "asset": "BTC", "quote": "USD",
             "price": D("200"), "source": "t"},
            {"timestamp": y, "asset": "BTC", "quote": "USDT", "price": D("110"), "source": "t"},
        ])  # fmt: skip
        snap = [("kraken", "BTC", "2"), ("kraken", "USD", "100"), ("kraken", "DOGE", "5")]
        led.append("balance_snapshots", [
            {"timestamp": y - dt.timedelta(days=1), "exchange": ex, "asset": a, "total": D(t),
             "source": "t"} for ex, a, t in snap
        ] + [
            {"timestamp": y, "exchange": ex, "asset": a, "total": D(t), "source": "t"}
            for ex, a, t in [("kraken", "BTC", "2"), ("kraken", "USD", "100"),
                             ("coinbase", "USDC", "50.5")]
        ])  # fmt: skip
        trade = {"exchange": "kraken", "symbol": "BTC/USD", "asset": "BTC", "quote": "USD",
                 "source": "t", "fee_currency": "USD"}  # fmt: skip
        led.append("trades", [
            {**trade, "timestamp": TODAY, "side": "buy", "amount": D("1"), "price": D("100"),
             "cost": D("100"), "fee": D("1"), "trade_id": "T1"},
            {**trade, "timestamp": TODAY, "side": "sell", "amount": D("0.5"), "price": D("120"),
             "cost": D("60"), "fee": D("0.5"), "trade_id": "T2"},
            {**trade, "timestamp": y - dt.timedelta(days=1), "side": "buy", "amount": D("9"),
             "price": D("1"), "cost": D("9"), "fee": D("0"), "trade_id": "T0"},
        ])  # fmt: skip
        ev = led.record_event
        ev("reconcile.completed", {"discrepancy_usd": {"kraken": "-250.5"}, "ok": False},
           timestamp=y)  # fmt: skip
        ev("reconcile.completed", {"discrepancy_usd": {"coinbase": "0"}, "ok": True},
           timestamp=NOW - dt.timedelta(hours=1))  # fmt: skip
        for rid, age in [("w1", 1), ("w2", 2), ("w3", 3), ("w-old", 48)]:
            ev("withdraw.request", {"amount": "10"}, subject=rid,
               timestamp=NOW - dt.timedelta(hours=age))  # fmt: skip
        ev("withdraw.approved", {}, subject="w2")
        ev("withdraw.rejected", {}, subject="w3")
        ev("ledger.verify", {"ok": True}, timestamp=y)
        ev("ledger.verify", {"ok": False}, timestamp=NOW - dt.timedelta(minutes=5))
        ev("exchange.health", {"ok": False}, subject="coinbase",
           timestamp=NOW - dt.timedelta(minutes=3))  # fmt: skip


def test_textfile_holds_values_derived_from_the_ledger(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    fill_ledger(ws)
    ws.state_dir.mkdir(mode=0o700)
    (ws.state_dir / "kill_switch.json").write_text(json.dumps({"active": True, "reason": "t"}))
    for ms in (30, 80, 700):
        record_latency(ws, "kraken", "fetch_balance", ms)
    record_latency(ws, "coinbase", "fetch_ticker", 40, ok=True, now=NOW.timestamp() - 600)

    notes = export_metrics(ws, now=NOW)

    target = tmp_path / "textfile" / "vhc.prom"
    assert notes == [f"wrote {target}"]
    assert target.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["vhc.prom"]  # no temp file left
    m = samples(target.read_text())
    assert value(m, "trading_orders_total", exchange="kraken") == 3
    assert value(m, "trading_orders_total", exchange="coinbase") == 1
    assert value(m, "trading_orders_filled_total", exchange="kraken") == 1
    assert value(m, "trading_orders_rejected_total", exchange="kraken") == 2
    assert value(m, "trading_orders_rejected_total", exchange="coinbase") == 0
    # kraken: 2 BTC x 110 (latest price, quoted in USDT) + 100 USD; DOGE left the account
    assert value(m, "trading_balance_usd", exchange="kraken") == 320
    assert value(m, "trading_balance_usd", exchange="coinbase") == 50.5
    assert value(m, "trading_position_usd", exchange="kraken", asset="BTC") == 220
    # today realised (risk.figures): sold 0.5 BTC for 60 against an average cost of 109/10
    # -> 54.55, minus today's fees 1 + 0.5
    assert value(m, "trading_pnl_daily_usd", exchange="kraken") == 53.05
    assert value(m, "trading_volume_daily_usd", exchange="kraken") == 160
    # high: 2x200+100 = 500 (DOGE unpriced then); now (risk.figures): the latest snapshots plus
    # today's trades, 2.5 BTC x 110 + 58.5 USD + 50.5 USDC = 384: 23.2% below the high
    assert value(m, "trading_drawdown_pct") == pytest.approx(23.2)
    assert value(m, "trading_reconciliation_discrepancy_usd", exchange="kraken") == 250.5
    assert value(m, "trading_reconciliation_discrepancy_usd", exchange="coinbase") == 0
    last_ok = (NOW - dt.timedelta(hours=1)).timestamp()
    assert value(m, "vhc_last_reconcile_success_timestamp_seconds") == last_ok
    assert value(m, "vhc_withdrawal_requests_pending") == 1  # w1 (w-old is past its TTL)
    assert value(m, "vhc_ledger_verify_ok") == 0
    assert value(m, "vhc_kill_switch_active") == 1
    assert value(m, "vhc_ledger_readable") == 1
    with open_ledger(ws.ledger_path, 5) as led:
        assert value(m, "vhc_ledger_head_seq") == led.head().seq
    bucket = "trading_api_latency_seconds_bucket"  # base units, as Prometheus names them
    assert value(m, bucket, exchange="kraken", method="fetch_balance", le="0.05") == 1
    assert value(m, bucket, exchange="kraken", method="fetch_balance", le="1.0") == 3
    total = value(m, "trading_api_latency_seconds_sum", exchange="kraken", method="fetch_balance")
    assert total == pytest.approx(0.81)
    assert value(m, "vhc_exchange_up", exchange="kraken") == 1
    # coinbase's health check (3 min ago) is newer than its last successful call (10 min ago)
    assert value(m, "vhc_exchange_up", exchange="coinbase") == 0


def test_a_busy_ledger_skips_ledger_metrics_without_failing(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    fill_ledger(ws)

    with ledger_lock(ws.ledger_path, 1):
        text = _text(collect(ws, now=NOW, wait_seconds=0))

    m = samples(text)
    assert value(m, "vhc_ledger_readable") == 0
    assert value(m, "vhc_kill_switch_active") == 0  # no kill-switch file: inactive
    assert not any(name == "vhc_ledger_head_seq" for name, _ in m)


def test_no_ledger_yet_exports_state_metrics_only(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    m = samples(_text(collect(ws, now=NOW)))
    assert value(m, "vhc_ledger_readable") == 0
    assert not ws.ledger_path.exists()  # collecting never creates a ledger


def test_push_to_gateway(tmp_path: Path, http_capture: Captured) -> None:
    ws = make_ws(tmp_path, f"  pushgateway_url: {http_capture.url}\n")
    fill_ledger(ws)

    notes = export_metrics(ws, now=NOW)

    assert f"pushed to {http_capture.url}" in notes
    ((method, path, body),) = http_capture.requests
    assert (method, path) == ("PUT", "/metrics/job/vhc")
    assert value(samples(body.decode()), "trading_orders_total", exchange="kraken") == 3


def test_export_failures_are_notes_not_exceptions(tmp_path: Path) -> None:
    ws = make_ws(tmp_path, "  pushgateway_url: http://127.0.0.1:9/\n")
    (tmp_path / "textfile").write_text("a file where the directory should be")

    notes = export_metrics(ws, now=NOW)

    assert notes[0].startswith("could not write") and notes[1].startswith("push to")


def test_serve_recollects_on_every_scrape(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    fill_ledger(ws)
    port = free_port()
    server = serve(ws, port)
    try:
        first = samples(_get(port))
        with open_ledger(ws.ledger_path, 5) as led:
            led.record_event("ledger.verify", {"ok": True})
        second = samples(_get(port))
    finally:
        server.shutdown()
        server.server_close()
    assert value(second, "vhc_ledger_head_seq") == value(first, "vhc_ledger_head_seq") + 1
    assert (value(first, "vhc_ledger_verify_ok"), value(second, "vhc_ledger_verify_ok")) == (0, 1)


def test_every_command_exports_after_it_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_ws(tmp_path)
    fill_ledger(ws)

    with pytest.raises(SystemExit) as exited:
        main(["--home", str(tmp_path), "--json", "ledger", "verify"])

    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert json.loads(out)["ok"] is True  # stdout holds the command's JSON and nothing else
    m = samples((tmp_path / "textfile" / "vhc.prom").read_text())
    assert value(m, "vhc_ledger_verify_ok") == 1


def test_a_failing_export_never_changes_the_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_ws(tmp_path, "  pushgateway_url: http://127.0.0.1:9/\n")
    (tmp_path / "textfile").write_text("not a directory")
    with open_ledger(tmp_path / "ledger" / "vhc.duckdb", 5):
        pass  # digest reads an existing ledger (read-only); this one holds its migration event

    with pytest.raises(SystemExit) as exited:
        main(["--home", str(tmp_path), "ledger", "digest"])

    assert exited.value.code == 0
    from ccxtkit.ledger.schema import MIGRATIONS

    assert json.loads(capsys.readouterr().out)["seq"] == len(MIGRATIONS)


def test_metrics_write_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_ws(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["--home", str(tmp_path), "--json", "metrics", "write"])
    assert exited.value.code == 0
    assert json.loads(capsys.readouterr().out) == {
        "notes": [f"wrote {tmp_path / 'textfile' / 'vhc.prom'}"]
    }


def test_latency_file_stays_bounded(tmp_path: Path) -> None:
    ws = make_ws(tmp_path)
    n = MAX_BYTES // 80 + 500  # each line is ~90 bytes: enough to pass the bound
    for i in range(n):
        record_latency(ws, "kraken", "fetch_order_book", i % 900, now=1.7e9 + i)

    assert latency_path(ws).stat().st_size <= MAX_BYTES
    kept = read_latency(ws)
    assert kept[-1].timestamp == 1.7e9 + n - 1  # the newest sample survives
    assert len(kept) < n
    assert latency_path(ws).stat().st_mode & 0o777 == 0o600


def _text(registry: object) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()  # type: ignore[arg-type]


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:  # noqa: S310
        return r.read().decode()
