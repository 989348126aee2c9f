"""The durable signal queue: executed once through the order path, retried, dead-lettered, resolved
after a crash without a second order, and answered in Telegram."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccxtkit.cli.app import main
from ccxtkit.signals import queue, store
from ccxtkit.signals.intake import receive
from ccxtkit.signals.worker import work_once
from ccxtkit.workspace import write_private
from tests.crash import run_vhc
from tests.crash.agree import assert_orders_agree, intents, latest_events, paper_view
from tests.signals_kit import (
    BOT_TOKEN,
    CHAT_ID,
    make_workspace,
    rows,
    sheets_body,
    sheets_headers,
    telegram_body,
    telegram_headers,
    workspace,
)

OPENING = {"USD": Decimal(100000)}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_workspace(tmp_path, monkeypatch, signals={"retry_base_seconds": 0})


def submit(home: Path, signal_id: str = "row-1", **changes: Any) -> str:
    body = sheets_body(signal_id, **changes)
    answer = receive(workspace(home), "sheets", sheets_headers(body), body)
    assert answer.status == 202, answer.body
    return str(answer.body["signal_id"])


def events(home: Path, signal_id: str) -> list[tuple[str, str | None, int | None]]:
    return [
        (str(e), s, a)
        for e, s, a in rows(
            home,
            "SELECT event, status, attempt FROM signal_events WHERE signal_id = ? ORDER BY seq",
            [signal_id],
        )
    ]


def status(home: Path, signal_id: str) -> str:
    with workspace(home).open_ledger() as ledger:
        (row,) = store.states(ledger, signal_id=signal_id)
    return str(row["status"])


def set_config(home: Path, section: str, key: str, value: Any) -> None:
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    node = data
    for part in section.split("."):
        node = node.setdefault(part, {})
    node[key] = value
    write_private(path, yaml.safe_dump(data))


def test_signal_executes_once_on_paper_with_every_step_chained(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = submit(home)
    (result,) = work_once(workspace(home))
    assert result.status == "executed" and result.order_status == "closed", result
    cid = store.client_order_id_for(sid, 1)
    assert result.client_order_id == cid
    assert [e for e, _, _ in events(home, sid)] == [
        "received", "parsed", "intent", "checked", "sent", "outcome"
    ]  # fmt: skip
    assert intents(home, "paper") == [cid]
    assert latest_events(home, "paper") == {cid: "filled"}
    trades = rows(home, "SELECT client_order_id, side, amount, source, strategy FROM trades")
    assert trades == [(cid, "buy", Decimal("0.01"), "signal", "signal:sheets")]
    assert_orders_agree(home, "paper", paper_view(home), OPENING)
    # Nothing more to do; a redelivery of the same id gets the first answer and no order.
    assert work_once(workspace(home)) == []
    body = sheets_body("row-1")
    assert receive(workspace(home), "sheets", sheets_headers(body), body).status == 200
    assert work_once(workspace(home)) == []
    assert sum(paper_view(home).sends.values()) == 1
    with pytest.raises(SystemExit) as done:
        main(["--home", str(home), "ledger", "verify"])
    assert done.value.code in (0, None), capsys.readouterr()


def test_limit_signal_rests_as_an_open_order(home: Path) -> None:
    sid = submit(home, orderType="LIMIT", price="1000")
    (result,) = work_once(workspace(home))
    assert result.status == "executed" and result.order_status == "open"
    assert latest_events(home, "paper") == {store.client_order_id_for(sid, 1): "open"}


def test_risk_refusal_is_final_and_never_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_workspace(
        tmp_path, monkeypatch, signals={"retry_base_seconds": 0}, risk={"max_order_value": 100}
    )
    sid = submit(home, quantity="1")
    (result,) = work_once(workspace(home))
    assert result.status == "refused" and "max_order_value" in json.dumps(
        rows(home, "SELECT details FROM signal_events WHERE event = 'checked'")
    )
    assert work_once(workspace(home)) == []
    assert intents(home, "paper") == []  # refused before any intent: nothing was sent
    assert status(home, sid) == "refused"


def test_kill_switch_at_execution_refuses_without_retry(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = submit(home)
    with pytest.raises(SystemExit):
        main(["--home", str(home), "kill-switch", "--activate", "--reason", "drill"])
    (result,) = work_once(workspace(home))
    assert result.status == "refused"
    assert work_once(workspace(home)) == []
    assert status(home, sid) == "refused"
    assert sum(paper_view(home).sends.values()) == 0 if (home / "state").exists() else True


def test_exchange_failures_back_off_exponentially_then_dead_letter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_workspace(
        tmp_path, monkeypatch, signals={"retry_base_seconds": 10, "max_attempts": 3}
    )
    sid = submit(home)
    set_config(home, "exchanges.paper.paper", "fail_calls", True)
    waits = []
    moment = datetime.now(UTC)
    for attempt in (1, 2):
        before = datetime.now(UTC)
        (result,) = work_once(workspace(home), now=moment)
        assert result.status == "retry" and result.attempt == attempt, result
        assert result.next_attempt_at is not None
        waits.append((result.next_attempt_at - before).total_seconds())
        assert work_once(workspace(home), now=moment) == []  # not due yet
        moment = result.next_attempt_at + timedelta(seconds=1)
    assert 9 <= waits[0] <= 12 and 19 <= waits[1] <= 22, waits  # 10 s, then 20 s
    (result,) = work_once(workspace(home), now=moment)
    assert result.status == "dead" and "after 3 attempt(s)" in result.message
    assert work_once(workspace(home), now=moment + timedelta(days=1)) == []
    assert [r.status for r in queue.list_signals(workspace(home), "dead")] == ["dead"]
    # The exchange is back: a person puts it back in the queue; it executes once.
    set_config(home, "exchanges.paper.paper", "fail_calls", False)
    queue.retry(workspace(home), sid[:8])
    (result,) = work_once(workspace(home))
    assert result.status == "executed" and result.attempt == 4
    assert sum(paper_view(home).sends.values()) == 1


def test_unknown_market_goes_straight_to_the_dead_letter(home: Path) -> None:
    sid = submit(home, symbol="NOPE/USD")
    (result,) = work_once(workspace(home))
    assert result.status == "dead" and "NOPE/USD" in result.message
    assert status(home, sid) == "dead"


def test_drop_takes_a_signal_out_for_good(home: Path) -> None:
    sid = submit(home)
    record = queue.drop(workspace(home), sid, "sent by mistake")
    assert record.status == "dropped" and record.reason == "sent by mistake"
    assert work_once(workspace(home)) == []
    with pytest.raises(Exception, match="already dropped"):
        queue.drop(workspace(home), sid, "again")
    assert intents(home, "paper") == []


def test_two_workers_never_take_the_same_signal(home: Path) -> None:
    sids = [submit(home, f"row-{i}") for i in range(6)]
    results: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(4):
                results.extend(work_once(workspace(home), limit=2))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(r.signal_id for r in results if r.status == "executed") == sorted(sids)
    view = paper_view(home)
    assert sum(view.sends.values()) == 6 and all(n == 1 for n in view.sends.values())


# -- a crash between the intent and the send, and after the send ------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("point", ["order.intent_recorded", "order.sent"])
def test_crash_mid_order_is_resolved_without_a_second_order(home: Path, point: str) -> None:
    sid = submit(home)
    run = run_vhc(home, ["signals", "work", "--once"], crash_at=point)
    assert run.crashed, (run.code, run.err)
    cid1 = store.client_order_id_for(sid, 1)
    assert intents(home, "paper") == [cid1]
    assert latest_events(home, "paper") == {}  # the crash left the order's fate unrecorded
    assert events(home, sid)[-1] == ("intent", "working", 1)
    sent_before = sum(paper_view(home).sends.values()) if point == "order.sent" else 0
    # The next pass resolves the intent through its client order id.
    final = None
    for _ in range(3):
        done = work_once(workspace(home))
        if done and done[0].status == "executed":
            final = done[0]
            break
    assert final is not None
    view = paper_view(home)
    assert sum(view.sends.values()) == 1 and all(n == 1 for n in view.sends.values())
    if point == "order.sent":
        assert sent_before == 1 and final.client_order_id == cid1  # the first order, found
        assert latest_events(home, "paper") == {cid1: "filled"}
    else:
        cid2 = store.client_order_id_for(sid, 2)
        assert final.client_order_id == cid2  # never sent: one new attempt
        assert latest_events(home, "paper") == {cid1: "not_found", cid2: "filled"}
    assert_orders_agree(home, "paper", view, OPENING)


# -- Telegram answers -------------------------------------------------------------------------
class _BotApi(BaseHTTPRequestHandler):
    calls: list[tuple[str, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        payload = json.loads(self.rfile.read(length) or b"{}")
        type(self).calls.append((self.path, payload))
        body = json.dumps({"ok": True, "result": {"message_id": 99}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def bot_api() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    handler = type("BotApi", (_BotApi,), {"calls": calls})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", calls
    finally:
        server.shutdown()
        server.server_close()


def test_telegram_signal_is_answered_in_its_chat(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bot_api: tuple[str, list[tuple[str, dict[str, Any]]]],
) -> None:
    base, calls = bot_api
    home = make_workspace(tmp_path, monkeypatch, bot_api_base=base)
    body = telegram_body("BUY BTC/USD paper\nQty: 0.01\nType: MARKET", message_id=31)
    answer = receive(workspace(home), "telegram", telegram_headers(), body)
    assert answer.status == 202
    (result,) = work_once(workspace(home))
    assert result.status == "executed"
    (path, payload), *_ = calls
    assert path == f"/bot{BOT_TOKEN}/sendMessage"
    assert payload["chat_id"] == CHAT_ID and payload["reply_to_message_id"] == 31
    assert payload["text"].startswith("Executed: BUY 0.01 BTC/USD on paper")
    replied = rows(home, "SELECT details FROM signal_events WHERE event = 'replied'")
    assert [json.loads(d)["ok"] for (d,) in replied] == [True]
    # The token is never in the ledger.
    everything = json.dumps([list(map(str, r)) for r in rows(home, "SELECT * FROM signal_events")])
    assert BOT_TOKEN not in everything


def test_telegram_answer_failure_is_recorded_not_fatal(home: Path) -> None:
    # bot_api_base points at a closed port: the order stands, the failed answer is recorded.
    body = telegram_body("BUY BTC/USD paper\nQty: 0.01", message_id=32)
    assert receive(workspace(home), "telegram", telegram_headers(), body).status == 202
    (result,) = work_once(workspace(home))
    assert result.status == "executed"
    (details,) = [json.loads(d) for (d,) in rows(
        home, "SELECT details FROM signal_events WHERE event = 'replied'"
    )]  # fmt: skip
    assert details["ok"] is False and BOT_TOKEN not in json.dumps(details)


def test_run_worker_drains_the_queue_and_stops(home: Path) -> None:
    from ccxtkit.signals.worker import run_worker

    stop = threading.Event()
    counts: list[int] = []
    # A long poll interval: only intake's wake-up can make it pick the signals up in time.
    thread = threading.Thread(
        target=lambda: counts.append(run_worker(workspace(home), stop, poll_seconds=600))
    )
    thread.start()
    threading.Event().wait(1.0)  # its first pass finds nothing and it goes idle
    sids = [submit(home, f"w-{i}") for i in range(3)]
    deadline = datetime.now(UTC) + timedelta(seconds=90)
    while datetime.now(UTC) < deadline:
        if all(status(home, s) == "executed" for s in sids):
            break
        threading.Event().wait(0.2)
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive() and counts == [3]
    record, history = queue.get_signal(workspace(home), sids[0])
    assert record.status == "executed"
    assert [e["event"] for e in history][-1] == "outcome"
    assert history[-1]["details"]["order_event"] == "filled"


@pytest.mark.slow
def test_crash_before_send_on_kraken_protocol_resolves_by_lookup(
    home: Path, kraken_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.crash.agree import kraken_view

    creds = kraken_server.credentials()
    monkeypatch.setenv("KRAKEN_API_KEY", creds["apiKey"])
    monkeypatch.setenv("KRAKEN_API_SECRET", creds["secret"])
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["exchanges"]["kraken"] = {
        "secrets": "env",
        "rate_limit": 1000,
        "ccxt": {**kraken_server.ccxt_config(), "timeout": 3000},
    }
    write_private(path, yaml.safe_dump(data))
    kraken_server.set_balance("USD", "100000")
    kraken_server.set_price("BTC/USD", "60000")
    sid = submit(home, "k-1", exchange="kraken")
    run = run_vhc(home, ["signals", "work", "--once"], crash_at="order.intent_recorded")
    assert run.crashed, (run.code, run.err)
    assert dict(kraken_view(kraken_server).sends) == {}
    statuses = []
    for _ in range(3):
        statuses += [r.status for r in work_once(workspace(home))]
        if "executed" in statuses:
            break
    assert statuses == ["retry", "executed"]  # attempt 1 confirmed absent, attempt 2 sent
    view = kraken_view(kraken_server)
    cid1, cid2 = (store.client_order_id_for(sid, n) for n in (1, 2))
    assert dict(view.sends) == {cid2: 1}
    assert latest_events(home, "kraken") == {cid1: "not_found", cid2: "filled"}
    assert_orders_agree(home, "kraken", view, {"USD": Decimal(100000)})


def test_intent_without_an_order_row_is_placed_under_the_same_client_id(home: Path) -> None:
    # What a crash right after the claim leaves: the signal's intent, no `orders` row.
    sid = submit(home)
    cid = store.client_order_id_for(sid, 1)
    with workspace(home).open_ledger() as ledger:
        store.add_event(ledger, sid, "intent", "working", attempt=1, client_order_id=cid)
    (result,) = work_once(workspace(home))
    assert result.status == "executed" and result.attempt == 1 and result.client_order_id == cid
    assert intents(home, "paper") == [cid]
    assert [e for e, _, _ in events(home, sid)].count("intent") == 1


def test_a_live_workers_signal_is_left_alone(home: Path) -> None:
    from ccxtkit.signals.worker import try_claim

    sid = submit(home)
    with try_claim(workspace(home), sid) as mine:
        assert mine
        assert work_once(workspace(home)) == []  # another worker holds it
        with pytest.raises(Exception, match="being worked on"):
            queue.drop(workspace(home), sid, "no")
    (result,) = work_once(workspace(home))
    assert result.status == "executed"


def test_a_signal_whose_turn_comes_too_late_is_dead_lettered_as_expired(home: Path) -> None:
    max_age = workspace(home).config.signals.max_age_seconds
    sid = submit(home)
    late = datetime.now(UTC) + timedelta(seconds=max_age + 5)
    (result,) = work_once(workspace(home), now=late)
    assert result.status == "dead", result
    assert "signals.max_age_seconds" in result.message
    (record,) = queue.list_signals(workspace(home), "dead")
    assert record.signal_id == sid and record.reason == "expired"
    assert sum(paper_view(home).sends.values()) == 0  # never sent
    assert intents(home, "paper") == []
    assert work_once(workspace(home), now=late) == []
    # A person's retry is a fresh decision: the clock starts again from it.
    queue.retry(workspace(home), sid)
    (result,) = work_once(workspace(home))
    assert result.status == "executed", result
    assert sum(paper_view(home).sends.values()) == 1


def test_a_signal_in_time_is_executed_even_late_in_its_window(home: Path) -> None:
    max_age = workspace(home).config.signals.max_age_seconds
    submit(home)
    (result,) = work_once(workspace(home), now=datetime.now(UTC) + timedelta(seconds=max_age - 30))
    assert result.status == "executed", result
