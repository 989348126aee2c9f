"""The kill switch is not just a file: deleting or editing it never resumes trading.

Everything runs through the real `vhc` CLI on the paper exchange; alerts go to a real local
HTTP server through the webhook channel (tests/test_alerts.py's `http_capture`).
"""

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
import yaml

from ccxtkit.ledger.store import open_ledger
from ccxtkit.risk import killswitch
from ccxtkit.workspace import Workspace, write_private
from tests import test_alerts
from tests.test_killswitch import place_resting, run_cli

http_capture = test_alerts.http_capture
BUY = ["trade", "buy", "BTC/USD", "0.001", "--exchange", "p", "--yes"]


def alerting_workspace(home: Path, hook_url: str) -> Workspace:
    """One paper account `p`; every alert goes to the webhook at once (no dedup window)."""
    cfg = {
        "version": "1.0",
        "exchanges": {"p": {"id": "paper"}},
        "secrets": {"backend": "env"},
        "monitoring": {"alerts": {"webhook": {"url": hook_url}, "dedup_minutes": 0}},
    }
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    return Workspace.locate(str(home))


def kinds(ws: Workspace) -> list[str]:
    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        return [r[0] for r in ledger.query("SELECT kind FROM control_events ORDER BY seq")]


def titles(captured) -> list[str]:
    return [body["title"] for body in captured.json_bodies()]


def status(ws: Workspace, capsys) -> dict:
    code, out, err = run_cli(ws, ["--json", "kill-switch", "--status"], capsys)
    assert code == 0, err
    return json.loads(out)


def doctor_kill_switch(ws: Workspace, capsys) -> tuple[int, list[dict]]:
    code, out, _ = run_cli(ws, ["--json", "doctor"], capsys)
    checks = [c for c in json.loads(out)["checks"] if c["area"] == "kill switch"]
    return code, checks


@pytest.fixture
def ws(tmp_path, http_capture, monkeypatch):
    for name in ("VHC_TOTP_SECRET", "VHC_TOTP_ADMIN", "VHC_CONTROL_KEY"):
        monkeypatch.delenv(name, raising=False)
    return alerting_workspace(tmp_path, f"{http_capture.url}/hook")


@pytest.mark.parametrize("how", ["delete", "move"])
def test_state_file_gone_after_activation_keeps_trading_blocked(ws, http_capture, capsys, how):
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 0, err  # a new workspace trades: no state file yet, the ledger says inactive
    assert killswitch.state_path(ws).exists()
    code, _, err = run_cli(ws, ["kill-switch", "--activate", "--reason", "key leak"], capsys)
    assert code == 0, err
    if how == "delete":
        killswitch.state_path(ws).unlink()
    else:
        shutil.move(killswitch.state_path(ws), ws.home / "elsewhere.json")

    doc = status(ws, capsys)
    assert doc["active"] is True and doc["file_problem"] == "missing"
    assert "missing" in doc["disagreement"] and doc["last_event"]["kind"] == "kill_switch.activate"
    _, out, _ = run_cli(ws, ["kill-switch", "--status"], capsys)
    assert "ACTIVE" in out and "STATE PROBLEM" in out and "missing" in out
    code, checks = doctor_kill_switch(ws, capsys)
    assert code != 0 and checks[0]["status"] == "fail" and "missing" in checks[0]["detail"]
    assert not killswitch.state_path(ws).exists()  # status and doctor change nothing

    http_capture.requests.clear()
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 4, err
    assert "missing" in err and "ledger" in err
    assert "Kill switch state file disagrees with the ledger" in titles(http_capture)
    assert killswitch.is_active(ws)
    # The pre-send check alone (no ledger) refuses a missing file too.
    with pytest.raises(killswitch.KillSwitchActiveError):
        killswitch.ensure_trading_allowed(ws)


def test_state_file_edited_to_inactive_keeps_trading_blocked(ws, http_capture, capsys):
    code, _, err = run_cli(ws, ["kill-switch", "--activate", "--reason", "drill"], capsys)
    assert code == 0, err
    path = killswitch.state_path(ws)
    forged = json.loads(path.read_text())
    future = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
    forged.update(active=False, deactivated_at=future, deactivated_by="mallory")
    write_private(path, json.dumps(forged))

    http_capture.requests.clear()
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 4 and "says inactive" in err, err
    assert "Kill switch state file disagrees with the ledger" in titles(http_capture)
    doc = status(ws, capsys)
    assert doc["active"] is True and doc["file_says_active"] is False
    assert "says inactive" in doc["disagreement"]
    code, checks = doctor_kill_switch(ws, capsys)
    assert code != 0 and checks[0]["status"] == "fail"
    assert killswitch.is_active(ws)  # withdrawals ask this: refused as well
    # A file that is garbage is active too, and reported.
    write_private(path, "{garbage")
    code, _, _ = run_cli(ws, BUY, capsys)
    assert code == 4
    assert status(ws, capsys)["file_problem"].startswith("unreadable")


def enrol_admin(ws: Workspace, monkeypatch) -> str:
    from ccxtkit.auth import totp

    result = totp.enrol(ws, "admin", backend="env")
    for name, value in result.exports.items():  # VHC_TOTP_SECRET and VHC_CONTROL_KEY
        monkeypatch.setenv(name, value)
    assert result.secret is not None
    return result.secret


def test_deactivation_writes_ledger_and_file_and_repairs_a_lost_file(ws, monkeypatch, capsys):
    secret = enrol_admin(ws, monkeypatch)
    place_resting(ws, "p", 1)
    code, _, err = run_cli(ws, ["kill-switch", "--activate", "--reason", "drill"], capsys)
    assert code == 0, err
    killswitch.state_path(ws).unlink()  # lost: the ledger still says active
    good = pyotp.TOTP(secret).now()
    code, out, err = run_cli(ws, ["kill-switch", "--deactivate", "--auth-code", good], capsys)
    assert code == 0 and "deactivated" in out, err
    assert kinds(ws)[-1] == "kill_switch.deactivate"
    doc = status(ws, capsys)
    assert doc["active"] is False and doc["disagreement"] is None and doc["file_problem"] is None
    assert doc["last_event"]["kind"] == "kill_switch.deactivate" and doc["reason"] == "drill"
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 0, err
    # Deleting the file of a switch that is off is harmless: the ledger says off, so the next
    # trade writes it back as inactive.
    killswitch.state_path(ws).unlink()
    code, checks = doctor_kill_switch(ws, capsys)
    assert checks[0]["status"] == "ok" and "missing" in checks[0]["detail"]
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 0, err
    assert json.loads(killswitch.state_path(ws).read_text())["active"] is False


def test_deactivate_with_a_bad_code_changes_neither_source(ws, monkeypatch, capsys):
    secret = enrol_admin(ws, monkeypatch)
    killswitch.activate(ws, "drill")
    good = pyotp.TOTP(secret).now()
    wrong = f"{(int(good) + 500000) % 1000000:06d}"
    code, _, _ = run_cli(ws, ["kill-switch", "--deactivate", "--auth-code", wrong], capsys)
    assert code == 8
    assert killswitch.read_state(ws).active and killswitch.is_active(ws)
    assert "kill_switch.deactivate" not in kinds(ws)
    assert kinds(ws).count("kill_switch.deactivate_failed") == 1


def test_pre_send_check_never_touches_the_ledger_lock(ws, capsys):
    """The check right before a send reads the file only: it answers while the ledger is held."""
    code, _, err = run_cli(ws, BUY, capsys)
    assert code == 0, err
    with open_ledger(ws.ledger_path, wait_seconds=5):
        killswitch.ensure_trading_allowed(ws)  # would deadlock on our own lock if it opened it
        with killswitch.order_send_guard(ws):
            pass
        killswitch.activate(ws, "under the lock", timeout=5)
        with pytest.raises(killswitch.KillSwitchActiveError):
            killswitch.ensure_trading_allowed(ws)
