"""`withdrawals.approval_method`: the approval request by email (aiosmtpd), by SMS (a Twilio
look-alike), or not at all (manual); never a secret or a code in it."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml

from ccxtkit.auth import totp
from ccxtkit.withdrawals import allowlist
from ccxtkit.workspace import Workspace, write_private
from tests.test_alerts import SMTP_PASSWORD, SMTP_USER, Inbox, smtp_server  # noqa: F401
from tests.test_killswitch import run_cli
from tests.test_sms import FROM, SID, TOKEN, Twilio, twilio  # noqa: F401

ADDR = "0x1111111111111111111111111111111111111111"
SETUP = datetime.now(UTC) - timedelta(days=3)


def make_ws(home: Path, method: str, alerts: dict[str, Any], mp: pytest.MonkeyPatch) -> Workspace:
    """A paper workspace whose approval requests go by `method`; ADDR allowlisted as `cold`."""
    for name in ("VHC_TOTP_SECRET", "VHC_TOTP_ADMIN", "VHC_CONTROL_KEY"):
        mp.delenv(name, raising=False)
    mp.setenv("VHC_SMTP_PASSWORD", SMTP_PASSWORD)
    mp.setenv("VHC_TWILIO_AUTH_TOKEN", TOKEN)
    cfg = {
        "version": "1.0",
        "exchanges": {
            "paper": {
                "id": "paper",
                "secrets": "none",
                "paper": {"starting_balances": {"USDC": 50000}},
            },
        },  # fmt: skip
        "secrets": {"backend": "env"},
        "withdrawals": {"approval_method": method, "request_ttl_hours": 24},
        "monitoring": {"alerts": alerts},
    }
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    ws = Workspace.locate(str(home))
    enrolled = totp.enrol(ws, "admin", backend="env", now=SETUP - timedelta(hours=1))
    for name, value in enrolled.exports.items():  # VHC_TOTP_SECRET and VHC_CONTROL_KEY
        mp.setenv(name, value)
    secret = enrolled.secret
    assert secret is not None
    allowlist.add_entry(ws, "USDC", ADDR, None, "cold", pyotp.TOTP(secret).at(SETUP), now=SETUP)
    return ws


def email_cfg(inbox: Inbox) -> dict[str, Any]:
    return {
        "email": {
            "host": "127.0.0.1",
            "port": inbox.port,
            "sender": "vhc@firm.test",
            "recipients": ["approvers@firm.test"],
            "username": SMTP_USER,
            "password_secret": "smtp_password",
            "ca_file": str(inbox.ca_file),
        },
        "min_severity": "critical",  # alerts are held back: only the approval request goes out
    }


def sms_cfg(server: Twilio) -> dict[str, Any]:
    return {
        "sms": {
            "account_sid": SID,
            "from_number": FROM,
            "to_numbers": ["+15550002222"],
            "api_base": server.url,
        }
    }


def request(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    rc, out, err = run_cli(
        ws, ["--json", "withdraw", "request", "paper", "USDC", "250", ADDR], capsys
    )
    assert rc == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def assert_approval_request(text: str, doc: dict[str, Any], ws: Workspace) -> None:
    """The facts an approver decides on and the command, and nothing secret."""
    rid = doc["id"]
    assert f"vhc withdraw-approve {rid} --auth-code CODE" in text
    assert "250 USDC" in text and ADDR in text and "paper" in text
    assert "Tag/memo: none" in text and "Label: cold" in text
    assert f"Expires: {datetime.fromisoformat(doc['expires_at']):%Y-%m-%d %H:%M} UTC" in text
    for secret in (os.environ[totp.env_names("admin")[0]], SMTP_PASSWORD, TOKEN):
        assert secret not in text


def test_email_approval_request_reaches_the_approvers(
    tmp_path: Path,
    smtp_server: Inbox,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = make_ws(tmp_path, "Email", email_cfg(smtp_server), monkeypatch)
    smtp_server.messages.clear()  # the allowlist alert of the setup
    doc = request(ws, capsys)
    assert doc["status"] == "pending" and doc["notice"] == "approval request sent by email"
    (msg,) = smtp_server.messages
    assert msg["To"] == "approvers@firm.test" and doc["id"] in msg["Subject"]
    assert_approval_request(msg.get_payload(decode=True).decode(), doc, ws)


def test_sms_approval_request_with_the_seeds_spelling(
    tmp_path: Path,
    twilio: Twilio,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = make_ws(tmp_path, "SMS", sms_cfg(twilio), monkeypatch)
    twilio.messages.clear()  # the allowlist alert of the setup
    doc = request(ws, capsys)
    assert doc["notice"] == "approval request sent by sms"
    (sms,) = twilio.messages
    assert sms["To"] == "+15550002222" and sms["From"] == FROM
    assert_approval_request(sms["Body"], doc, ws)


def test_manual_sends_nothing_even_with_channels_configured(
    tmp_path: Path,
    smtp_server: Inbox,  # noqa: F811
    twilio: Twilio,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    alerts = {**email_cfg(smtp_server), **sms_cfg(twilio)}
    ws = make_ws(tmp_path, "manual", alerts, monkeypatch)
    smtp_server.messages.clear()
    twilio.messages.clear()
    doc = request(ws, capsys)
    assert "manual" in doc["notice"]
    assert smtp_server.messages == [] and twilio.messages == []


def test_sms_method_without_an_sms_channel_says_the_request_was_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = make_ws(tmp_path, "sms", {}, monkeypatch)
    rc, out, err = run_cli(ws, ["withdraw", "request", "paper", "USDC", "250", ADDR], capsys)
    assert rc == 0, err
    assert "approval request NOT sent" in out and "monitoring.alerts.sms" in out


def test_the_message_shows_tag_and_label_and_the_time_lock() -> None:
    from decimal import Decimal

    from ccxtkit.withdrawals.notify import request_lines
    from ccxtkit.withdrawals.requests import WithdrawalRequest

    t = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    req = WithdrawalRequest(
        id="wr-0123456789", exchange="kraken", asset="XRP", amount=Decimal("120.5"),
        address="rEXAMPLE", network=None, tag="4242", label="exchange-b", usd=Decimal("61"),
        requested_at=t, requested_by="ops", approvals_needed=2,
        time_lock_until=t + timedelta(hours=12), expires_at=t + timedelta(hours=36),
    )  # fmt: skip
    lines = request_lines(req)
    assert "Tag/memo: 4242" in lines and "Label: exchange-b" in lines
    assert "Amount: 120.5 XRP (~61 USD) from kraken" in lines
    assert "Needs: 2 approval(s), or one after the time lock ends 2026-01-02 15:04 UTC" in lines
    assert "Expires: 2026-01-03 15:04 UTC" in lines
    assert "Approve: vhc withdraw-approve wr-0123456789 --auth-code CODE --approver NAME" in lines
