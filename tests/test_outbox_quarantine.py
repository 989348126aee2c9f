"""The outbox carries kill-switch events only: forged or broken lines are quarantined, alerted,
never chained, and never stop a command.

Through the real `vhc` CLI on the paper exchange; alerts reach a local HTTP server (webhook).
"""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ccxtkit.exchanges.factory import open_exchange
from ccxtkit.ledger.outbox import outbox_path, queue_event, rejected_path, split
from ccxtkit.risk import killswitch
from tests import test_alerts
from tests.test_killswitch import ledger_holder, run_cli
from tests.test_killswitch_record import BUY, alerting_workspace, kinds, status, titles

http_capture = test_alerts.http_capture
holder = ledger_holder
NOW = datetime.now(UTC).isoformat()


def forged(kind: str, details: dict, subject: str | None = None) -> str:
    """A line in exactly the format vhc writes, as someone editing the workspace would."""
    entry = {
        "id": uuid.uuid4().hex,
        "timestamp": NOW,
        "kind": kind,
        "actor": "ops",
        "subject": subject,
        "details": details,
    }
    return json.dumps(entry, sort_keys=True) + "\n"


def append(ws, text: str) -> None:
    path = outbox_path(ws.ledger_path)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def quarantined(ws) -> list[dict]:
    path = rejected_path(ws.ledger_path)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def ws(tmp_path, http_capture):
    return alerting_workspace(tmp_path, f"{http_capture.url}/hook")


def test_forged_control_events_are_quarantined_not_chained(ws, http_capture, capsys):
    code, _, err = run_cli(ws, BUY, capsys)  # creates the ledger
    assert code == 0, err
    request_id = "w" + uuid.uuid4().hex[:12]
    addr = "bc1qattacker000000000000000000000000000000"
    lines = [
        forged(
            "allowlist.added",
            {
                "asset": "BTC",
                "address": addr,
                "network": None,
                "label": "cold",
                "approver": "admin",
            },
            subject=f"BTC:{addr}",
        ),
        forged("withdraw.requested", {"asset": "BTC", "amount": "1", "address": addr}, request_id),
        forged("withdraw.approved", {"approvers": ["admin"], "via": "totp"}, request_id),
    ]
    append(ws, "".join(lines))
    http_capture.requests.clear()

    code, _, err = run_cli(ws, BUY, capsys)  # any writer drains the outbox
    assert code == 0, err
    assert outbox_path(ws.ledger_path).stat().st_size == 0
    rejected = quarantined(ws)
    assert [r["kind"] for r in rejected] == [
        "allowlist.added",
        "withdraw.requested",
        "withdraw.approved",
    ]
    assert [r["line"] for r in rejected] == [1, 2, 3]
    assert all("not accepted" in r["reason"] for r in rejected)
    assert rejected_path(ws.ledger_path).stat().st_mode & 0o777 == 0o600
    recorded = kinds(ws)
    assert not {"allowlist.added", "withdraw.requested", "withdraw.approved"} & set(recorded)
    assert recorded.count("outbox.quarantined") == 3
    assert "Outbox lines quarantined" in titles(http_capture)
    body = next(b["body"] for b in http_capture.json_bodies() if b["title"].startswith("Outbox"))
    assert "allowlist.added" in body and addr not in body  # kind and line, never the content

    code, _, err = run_cli(ws, ["ledger", "verify"], capsys)
    assert code == 0, err
    code, out, err = run_cli(ws, ["--json", "withdraw", "recover"], capsys)
    assert code in (0, 1), err
    assert request_id not in out
    client = open_exchange(ws, "p")
    try:
        assert client.fetch_withdrawals(datetime.now(UTC) - timedelta(days=1)) == []
    finally:
        client.close()


def test_forged_deactivation_is_refused_and_forged_activation_halts(ws, http_capture, capsys):
    code, _, err = run_cli(ws, ["kill-switch", "--activate", "--reason", "drill"], capsys)
    assert code == 0, err
    append(ws, forged("kill_switch.deactivate", {"approver": "admin", "since": NOW}))
    code, _, err = run_cli(ws, ["withdraw", "recover"], capsys)  # a writer: drains the outbox
    assert code in (0, 1), err
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 4, err
    assert [r["kind"] for r in quarantined(ws)] == ["kill_switch.deactivate"]
    assert "kill_switch.deactivate" not in kinds(ws)
    assert status(ws, capsys)["active"] is True

    # A forged activation can only make things safer: it is an activation.
    other = alerting_workspace(ws.home / "second", f"{http_capture.url}/hook")
    code, _, err = run_cli(other, BUY, capsys)
    assert code == 0, err
    append(other, forged("kill_switch.activate", {"reason": "forged", "trigger": "manual"}))
    assert status(other, capsys)["active"] is True  # queued in the outbox: already counts
    code, _, err = run_cli(other, BUY, capsys)
    assert code == 4, err
    assert "kill_switch.activate" in kinds(other) and quarantined(other) == []


BAD_LINES = [
    '{"id":"x"}\n',
    "not json at all\n",
    "[1, 2, 3]\n",
    json.dumps({"id": uuid.uuid4().hex, "kind": "kill_switch.activate"}) + "\n",
    forged("kill_switch.sweep", {}).replace(NOW, "0001-01-01T00:00:00+00:00"),
    forged("kill_switch.sweep", {}).replace('"id": "', '"id": "%_'),
]


def test_malformed_lines_never_stop_a_command(ws, http_capture, capsys):
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 0, err
    good = forged("kill_switch.sweep", {"reason": "kept", "ok": True, "accounts": {}})
    truncated = forged("kill_switch.activate", {"reason": "cut"})[:40]  # a crash mid-write
    append(ws, "".join(BAD_LINES) + good + truncated)
    # Read-only commands leave the outbox alone.
    before = outbox_path(ws.ledger_path).read_bytes()
    assert status(ws, capsys)["active"] is False
    assert outbox_path(ws.ledger_path).read_bytes() == before

    http_capture.requests.clear()
    commands = [["kill-switch", "--status"], BUY, ["ledger", "verify"], ["withdraw", "recover"]]
    for args in commands:
        code, _, err = run_cli(ws, args, capsys)
        assert code == 0 and "Traceback" not in err, (args, err)
    rejected = quarantined(ws)
    assert len(rejected) == len(BAD_LINES) + 1
    assert rejected[-1]["reason"] == "line cut short (no newline)"
    assert [r["raw"] + "\n" for r in rejected[: len(BAD_LINES)]] == BAD_LINES
    assert kinds(ws).count("kill_switch.sweep") == 1  # the good line made it, once
    assert kinds(ws).count("outbox.quarantined") == len(BAD_LINES) + 1
    assert "Outbox lines quarantined" in titles(http_capture)
    code, _, err = run_cli(ws, ["--json", "doctor"], capsys)
    assert code != 70, err


def test_an_event_queued_after_a_cut_line_is_not_glued_to_it(ws, holder, capsys):
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 0, err
    proc = holder(ws.ledger_path)  # it drains at open: cut the line after that
    append(ws, forged("kill_switch.sweep", {})[:30])
    code, out, err = run_cli(ws, ["--json", "kill-switch", "--activate", "--reason", "x"], capsys)
    assert code == 0 and json.loads(out)["recorded_in"] == "outbox", err
    good, bad = split(outbox_path(ws.ledger_path).read_bytes())
    assert [e.kind for e in good] == ["kill_switch.activate", "kill_switch.sweep"]
    assert len(bad) == 1
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=10)
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 4, err  # the activation reached the chain; the switch holds
    assert kinds(ws).count("kill_switch.activate") == 1


def test_only_kill_switch_events_may_be_queued(ws):
    from ccxtkit.errors import VhcError

    with pytest.raises(VhcError, match="may not be queued"):
        queue_event(ws.ledger_path, "withdraw.approved", {}, actor="ops")
    with pytest.raises(VhcError, match="may not be queued"):
        queue_event(ws.ledger_path, "kill_switch.deactivate", {}, actor="ops")


@pytest.mark.parametrize("damage", ["garbage", "directory"])
def test_activation_on_a_broken_ledger_still_alerts_and_queues(ws, http_capture, capsys, damage):
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 0, err
    path = ws.ledger_path
    if damage == "garbage":
        path.write_bytes(b"this is not a duckdb file" * 100)
    else:
        path.unlink()
        path.mkdir(mode=0o700)
    http_capture.requests.clear()
    started = time.monotonic()
    code, out, err = run_cli(ws, ["--json", "kill-switch", "--activate", "--reason", "x"], capsys)
    assert time.monotonic() - started < 5
    assert code == 0, err
    doc = json.loads(out)
    assert doc["recorded_in"] == "outbox" and doc["state"]["active"]
    assert "Kill switch activated (manual)" in titles(http_capture)
    good, bad = split(outbox_path(path).read_bytes())
    assert [e.kind for e in good] == ["kill_switch.activate", "kill_switch.sweep"] and not bad
    assert killswitch.is_active(ws)
    code, _, _ = run_cli(ws, BUY, capsys)
    assert code == 4


def test_activation_under_a_held_ledger_lock_alerts_and_returns(ws, http_capture, holder, capsys):
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 0, err
    holder(ws.ledger_path)
    http_capture.requests.clear()
    started = time.monotonic()
    code, out, err = run_cli(ws, ["--json", "kill-switch", "--activate", "--reason", "x"], capsys)
    assert time.monotonic() - started < 2.0
    assert code == 0 and json.loads(out)["recorded_in"] == "outbox", err
    assert "Kill switch activated (manual)" in titles(http_capture)
    with pytest.raises(killswitch.KillSwitchActiveError):
        killswitch.ensure_trading_allowed(ws)
    started = time.monotonic()
    doc = status(ws, capsys)  # answers without the ledger, and says so
    assert time.monotonic() - started < 5
    assert doc["active"] is True and "in use" in doc["ledger_note"]
    assert doc["last_event"]["where"] == "outbox"


def test_an_unreadable_outbox_fails_closed_and_never_crashes(ws, http_capture, capsys):
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 0, err
    path = outbox_path(ws.ledger_path)
    path.unlink(missing_ok=True)
    path.mkdir(mode=0o700)  # not a file: nothing in it can be read
    http_capture.requests.clear()
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 4 and "unreadable" in err, err  # it may hide an activation
    assert "Outbox unreadable" in titles(http_capture)
    doc = status(ws, capsys)
    assert doc["active"] is True and "unreadable" in doc["last_event"]["where"]
    for args in (["ledger", "verify"], ["withdraw", "recover"], ["--json", "doctor"]):
        code, _, err = run_cli(ws, args, capsys)
        assert code != 70 and "Traceback" not in err, (args, err)
    path.rmdir()
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 0, err
