"""The signal webhooks through a real `vhc serve`: each source accepted and refused end to end.

The bodies and credentials are signals_kit's (env secrets); the server passes the raw body,
the headers and the client address to `signals.intake.receive` and answers with its result.
"""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccxtkit.risk import killswitch
from ccxtkit.serve.tokens import create_token
from ccxtkit.workspace import Workspace, write_private
from tests import signals_kit as kit
from tests.serve_process import JWT_KEY, ServeProcess
from tests.test_signals_queue import bot_api  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow

WEBHOOK = "/signals/{}/webhook"


def home_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serve: dict | None = None, **kw: Any
) -> Path:
    """signals_kit's workspace, its named secrets from the environment, this `serve:`."""
    home = kit.make_workspace(tmp_path, monkeypatch, **kw)
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["secrets"] = {"backend": "env"}
    data["serve"] = serve or {}
    write_private(path, yaml.safe_dump(data))
    monkeypatch.setenv("VHC_SERVE_JWT_KEY", JWT_KEY)
    return home


def code_of(answer) -> str:
    assert answer.json["success"] is False, answer
    error = answer.json["error"]
    assert set(error) == {"message", "code", "statusCode", "timestamp", "details"}
    assert error["statusCode"] == answer.status
    return str(error["code"])


def test_each_source_accepted_with_its_credential_and_refused_without(tmp_path, monkeypatch):
    home = home_with(tmp_path, monkeypatch)
    sheets = kit.sheets_body("row-1")
    telegram = kit.telegram_body("BUY BTC/USD paper\nQty: 0.01\nType: MARKET", message_id=7)
    tradingview = kit.tradingview_body()
    with ServeProcess(home) as srv:
        good = {
            "sheets": srv.call(
                "POST", WEBHOOK.format("sheets"), raw=sheets, headers=kit.sheets_headers(sheets)
            ),
            "telegram": srv.call(
                "POST", WEBHOOK.format("telegram"), raw=telegram, headers=kit.telegram_headers()
            ),
            "tradingview": srv.call("POST", WEBHOOK.format("tradingview"), raw=tradingview),
        }
        for name, answer in good.items():
            assert answer.status == 202, (name, answer)
            assert answer.json["success"] is True and answer.json["status"] == "queued"
        assert kit.queued(home) == 3
        viewer = create_token(Workspace.locate(str(home)), "v", "viewer", timedelta(hours=1)).token
        listed = srv.call("GET", "/signals?status=queued", token=viewer)
        assert listed.status == 200, listed
        assert sorted(s["source"] for s in listed.json["data"]) == [
            "sheets",
            "telegram",
            "tradingview",
        ]
        sid = good["sheets"].json["signal_id"]
        one = srv.call("GET", f"/signals/{sid}", token=viewer).json["data"]
        assert one["external_id"] == "row-1" and [e["event"] for e in one["events"]][:2] == [
            "received",
            "parsed",
        ]
        assert srv.call("GET", "/signals/intents", token=viewer).json["data"] == listed.json["data"]
        assert srv.call("GET", "/signals/nosuchsignal", token=viewer).status == 404
        assert srv.call("GET", "/signals?status=bogus", token=viewer).status == 422
        # Replayed: the first answer again, with 200, and nothing more queued.
        again = srv.call(
            "POST", WEBHOOK.format("sheets"), raw=sheets, headers=kit.sheets_headers(sheets)
        )
        assert again.status == 200 and again.json["signal_id"] == good["sheets"].json["signal_id"]
        # Each source without its credential: 401, nothing queued, one audit row each.
        other = kit.sheets_body("row-2")
        bad = [
            srv.call(
                "POST",
                WEBHOOK.format("sheets"),
                raw=other,
                headers=kit.sheets_headers(other, secret="nope-" * 5),
            ),
            srv.call("POST", WEBHOOK.format("sheets"), raw=other),
            srv.call(
                "POST",
                WEBHOOK.format("telegram"),
                raw=kit.telegram_body("BUY BTC/USD paper\nQty: 1", message_id=8),
                headers=kit.telegram_headers("wrong-secret-token"),
            ),
            srv.call(
                "POST",
                WEBHOOK.format("tradingview"),
                raw=kit.tradingview_body(id="tv-2", passphrase="guess"),
            ),
        ]
        assert [a.status for a in bad] == [401, 401, 401, 401], bad
        assert {code_of(a) for a in bad} == {"UNAUTHORIZED"}
        assert kit.queued(home) == 3
        assert [r["status"] for r in kit.refusals(home)] == [401, 401, 401, 401]
        # Bad input through the server: JSON errors, nothing queued.
        broken = b"{not json"
        assert srv.call(
            "POST", WEBHOOK.format("sheets"), raw=broken, headers=kit.sheets_headers(broken)
        ).status in (400, 422)
        unknown = srv.call("POST", WEBHOOK.format("nosuch"), raw=b"{}")
        assert unknown.status == 404 and code_of(unknown) == "NOT_FOUND"
        assert kit.queued(home) == 3
        assert srv.stop() == 0
    assert "Traceback" not in srv.output()


def test_kill_switch_enabled_over_the_api_makes_webhooks_503(tmp_path, monkeypatch):
    home = home_with(tmp_path, monkeypatch)
    trader = create_token(Workspace.locate(str(home)), "desk", "trader", timedelta(hours=1)).token
    with ServeProcess(home) as srv:
        on = srv.call("POST", "/risk/killswitch/enable", {"reason": "drill"}, token=trader)
        assert on.status == 200, on
        body = kit.sheets_body("row-9")
        answer = srv.call(
            "POST", WEBHOOK.format("sheets"), raw=body, headers=kit.sheets_headers(body)
        )
        assert answer.status == 503 and code_of(answer) == "KILL_SWITCH_ACTIVE"
        assert kit.queued(home) == 0
        assert srv.stop() == 0
    assert killswitch.is_active(Workspace.locate(str(home)))


def test_per_source_rate_limit_and_body_limit(tmp_path, monkeypatch):
    serve = {"source_burst": 2, "source_rate_per_second": "0.1", "max_body_bytes": 2048}
    home = home_with(tmp_path, monkeypatch, serve=serve)
    with ServeProcess(home) as srv:
        statuses = []
        for i in range(3):
            body = kit.sheets_body(f"row-{i}")
            statuses.append(
                srv.call(
                    "POST", WEBHOOK.format("sheets"), raw=body, headers=kit.sheets_headers(body)
                ).status
            )
        assert statuses == [202, 202, 429]
        # Another source has its own bucket.
        assert (
            srv.call("POST", WEBHOOK.format("tradingview"), raw=kit.tradingview_body()).status
            == 202
        )
        huge = b'{"id": "' + b"x" * 4096 + b'"}'
        big = srv.call("POST", WEBHOOK.format("tradingview"), raw=huge)
        assert big.status == 413 and code_of(big) == "PAYLOAD_TOO_LARGE"
        assert kit.queued(home) == 3
        assert srv.stop() == 0


def wait_for(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_signals_are_executed_by_the_workers_and_telegram_gets_its_answer(
    tmp_path,
    monkeypatch,
    bot_api,  # noqa: F811
):
    base, calls = bot_api
    home = home_with(tmp_path, monkeypatch, bot_api_base=base)
    viewer = create_token(Workspace.locate(str(home)), "v", "viewer", timedelta(hours=1)).token
    sheets = kit.sheets_body("row-42", quantity="0.02")
    telegram = kit.telegram_body("BUY BTC/USD paper\nQty: 0.01\nType: MARKET", message_id=31)
    with ServeProcess(home, workers=2) as srv:
        first = srv.call(
            "POST", WEBHOOK.format("sheets"), raw=sheets, headers=kit.sheets_headers(sheets)
        )
        second = srv.call(
            "POST", WEBHOOK.format("telegram"), raw=telegram, headers=kit.telegram_headers()
        )
        assert first.status == 202 and second.status == 202, (first, second)
        ids = [first.json["signal_id"], second.json["signal_id"]]

        def executed():  # type: ignore[no-untyped-def]
            got = [srv.call("GET", f"/signals/{i}", token=viewer).json["data"] for i in ids]
            return got if all(g["status"] == "executed" for g in got) else None

        done = wait_for(executed)
        steps = [e["event"] for e in done[0]["events"]]
        assert steps[:2] == ["received", "parsed"] and "sent" in steps and "outcome" in steps
        orders = srv.call("GET", "/executions/orders?all=true", token=viewer).json["data"]
        assert sorted(o["amount"] for o in orders) == ["0.01", "0.02"]
        assert all(o["status"] == "filled" for o in orders)
        # The bot answered in the chat, through the local Bot API server.
        wait_for(lambda: calls)
        (path, payload), *_ = calls
        assert path == f"/bot{kit.BOT_TOKEN}/sendMessage" and payload["chat_id"] == kit.CHAT_ID
        assert payload["text"].startswith("Executed: BUY 0.01 BTC/USD on paper")
        health = srv.call("GET", "/system/health").json["data"]
        assert health["workers"] == {"running": 2, "configured": 2}
        assert srv.stop() == 0
    assert "Traceback" not in srv.output()


def test_sigterm_lets_a_worker_finish_the_signal_it_is_executing(tmp_path, monkeypatch):
    home = home_with(tmp_path, monkeypatch)
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["exchanges"]["paper"].setdefault("paper", {})["latency_ms"] = 600
    write_private(path, yaml.safe_dump(data))
    viewer = create_token(Workspace.locate(str(home)), "v", "viewer", timedelta(hours=1)).token
    body = kit.sheets_body("row-slow")
    with ServeProcess(home, workers=1) as srv:
        sid = srv.call(
            "POST", WEBHOOK.format("sheets"), raw=body, headers=kit.sheets_headers(body)
        ).json["signal_id"]

        def working():  # type: ignore[no-untyped-def]
            return (
                srv.call("GET", f"/signals/{sid}", token=viewer).json["data"]["status"] == "working"
            )

        wait_for(working, timeout=60)
        assert srv.stop(signal.SIGTERM) == 0  # the worker finished its signal, then stopped
    (status,) = kit.rows(
        home,
        "SELECT arg_max(status, seq) FROM signal_events WHERE signal_id = ? AND status IS NOT NULL",
        [sid],
    )[0]
    assert status == "executed"
    assert "Traceback" not in srv.output()
