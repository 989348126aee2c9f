"""SIGKILL `vhc serve` while signals flow to a slow Kraken: none lost, none executed twice.

The sender behaves as a webhook sender must: a delivery that got no answer (the server died
under it) is delivered again, with the same id, once a server answers. After the restart the
exchange must hold exactly one order per signal, each with a client order id of that signal.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from ccxtkit.serve.tokens import create_token
from ccxtkit.signals import store
from ccxtkit.workspace import Workspace, write_private
from tests import signals_kit as kit
from tests.kraken_server import KrakenServer
from tests.serve_process import ServeProcess
from tests.test_killswitch import run_cli
from tests.test_serve_webhooks import WEBHOOK, home_with, wait_for

pytestmark = pytest.mark.slow

SIGNALS = 14


def kraken_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: KrakenServer) -> Path:
    home = home_with(tmp_path, monkeypatch)
    creds = server.credentials()
    monkeypatch.setenv("KRAKEN_API_KEY", creds["apiKey"])
    monkeypatch.setenv("KRAKEN_API_SECRET", creds["secret"])
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["exchanges"]["kraken"] = {
        "secrets": "env",
        "rate_limit": 1000,
        "ccxt": {**server.ccxt_config(), "timeout": 5000},
    }
    data["signals"]["sources"]["sheets"]["exchange"] = "kraken"
    write_private(path, yaml.safe_dump(data))
    server.set_balance("USD", "100000")
    server.set_price("BTC/USD", "60000")
    return home


def deliver(srv: ServeProcess, external_id: str) -> int | None:
    """One delivery; its status, or None when the server gave no answer."""
    body = kit.sheets_body(external_id, exchange="kraken", quantity="0.001")
    try:
        got = srv.call(
            "POST", WEBHOOK.format("sheets"), raw=body, headers=kit.sheets_headers(body), timeout=20
        )
    except OSError:
        return None
    return got.status


def test_sigkill_while_signals_flow_loses_none_and_executes_none_twice(
    tmp_path, monkeypatch, kraken_server, capsys
):
    kraken_server.latency = 0.15  # every exchange call is slow: the kill lands mid-order
    home = kraken_home(tmp_path, monkeypatch, kraken_server)
    ids = [f"crash-{i}" for i in range(SIGNALS)]
    answered: dict[str, int] = {}
    first = ServeProcess(home, workers=2).start()
    stop_sending = threading.Event()

    def send() -> None:
        for external_id in ids:
            if stop_sending.is_set():
                return
            status = deliver(first, external_id)
            if status is not None:
                answered[external_id] = status
            time.sleep(0.3)  # slower than intake, so the kill lands while signals still flow

    sender = threading.Thread(target=send)
    sender.start()
    # Kill once some signals are accepted and orders are on their way to the exchange.
    wait_for(lambda: len(answered) >= SIGNALS // 2 and kraken_server.orders, timeout=120)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    stop_sending.set()
    sender.join(30)
    assert all(s == 202 for s in answered.values()), answered
    assert len(answered) < SIGNALS  # the kill came while signals were still flowing

    viewer = create_token(Workspace.locate(str(home)), "v", "viewer", timedelta(hours=1)).token
    with ServeProcess(home, workers=2) as second:
        # Whatever got no answer is delivered again; what did, is acknowledged as before.
        for external_id in ids:
            status = deliver(second, external_id)
            assert status in (200, 202), (external_id, status)
            if external_id in answered:
                assert status == 200  # a replay: never queued twice

        def final():  # type: ignore[no-untyped-def]
            rows = second.call("GET", "/signals", token=viewer).json["data"]
            return (
                rows
                if len(rows) == SIGNALS and all(r["status"] in store.FINAL for r in rows)
                else None
            )

        rows = wait_for(final, timeout=240)
        assert {r["status"] for r in rows} == {"executed"}, [
            (r["external_id"], r["status"], r["details"]) for r in rows
        ]
        assert second.stop() == 0

    # One order on the exchange per signal, each carrying a client order id of its signal.
    cids = {o.cl_ord_id for o in kraken_server.orders}
    assert len(kraken_server.orders) == SIGNALS == len(cids), [
        o.cl_ord_id for o in kraken_server.orders
    ]
    for external_id in ids:
        sid = store.signal_id_for("sheets", external_id)
        own = {store.client_order_id_for(sid, attempt) for attempt in range(1, 6)}
        assert len(own & cids) == 1, external_id
    assert all(o.status == "closed" and o.vol_exec == o.vol for o in kraken_server.orders)
    code, _, err = run_cli(Workspace.locate(str(home)), ["ledger", "verify"], capsys)
    assert code == 0, err
