"""The SMS alert channel against a local server that speaks Twilio's Messages API.

The server checks what Twilio checks (the path with the account SID, HTTP basic auth
SID:token, the form fields To/From/Body) and answers with Twilio's JSON, errors included.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from ccxtkit.alerts import Alert, send_alert
from tests.test_alerts import workspace

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token-5e4d3c2b1a"  # noqa: S105 - the test server's token
FROM = "+15550001111"
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class Twilio:
    """A Twilio look-alike: the messages it accepted and every request it saw."""

    url: str = ""
    messages: list[dict[str, str]] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


@pytest.fixture
def twilio() -> Iterator[Twilio]:
    """`POST /2010-04-01/Accounts/{SID}/Messages.json` with basic auth SID:TOKEN."""
    state = Twilio()
    path_re = re.compile(r"^/2010-04-01/Accounts/(?P<sid>AC[0-9a-f]{32})/Messages\.json$")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            match = path_re.match(self.path)
            if match is None:
                return self._error(404, 20404, "The requested resource was not found")
            expected = base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
            if match["sid"] != SID or self.headers.get("Authorization") != f"Basic {expected}":
                return self._error(401, 20003, "Authenticate")
            if not self.headers.get("Content-Type", "").startswith(
                "application/x-www-form-urlencoded"
            ):
                return self._error(400, 20001, "Content-Type must be form-encoded")
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            for name, code in (("To", 21604), ("From", 21603), ("Body", 21602)):
                if not form.get(name):
                    return self._error(400, code, f"A '{name}' parameter is required.")
            if len(form["Body"]) > 1600:
                return self._error(400, 21617, "The concatenated message body exceeds 1600")
            state.messages.append(form)
            msid = "SM" + secrets.token_hex(16)
            doc = {
                "account_sid": SID,
                "api_version": "2010-04-01",
                "body": form["Body"],
                "date_created": "Sat, 01 Mar 2025 12:00:00 +0000",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form["From"],
                "num_segments": "1",
                "sid": msid,
                "status": "queued",
                "to": form["To"],
                "uri": f"/2010-04-01/Accounts/{SID}/Messages/{msid}.json",
            }
            self._reply(201, doc)

        def _error(self, status: int, code: int, message: str) -> None:
            state.refused.append((status, message))
            more = f"https://www.twilio.com/docs/errors/{code}"
            self._reply(status, {"code": code, "message": message, "more_info": more,
                                 "status": status})  # fmt: skip

        def _reply(self, status: int, doc: dict[str, Any]) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def sms_yaml(url: str, to: str = "['+15550002222', '+15550003333']") -> str:
    """The `sms:` block of monitoring.alerts for the local server."""
    return f"sms:\n  account_sid: {SID}\n  from_number: '{FROM}'\n  to_numbers: {to}\n  api_base: {url}"


def test_sms_reaches_every_number_with_basic_auth(
    tmp_path: Path, twilio: Twilio, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setenv("VHC_TWILIO_AUTH_TOKEN", TOKEN)
    ws = workspace(tmp_path, sms_yaml(twilio.url))
    result = send_alert(ws, Alert("critical", "Kill switch activated", "reason: x"), now=T0)
    assert result.sent == ["sms"], result.failed
    assert [m["To"] for m in twilio.messages] == ["+15550002222", "+15550003333"]
    assert all(m["From"] == FROM for m in twilio.messages)
    assert twilio.messages[0]["Body"] == "[vhc CRITICAL] Kill switch activated\nreason: x"
    assert TOKEN not in caplog.text


def test_sms_wrong_token_is_a_reported_failure_without_the_token(
    tmp_path: Path, twilio: Twilio, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setenv("VHC_TWILIO_AUTH_TOKEN", "not-the-token")
    ws = workspace(tmp_path, sms_yaml(twilio.url, to="['+15550002222']"))
    result = send_alert(ws, Alert("warning", "t", "b"), now=T0)
    assert result.sent == [] and "HTTP 401" in result.failed["sms"]
    assert "Authenticate (Twilio code 20003)" in result.failed["sms"]
    assert twilio.messages == [] and twilio.refused == [(401, "Authenticate")]
    assert "not-the-token" not in caplog.text and "not-the-token" not in result.failed["sms"]


def test_sms_long_body_is_cut_to_twilios_limit(
    tmp_path: Path, twilio: Twilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VHC_TWILIO_AUTH_TOKEN", TOKEN)
    ws = workspace(tmp_path, sms_yaml(twilio.url, to="['+15550002222']"))
    result = send_alert(ws, Alert("info", "long", "x" * 5000), now=T0)
    assert result.sent == ["sms"], result.failed
    assert len(twilio.messages[0]["Body"]) == 1600


def test_sms_refuses_plain_http_beyond_this_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VHC_TWILIO_AUTH_TOKEN", TOKEN)
    ws = workspace(tmp_path, sms_yaml("http://api.twilio.com", to="['+15550002222']"))
    result = send_alert(ws, Alert("warning", "t", "b"), now=T0)
    assert result.sent == [] and "https://" in result.failed["sms"]


def test_sms_without_its_token_fails_the_channel_only(
    tmp_path: Path, twilio: Twilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VHC_TWILIO_AUTH_TOKEN", raising=False)
    ws = workspace(tmp_path, sms_yaml(twilio.url, to="['+15550002222']"))
    result = send_alert(ws, Alert("warning", "t", "b"), now=T0)
    assert result.sent == [] and "twilio_auth_token" in result.failed["sms"]
    assert twilio.messages == [] and twilio.refused == []


def test_unquoted_phone_numbers_are_a_config_error_naming_the_fix() -> None:
    from ccxtkit.config import config_problems

    text = (
        "monitoring:\n  alerts:\n    sms:\n"
        f"      account_sid: {SID}\n      from_number: '{FROM}'\n"
        "      to_numbers: [+15550002222]\n"
    )
    problems = config_problems(text, "c.yaml")
    assert len(problems) == 1 and "write it quoted, like '+15550002222'" in problems[0], problems
    assert problems[0].startswith("c.yaml:6:")
