"""Signal intake without HTTP: each source accepted when signed, refused (and audited) otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ccxtkit.cli.app import main
from ccxtkit.signals import parse
from ccxtkit.signals.intake import receive
from ccxtkit.signals.parse import BadSignal
from tests.signals_kit import (
    CHAT_ID,
    SHEETS_SECRET,
    TV_PASSPHRASE,
    make_workspace,
    queued,
    refusals,
    rows,
    sheets_body,
    sheets_headers,
    telegram_body,
    telegram_headers,
    tradingview_body,
    workspace,
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_workspace(tmp_path, monkeypatch)


def _error(answer_body: dict[str, object]) -> dict[str, object]:
    assert answer_body["success"] is False
    error = answer_body["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "code", "statusCode", "timestamp", "details"}
    datetime.fromisoformat(str(error["timestamp"]))  # RFC 3339
    return error


# -- sheets ----------------------------------------------------------------------------------
def test_sheets_signed_signal_is_queued_with_its_parsed_order(home: Path) -> None:
    body = sheets_body("row-7", quantity="0.015")
    answer = receive(workspace(home), "sheets", sheets_headers(body), body, "10.0.0.5")
    assert answer.status == 202, answer.body
    assert answer.body == {
        "success": True,
        "signal_id": answer.body["signal_id"],
        "status": "queued",
    }
    stored = rows(
        home,
        "SELECT external_id, exchange, symbol, side, type, amount, price, product, remote_ip "
        "FROM signals",
    )
    assert stored == [
        ("row-7", "paper", "BTC/USD", "buy", "market", Decimal("0.015"), None, "CNC", "10.0.0.5")
    ]
    events = rows(home, "SELECT event, status FROM signal_events ORDER BY seq")
    assert events == [("received", "received"), ("parsed", "queued")]
    assert refusals(home) == []


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "no headers"),
        ({"X-API-Key": "wrong-key"}, "wrong key"),
        ({"X-Signature": "00" * 32}, "wrong signature"),
        ("other-secret", "signed with another secret"),
    ],
)
def test_sheets_bad_credentials_are_401_nothing_queued_one_audit_row(
    home: Path, headers: object, why: str
) -> None:
    body = sheets_body()
    if headers == "other-secret":
        sent = sheets_headers(body, secret="not-" + SHEETS_SECRET)
    else:
        assert isinstance(headers, dict)
        sent = {**sheets_headers(body), **headers} if headers else {}
    answer = receive(workspace(home), "sheets", sent, body)
    assert answer.status == 401, why
    assert _error(answer.body)["code"] == "UNAUTHORIZED"
    assert queued(home) == 0
    (audit,) = refusals(home)
    assert audit["status"] == 401 and audit["body_bytes"] == len(body)


def test_sheets_signature_covers_the_raw_body(home: Path) -> None:
    body = sheets_body()
    tampered = body.replace(b'"0.01"', b'"10.0"')
    answer = receive(workspace(home), "sheets", sheets_headers(body), tampered)
    assert answer.status == 401
    assert queued(home) == 0


def test_sheets_old_signal_is_409_and_audited(home: Path) -> None:
    body = sheets_body(when=datetime.now(UTC) - timedelta(seconds=301))
    answer = receive(workspace(home), "sheets", sheets_headers(body), body)
    assert answer.status == 409
    error = _error(answer.body)
    assert error["code"] == "SIGNAL_TOO_OLD"
    assert queued(home) == 0
    (audit,) = refusals(home)
    assert audit["status"] == 409 and audit["external_id"] == "row-1"


def test_rfc3339_timestamp_and_max_age_from_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_workspace(tmp_path, monkeypatch, signals={"max_age_seconds": 30})
    ws = workspace(home)
    fresh = sheets_body("a", timestamp=(datetime.now(UTC) - timedelta(seconds=20)).isoformat())
    assert receive(ws, "sheets", sheets_headers(fresh), fresh).status == 202
    stale = sheets_body("b", timestamp=(datetime.now(UTC) - timedelta(seconds=40)).isoformat())
    assert receive(ws, "sheets", sheets_headers(stale), stale).status == 409


def test_replayed_id_gets_the_first_answer_and_is_queued_once(home: Path) -> None:
    ws = workspace(home)
    body = sheets_body("row-9")
    first = receive(ws, "sheets", sheets_headers(body), body)
    assert first.status == 202
    again = receive(ws, "sheets", sheets_headers(body), body)
    assert again.status == 200 and again.body == first.body
    # A different body with the same id (a changed row) is still that signal: never twice.
    changed = sheets_body("row-9", quantity="5")
    third = receive(ws, "sheets", sheets_headers(changed), changed)
    assert third.status == 200 and third.body == first.body
    assert queued(home) == 1
    events = [e for (e,) in rows(home, "SELECT event FROM signal_events ORDER BY seq")]
    assert events.count("duplicate") == 2


def test_replay_of_an_old_accepted_signal_is_still_its_first_answer(home: Path) -> None:
    ws = workspace(home)
    sent_at = datetime.now(UTC)
    body = sheets_body("row-3", when=sent_at)
    first = receive(ws, "sheets", sheets_headers(body), body, now=sent_at)
    later = receive(ws, "sheets", sheets_headers(body), body, now=sent_at + timedelta(hours=2))
    assert (first.status, later.status) == (202, 200)
    assert queued(home) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "(body)"),
        (b"[1, 2]", "(body)"),
        (b'{"id": "x"}', "timestamp"),
        (sheets_body(quantity="-1"), "quantity"),
        (sheets_body(quantity="1e400"), "quantity"),
        (sheets_body(quantity="99999999999999999999"), "quantity"),
        (sheets_body(quantity="0.0000000000000000001"), "quantity"),
        (sheets_body(quantity=True), "quantity"),
        (sheets_body(transactionType="HOLD"), "transactionType"),
        (sheets_body(orderType="STOP"), "orderType"),
        (sheets_body(orderType="LIMIT"), "price"),
        (sheets_body(symbol="BTC USD; DROP TABLE"), "symbol"),
        (sheets_body(symbol="RELIANCE", exchange="NSE"), "symbol"),
        (sheets_body(timestamp=int(datetime.now(UTC).timestamp() * 1000)), "timestamp"),
        (sheets_body(timestamp="yesterday"), "timestamp"),
        (sheets_body(extra="field"), "extra"),
    ],
)
def test_invalid_sheets_bodies_are_422_never_queued(home: Path, body: bytes, field: str) -> None:
    answer = receive(workspace(home), "sheets", sheets_headers(body), body)
    assert answer.status == 422, (field, answer.body)
    assert "message" in _error(answer.body)
    assert queued(home) == 0
    assert [a["status"] for a in refusals(home)] == [422]


def test_sheets_without_exchange_on_source_refuses_unknown_venue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = make_workspace(
        tmp_path,
        monkeypatch,
        signals={"sources": {"sheets": {"kind": "sheets", "secrets": "env"}}},
    )
    ws = workspace(home)
    body = sheets_body(exchange="NSE")
    assert receive(ws, "sheets", sheets_headers(body), body).status == 422
    named = sheets_body("n2", exchange="PAPER")  # an account name, any case
    assert receive(ws, "sheets", sheets_headers(named), named).status == 202


def test_huge_body_is_413(home: Path) -> None:
    body = sheets_body(productType="x" * 20000)
    answer = receive(workspace(home), "sheets", sheets_headers(body), body)
    assert answer.status == 413 and queued(home) == 0


def test_unknown_source_is_404(home: Path) -> None:
    answer = receive(workspace(home), "nope", {}, b"{}")
    assert answer.status == 404
    assert _error(answer.body)["code"] == "NOT_FOUND"


def test_missing_source_secret_is_500_without_detail(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ccxtkit.signals import credentials

    monkeypatch.delenv("VHC_SIGNALS_SHEETS_SECRET")
    credentials.forget()
    body = sheets_body()
    answer = receive(workspace(home), "sheets", sheets_headers(body), body)
    assert answer.status == 500
    assert "VHC_SIGNALS" not in json.dumps(answer.body)
    assert queued(home) == 0


def test_kill_switch_active_is_503_nothing_queued(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--home", str(home), "kill-switch", "--activate", "--reason", "test"])
    assert done.value.code in (0, None), capsys.readouterr().err
    body = sheets_body()
    answer = receive(workspace(home), "sheets", sheets_headers(body), body)
    assert answer.status == 503
    assert _error(answer.body)["code"] == "KILL_SWITCH_ACTIVE"
    assert queued(home) == 0
    assert [a["status"] for a in refusals(home)] == [503]


# -- telegram --------------------------------------------------------------------------------
def test_telegram_seed_format_and_crypto_format(home: Path) -> None:
    ws = workspace(home)
    crypto = telegram_body("BUY BTC/USD paper\nQty: 0.01\nType: MARKET", message_id=1)
    answer = receive(ws, "telegram", telegram_headers(), crypto)
    assert answer.status == 202, answer.body
    one_line = telegram_body("SELL ETH/USD paper / Qty: 0.5 / Price: 3000 / Type: LIMIT", 2)
    assert receive(ws, "telegram", telegram_headers(), one_line).status == 202
    stored = rows(
        home,
        "SELECT external_id, symbol, side, type, amount, price, chat_id FROM signals ORDER BY seq",
    )
    assert stored == [
        (f"{CHAT_ID}:1", "BTC/USD", "buy", "market", Decimal("0.01"), None, str(CHAT_ID)),
        (f"{CHAT_ID}:2", "ETH/USD", "sell", "limit", Decimal("0.5"), Decimal(3000), str(CHAT_ID)),
    ]


def test_telegram_seed_text_parses_exactly() -> None:
    text = "BUY RELIANCE NSE\nQty: 10\nPrice: 2450.50\nType: LIMIT\nProduct: MIS"
    p = parse.parse_telegram_text(text, "1", "2", int(datetime.now(UTC).timestamp()))
    assert (p.side, p.symbol, p.venue, p.amount, p.price, p.type, p.product) == (
        "buy", "RELIANCE", "NSE", Decimal(10), Decimal("2450.50"), "limit", "MIS"
    )  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "BUY",
        "BUY BTC/USD paper",  # no Qty
        "BUY BTC/USD paper\nQty: lots",
        "BUY BTC/USD paper\nQty: 1\nQty: 2",
        "BUY BTC/USD paper\nStop: 5\nQty: 1",
        "HODL BTC/USD paper\nQty: 1",
        "BUY BTC/USD paper\nQty: 1\nType: LIMIT",
    ],
)
def test_telegram_bad_texts_are_refused(text: str) -> None:
    with pytest.raises(BadSignal):
        parse.parse_telegram_text(text, "1", "2", int(datetime.now(UTC).timestamp()))


def test_telegram_wrong_secret_token_is_401(home: Path) -> None:
    body = telegram_body("BUY BTC/USD paper\nQty: 0.01")
    for headers in ({}, telegram_headers("wrong")):
        assert receive(workspace(home), "telegram", headers, body).status == 401
    assert queued(home) == 0 and len(refusals(home)) == 2


def test_telegram_other_chat_is_403(home: Path) -> None:
    body = telegram_body("BUY BTC/USD paper\nQty: 0.01", chat_id=777)
    answer = receive(workspace(home), "telegram", telegram_headers(), body)
    assert answer.status == 403 and queued(home) == 0
    assert refusals(home)[0]["status"] == 403


def test_telegram_old_message_and_redelivery(home: Path) -> None:
    ws = workspace(home)
    old = telegram_body(
        "BUY BTC/USD paper\nQty: 0.01", 5, when=datetime.now(UTC) - timedelta(hours=1)
    )
    assert receive(ws, "telegram", telegram_headers(), old).status == 409
    body = telegram_body("BUY BTC/USD paper\nQty: 0.01", 6)
    first = receive(ws, "telegram", telegram_headers(), body)
    again = receive(ws, "telegram", telegram_headers(), body)  # Telegram's redelivery
    assert (first.status, again.status) == (202, 200) and first.body == again.body
    assert queued(home) == 1


def test_telegram_update_without_text_is_422(home: Path) -> None:
    body = json.dumps({"update_id": 1, "edited_message": {}}).encode()
    assert receive(workspace(home), "telegram", telegram_headers(), body).status == 422


# -- tradingview -----------------------------------------------------------------------------
def test_tradingview_passphrase_in_body(home: Path) -> None:
    ws = workspace(home)
    body = tradingview_body()
    answer = receive(ws, "tradingview", {}, body, "52.89.214.238")
    assert answer.status == 202, answer.body
    wrong = tradingview_body(id="tv-2", passphrase="nope")
    assert receive(ws, "tradingview", {}, wrong).status == 401
    missing = tradingview_body(id="tv-3", passphrase=...)
    assert receive(ws, "tradingview", {}, missing).status == 401
    assert queued(home) == 1
    # The passphrase is never stored, in the queue or in the audit rows.
    con_text = json.dumps([list(map(str, r)) for r in rows(home, "SELECT * FROM signals")])
    con_text += json.dumps(refusals(home))
    con_text += json.dumps([list(map(str, r)) for r in rows(home, "SELECT * FROM signal_events")])
    assert TV_PASSPHRASE not in con_text


def test_tradingview_without_id_replays_are_caught_by_body(home: Path) -> None:
    ws = workspace(home)
    body = tradingview_body(id=...)
    assert receive(ws, "tradingview", {}, body).status == 202
    assert receive(ws, "tradingview", {}, body).status == 200
    assert queued(home) == 1


def test_tradingview_ip_allowlist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = {"kind": "tradingview", "exchange": "paper", "secrets": "env",
              "ip_allowlist": ["52.89.214.238", "10.1.0.0/16"]}  # fmt: skip
    home = make_workspace(tmp_path, monkeypatch, signals={"sources": {"tradingview": source}})
    ws = workspace(home)
    assert receive(ws, "tradingview", {}, tradingview_body(id="a"), "52.89.214.238").status == 202
    assert receive(ws, "tradingview", {}, tradingview_body(id="b"), "10.1.4.2").status == 202
    assert receive(ws, "tradingview", {}, tradingview_body(id="c"), "8.8.8.8").status == 403
    assert receive(ws, "tradingview", {}, tradingview_body(id="d"), None).status == 403
    assert queued(home) == 2
    assert [a["status"] for a in refusals(home)] == [403, 403]


def test_tradingview_old_signal_is_409(home: Path) -> None:
    body = tradingview_body(when=datetime.now(UTC) - timedelta(minutes=10))
    assert receive(workspace(home), "tradingview", {}, body).status == 409
    assert queued(home) == 0


def test_chain_verifies_after_intake(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = workspace(home)
    body = sheets_body()
    receive(ws, "sheets", sheets_headers(body), body)
    receive(ws, "sheets", {}, body)
    with pytest.raises(SystemExit) as done:
        main(["--home", str(home), "ledger", "verify"])
    assert done.value.code in (0, None), capsys.readouterr()


# -- many at once: one ledger visit per batch -------------------------------------------------
def test_concurrent_deliveries_are_group_committed_each_answered(home: Path) -> None:
    import threading

    ws = workspace(home)
    bodies = [sheets_body(f"c-{i % 15}") for i in range(30)]  # every id delivered twice
    answers: list[object] = [None] * len(bodies)

    def send(i: int) -> None:
        answers[i] = receive(ws, "sheets", sheets_headers(bodies[i]), bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    statuses = sorted(a.status for a in answers)  # type: ignore[union-attr]
    assert statuses == [200] * 15 + [202] * 15
    assert queued(home) == 15
    by_id: dict[str, set[str]] = {}
    for body, a in zip(bodies, answers, strict=True):
        by_id.setdefault(json.loads(body)["id"], set()).add(a.body["signal_id"])  # type: ignore[union-attr]
    assert all(len(ids) == 1 for ids in by_id.values())


def test_receive_many_answers_in_order_with_a_repeat_inside_the_batch(home: Path) -> None:
    from ccxtkit.signals.intake import Delivery, receive_many

    a, b = sheets_body("m-1"), sheets_body("m-2", quantity="-3")
    answers = receive_many(
        workspace(home),
        [
            Delivery("sheets", sheets_headers(a), a),
            Delivery("sheets", {}, a),
            Delivery("sheets", sheets_headers(b), b),
            Delivery("sheets", sheets_headers(a), a),
        ],
    )
    assert [x.status for x in answers] == [202, 401, 422, 200]
    assert answers[3].body == answers[0].body
    assert queued(home) == 1 and [r["status"] for r in refusals(home)] == [401, 422]


def test_arbitrary_bodies_and_headers_never_crash_or_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    home = make_workspace(tmp_path, monkeypatch)
    ws = workspace(home)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )
    bodies = st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"id": st.text(max_size=10), "timestamp": json_values, "quantity": json_values}
        ).map(lambda v: json.dumps(v).encode()),
    )

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        source=st.sampled_from(["sheets", "telegram", "tradingview", "other"]),
        body=bodies,
        signed=st.booleans(),
    )
    def check(source: str, body: bytes, signed: bool) -> None:
        headers = {**sheets_headers(body), **telegram_headers()} if signed else {"X-API-Key": "x"}
        answer = receive(ws, source, headers, body, "127.0.0.1")
        assert 400 <= answer.status < 500, answer.body
        _error(answer.body)

    check()
    assert queued(home) == 0


def test_ip_allowlist_applies_to_every_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = {
        "kind": "sheets",
        "exchange": "paper",
        "secrets": "env",
        "ip_allowlist": ["10.0.0.0/8"],
    }
    home = make_workspace(tmp_path, monkeypatch, signals={"sources": {"sheets": source}})
    ws = workspace(home)
    body = sheets_body("ip-1")
    assert receive(ws, "sheets", sheets_headers(body), body, "192.168.1.1").status == 403
    assert receive(ws, "sheets", sheets_headers(body), body, "10.2.3.4").status == 202
