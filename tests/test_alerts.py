"""Alerts against real servers on 127.0.0.1: aiosmtpd with STARTTLS + AUTH, HTTP for webhooks.

Nothing of vhc is mocked: the channels talk SMTP and HTTP to servers the tests start.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ccxtkit.alerts import Alert, send_alert
from ccxtkit.workspace import Workspace
from tests.servers import closed_port, free_port

SMTP_USER = "alerts@vhc.test"
SMTP_PASSWORD = "smtp-pass-7f3a9c1e"  # noqa: S105 - test server's password
BOT_TOKEN = "123456:bot-token-9e8d7c6b"  # noqa: S105
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)


# --- servers ---------------------------------------------------------------------------------
def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed CA certificate for 127.0.0.1/localhost and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vhc test smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Inbox:
    """What the SMTP server received."""

    port: int
    ca_file: Path
    messages: list[Message] = field(default_factory=list)
    tls: list[bool] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[Inbox]:
    """aiosmtpd on a free port: STARTTLS required, AUTH checked against SMTP_USER/PASSWORD."""
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = make_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox(port=free_port(), ca_file=cert)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            inbox.messages.append(message_from_bytes(envelope.content))
            inbox.tls.append(session.ssl is not None)
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        inbox.logins.append((login, password))
        # handled=False: aiosmtpd answers 235/535 itself
        return AuthResult(success=(login, password) == (SMTP_USER, SMTP_PASSWORD), handled=False)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=inbox.port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()


@dataclass
class Captured:
    """Requests an HTTP server received."""

    url: str
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)  # method, path, body
    status: int = 200
    reply: bytes = b"ok"

    def json_bodies(self) -> list[Any]:
        return [json.loads(body) for _, _, body in self.requests]


@pytest.fixture
def http_capture() -> Iterator[Captured]:
    """A local HTTP server that records every request and answers `status` + `reply`."""
    captured = Captured(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            captured.requests.append((self.command, self.path, self.rfile.read(length)))
            self.send_response(captured.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(captured.reply)

        do_POST = do_PUT = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    captured.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield captured
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def vhc_log() -> Iterator[list[str]]:
    """The messages logged on the `vhc` logger during the test (before any redaction)."""
    lines: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(f"{record.levelname} {record.getMessage()}")

    logger = logging.getLogger("vhc")
    handler, level = ListHandler(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# --- workspace -------------------------------------------------------------------------------
def workspace(home: Path, alerts_yaml: str) -> Workspace:
    """A workspace whose config holds `alerts_yaml` under monitoring.alerts (secrets from env)."""
    (home / "config").mkdir(parents=True, exist_ok=True)
    indented = "\n".join("    " + line for line in alerts_yaml.strip().splitlines())
    text = f"secrets:\n  backend: env\nmonitoring:\n  alerts:\n{indented}\n"
    path = home / "config" / "trading_config.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return Workspace.locate(str(home))


def email_yaml(inbox: Inbox, ca: bool = True) -> str:
    lines = [
        "email:",
        "  host: 127.0.0.1",
        f"  port: {inbox.port}",
        "  sender: vhc@firm.test",
        "  recipients: [ops@firm.test, cfo@firm.test]",
        f"  username: {SMTP_USER}",
        "  password_secret: smtp_password",
    ]
    if ca:
        lines.append(f"  ca_file: {inbox.ca_file}")
    return "\n".join(lines)


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SMTP password and bot token in the env secrets backend (VHC_<NAME>)."""
    monkeypatch.setenv("VHC_SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("VHC_TELEGRAM_BOT_TOKEN", BOT_TOKEN)


# --- email -----------------------------------------------------------------------------------
def test_email_goes_over_starttls_with_login(
    tmp_path: Path, smtp_server: Inbox, secrets_env: None, vhc_log: list[str]
) -> None:
    ws = workspace(tmp_path, email_yaml(smtp_server) + "\nmin_severity: warning")
    alert = Alert("critical", "Kill switch activated", "reason: runaway strategy\nby: alice")

    result = send_alert(ws, alert, now=T0)

    assert result.sent == ["email"] and result.ok
    assert smtp_server.logins == [(SMTP_USER, SMTP_PASSWORD)]
    assert smtp_server.tls == [True]
    (msg,) = smtp_server.messages
    assert msg["Subject"] == "[vhc CRITICAL] Kill switch activated"
    assert msg["To"] == "ops@firm.test, cfo@firm.test"
    assert msg["X-Vhc-Severity"] == "critical"
    assert "runaway strategy" in msg.get_payload(decode=True).decode()
    assert any("CRITICAL" in line and "Kill switch activated" in line for line in vhc_log)
    assert not any(SMTP_PASSWORD in line for line in vhc_log)
    state = json.loads((ws.state_dir / "alerts_dedup.json").read_text())
    assert state == {"Kill switch activated": T0.isoformat()}
    assert (ws.state_dir / "alerts_dedup.json").stat().st_mode & 0o077 == 0


def test_email_refuses_an_untrusted_certificate(
    tmp_path: Path, smtp_server: Inbox, secrets_env: None, vhc_log: list[str]
) -> None:
    ws = workspace(tmp_path, email_yaml(smtp_server, ca=False))

    result = send_alert(ws, Alert("warning", "t", "b"), now=T0)

    assert result.sent == [] and "TLS" in result.failed["email"]
    assert smtp_server.messages == [] and smtp_server.logins == []


def test_wrong_password_is_reported_not_raised_and_never_logged(
    tmp_path: Path, smtp_server: Inbox, monkeypatch: pytest.MonkeyPatch, vhc_log: list[str]
) -> None:
    wrong = "wrong-password-31337"
    monkeypatch.setenv("VHC_SMTP_PASSWORD", wrong)
    ws = workspace(tmp_path, email_yaml(smtp_server))

    result = send_alert(ws, Alert("critical", "Ledger verify failed", "row 12"), now=T0)

    assert "refused the login" in result.failed["email"]
    assert smtp_server.messages == []
    assert any("not delivered by email" in line for line in vhc_log)
    assert not any(wrong in line for line in vhc_log + list(result.failed.values()))
    # nothing was delivered, so the key is not held back: the next occurrence tries again
    assert (
        not (ws.state_dir / "alerts_dedup.json").exists()
        or json.loads((ws.state_dir / "alerts_dedup.json").read_text()) == {}
    )


# --- webhooks and Telegram -------------------------------------------------------------------
def test_slack_webhook_and_telegram_receive_the_alert(
    tmp_path: Path, http_capture: Captured, secrets_env: None
) -> None:
    http_capture.reply = b'{"ok": true, "result": {}}'
    ws = workspace(
        tmp_path,
        f"""
slack: {{url: "{http_capture.url}/services/T0/B0/slack-secret-xyz"}}
webhook: {{url: "{http_capture.url}/hook"}}
telegram: {{chat_id: "-100200", api_base: "{http_capture.url}"}}
""",
    )
    alert = Alert(
        "warning", "Reconcile discrepancy", "kraken USD off by $150.00", key="recon:kraken"
    )

    result = send_alert(ws, alert, now=T0)

    assert sorted(result.sent) == ["slack", "telegram", "webhook"], result.failed
    by_path = {path: (method, json.loads(body)) for method, path, body in http_capture.requests}
    method, slack = by_path["/services/T0/B0/slack-secret-xyz"]
    assert method == "POST"
    assert slack == {"text": "*[vhc WARNING] Reconcile discrepancy*\nkraken USD off by $150.00"}
    _, hook = by_path["/hook"]
    assert hook["severity"] == "warning" and hook["key"] == "recon:kraken"
    assert hook["title"] == "Reconcile discrepancy" and hook["timestamp"] == T0.isoformat()
    _, tg = by_path[f"/bot{BOT_TOKEN}/sendMessage"]
    assert tg["chat_id"] == "-100200"
    assert tg["text"].startswith("[vhc WARNING] Reconcile discrepancy")


def test_telegram_without_ok_true_is_a_failure(
    tmp_path: Path, http_capture: Captured, secrets_env: None
) -> None:
    http_capture.reply = b'{"ok": false, "description": "chat not found"}'
    ws = workspace(tmp_path, f'telegram: {{chat_id: "1", api_base: "{http_capture.url}"}}')

    result = send_alert(ws, Alert("critical", "x", "y"), now=T0)

    assert "did not confirm" in result.failed["telegram"]
    assert BOT_TOKEN not in result.failed["telegram"]


def test_missing_token_fails_the_channel_only(
    tmp_path: Path, http_capture: Captured, monkeypatch: pytest.MonkeyPatch, vhc_log: list[str]
) -> None:
    monkeypatch.delenv("VHC_TELEGRAM_BOT_TOKEN", raising=False)
    ws = workspace(
        tmp_path,
        f"""
telegram: {{chat_id: "1", api_base: "{http_capture.url}"}}
webhook: {{url: "{http_capture.url}/hook"}}
""",
    )

    result = send_alert(ws, Alert("critical", "x", "y"), now=T0)

    assert result.sent == ["webhook"]
    assert "VHC_TELEGRAM_BOT_TOKEN" in result.failed["telegram"]
    assert [p for _, p, _ in http_capture.requests] == ["/hook"]


# --- failures, dedup and severity ------------------------------------------------------------
def test_failing_channels_do_not_raise_and_others_still_deliver(
    tmp_path: Path, http_capture: Captured, smtp_server: Inbox, secrets_env: None,
    vhc_log: list[str],
) -> None:  # fmt: skip
    http_capture.status = 500
    ws = workspace(
        tmp_path,
        email_yaml(smtp_server)
        + f"""
slack: {{url: "http://127.0.0.1:{closed_port()}/dead"}}
webhook: {{url: "{http_capture.url}/hook"}}
""",
    )

    result = send_alert(ws, Alert("critical", "Exchange down", "kraken"), now=T0)

    assert result.sent == ["email"]
    assert result.failed["webhook"] == "webhook: HTTP 500 Internal Server Error"
    assert result.failed["slack"].startswith("slack: cannot connect")
    assert len(smtp_server.messages) == 1
    assert sum("not delivered" in line for line in vhc_log) == 2


def test_same_key_is_sent_once_per_window(tmp_path: Path, http_capture: Captured) -> None:
    ws = workspace(tmp_path, f'webhook: {{url: "{http_capture.url}/hook"}}\ndedup_minutes: 60')
    alert = Alert("warning", "Drawdown 10%", "portfolio down 10.4%")

    first = send_alert(ws, alert, now=T0)
    again = send_alert(ws, alert, now=T0 + dt.timedelta(minutes=59))
    other = send_alert(ws, Alert("warning", "Drawdown 10%", "x", key="other"), now=T0)
    later = send_alert(ws, alert, now=T0 + dt.timedelta(minutes=61))

    assert first.sent == ["webhook"]
    assert again.sent == [] and again.skipped == "duplicate"
    assert other.sent == ["webhook"]
    assert later.sent == ["webhook"]
    assert len(http_capture.requests) == 3


def test_failed_delivery_is_retried_by_the_next_alert(
    tmp_path: Path, http_capture: Captured
) -> None:
    ws = workspace(tmp_path, f'webhook: {{url: "{http_capture.url}/hook"}}')
    http_capture.status = 503
    assert send_alert(ws, Alert("critical", "k", "b"), now=T0).failed
    http_capture.status = 200

    result = send_alert(ws, Alert("critical", "k", "b"), now=T0 + dt.timedelta(minutes=1))

    assert result.sent == ["webhook"]
    assert len(http_capture.requests) == 2


def test_below_min_severity_is_only_logged(
    tmp_path: Path, http_capture: Captured, vhc_log: list[str]
) -> None:
    ws = workspace(tmp_path, f'webhook: {{url: "{http_capture.url}/hook"}}\nmin_severity: warning')

    result = send_alert(ws, Alert("info", "Reconcile clean", "no findings"), now=T0)

    assert result.skipped == "below_min_severity" and result.sent == []
    assert http_capture.requests == []
    assert any(line.startswith("INFO alert INFO") and "Reconcile clean" in line for line in vhc_log)


def test_broken_config_never_raises(tmp_path: Path, vhc_log: list[str]) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "trading_config.yaml").write_text("monitoring: [oops\n")
    (tmp_path / "config" / "trading_config.yaml").chmod(0o600)
    ws = Workspace.locate(str(tmp_path))

    result = send_alert(ws, Alert("critical", "Kill switch activated", "b"), now=T0)

    assert result.skipped == "error" and "not valid YAML" in result.failed["alerts"]
    assert any("Kill switch activated" in line for line in vhc_log)
