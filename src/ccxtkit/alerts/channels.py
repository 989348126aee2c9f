"""The alert channels: SMTP email, Slack incoming webhook, a generic JSON webhook, Telegram,
SMS through Twilio's REST API.

Each channel is a function `(ws, config, alert, now) -> None` that raises `ChannelError` (or any
OSError) when delivery failed; `send_alert` turns that into a log line and a result entry.
Credentials come from the secrets backend and are registered for redaction before use.
"""

from __future__ import annotations

import base64
import json
import smtplib
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Any

from ccxtkit.logs import register_secret

if TYPE_CHECKING:
    from ccxtkit.config import EmailChannel, SmsChannel, TelegramChannel, WebhookChannel
    from ccxtkit.workspace import Workspace

    from . import Alert

#: Seconds to wait on any one channel: an alert must never stall the command that raised it.
TIMEOUT = 5.0

#: Secret name used for the SMTP password when `password_secret` is not set.
DEFAULT_SMTP_SECRET = "smtp_password"  # noqa: S105 - a secret's name, not a secret


class ChannelError(Exception):
    """A channel could not deliver; the message names the cause, never a credential."""


def subject_line(alert: Alert) -> str:
    """The one-line summary used as email subject and first line of chat messages."""
    return f"[vhc {alert.severity.upper()}] {alert.title}"


def alert_document(alert: Alert, now: datetime) -> dict[str, Any]:
    """The alert as a JSON-ready dict (the generic webhook's body)."""
    return {
        "source": "vhc",
        "severity": alert.severity,
        "title": alert.title,
        "body": alert.body,
        "key": alert.dedup_key,
        "host": socket.gethostname(),
        "timestamp": now.isoformat(),
    }


def _secret(ws: Workspace, name: str, what: str) -> str:
    """Resolve a secret through the secrets backend and register it for redaction."""
    try:
        from ccxtkit.secrets import get_secret
    except ImportError:
        raise ChannelError(f"{what}: the secrets backend is not available") from None
    try:
        value = get_secret(ws, name)
    except Exception as exc:  # noqa: BLE001 - any backend failure is a delivery failure
        raise ChannelError(f"{what}: secret {name!r} could not be read ({exc})") from None
    if not value:
        raise ChannelError(f"{what}: secret {name!r} is empty; run `vhc secrets set {name}`")
    register_secret(value)
    return value


def send_email(ws: Workspace, cfg: EmailChannel, alert: Alert, now: datetime) -> None:
    """Send the alert by SMTP, with STARTTLS, logging in when a username is configured."""
    if cfg.username and not cfg.starttls:
        # Never send a password over a connection that was not upgraded to TLS.
        raise ChannelError("email: refusing to log in without STARTTLS (set starttls: true)")
    msg = EmailMessage()
    msg["Subject"] = subject_line(alert)
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.recipients)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain="vhc.local")
    msg["X-Vhc-Severity"] = alert.severity
    msg["X-Vhc-Alert-Key"] = alert.dedup_key
    msg.set_content(f"{alert.title}\n\n{alert.body}\n\n-- vhc on {socket.gethostname()}\n")
    password = (
        _secret(ws, cfg.password_secret or DEFAULT_SMTP_SECRET, "email") if cfg.username else None
    )
    try:
        with smtplib.SMTP(cfg.host, cfg.port, timeout=TIMEOUT) as smtp:
            smtp.ehlo()
            if cfg.starttls:
                context = ssl.create_default_context(
                    cafile=str(ws.path(cfg.ca_file)) if cfg.ca_file else None
                )
                smtp.starttls(context=context)
                smtp.ehlo()
            if cfg.username and password is not None:
                smtp.login(cfg.username, password)
            refused = smtp.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise ChannelError(f"email: the SMTP server refused the login ({exc.smtp_code})") from None
    except smtplib.SMTPException as exc:
        raise ChannelError(f"email: {type(exc).__name__}: {exc}") from None
    except ssl.SSLError as exc:
        raise ChannelError(f"email: TLS failed: {exc.reason or exc}") from None
    except OSError as exc:
        raise ChannelError(f"email: cannot reach {cfg.host}:{cfg.port}: {exc}") from None
    if refused:
        raise ChannelError(f"email: recipients refused: {', '.join(sorted(refused))}")


def _post_json(url: str, payload: dict[str, Any], what: str) -> bytes:
    """POST a JSON body; raise ChannelError on any non-2xx or network failure."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ChannelError(f"{what}: the URL must start with https:// (got {scheme or 'none'}:)")
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "vhc-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            body: bytes = response.read(65536)
            return body
    except urllib.error.HTTPError as exc:
        raise ChannelError(f"{what}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ChannelError(f"{what}: cannot connect ({exc.reason})") from None
    except OSError as exc:
        raise ChannelError(f"{what}: {type(exc).__name__}: {exc}") from None


def send_slack(ws: Workspace, cfg: WebhookChannel, alert: Alert, now: datetime) -> None:
    """Post the alert to a Slack incoming webhook ({"text": ...})."""
    register_secret(cfg.url)  # the webhook URL is its own credential
    text = f"*{subject_line(alert)}*\n{alert.body}"
    _post_json(cfg.url, {"text": text}, "slack")


def send_webhook(ws: Workspace, cfg: WebhookChannel, alert: Alert, now: datetime) -> None:
    """Post the alert as a JSON document to a generic webhook."""
    register_secret(cfg.url)
    _post_json(cfg.url, alert_document(alert, now), "webhook")


def send_telegram(ws: Workspace, cfg: TelegramChannel, alert: Alert, now: datetime) -> None:
    """Send the alert through a Telegram bot's sendMessage."""
    token = _secret(ws, cfg.token_secret, "telegram")
    url = f"{cfg.api_base.rstrip('/')}/bot{token}/sendMessage"
    text = f"{subject_line(alert)}\n{alert.body}"
    body = _post_json(url, {"chat_id": cfg.chat_id, "text": text}, "telegram")
    try:
        ok = json.loads(body or b"{}").get("ok", False)
    except (ValueError, AttributeError):
        ok = False
    if ok is not True:
        raise ChannelError("telegram: the Bot API did not confirm the message (ok != true)")


#: Twilio refuses a message body longer than this.
SMS_MAX_CHARS = 1600
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def send_sms(ws: Workspace, cfg: SmsChannel, alert: Alert, now: datetime) -> None:
    """Send the alert as an SMS to each number (Twilio: POST .../Accounts/{Sid}/Messages.json)."""
    base = urllib.parse.urlsplit(cfg.api_base)
    if base.scheme != "https" and not (base.scheme == "http" and base.hostname in _LOOPBACK):
        # Basic auth carries the token: never over plain HTTP beyond this machine.
        raise ChannelError(f"sms: api_base must start with https:// (got {cfg.api_base!r})")
    token = _secret(ws, cfg.token_secret, "sms")
    auth = base64.b64encode(f"{cfg.account_sid}:{token}".encode()).decode("ascii")
    register_secret(auth)
    sid = urllib.parse.quote(cfg.account_sid, safe="")
    url = f"{cfg.api_base.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
    text = f"{subject_line(alert)}\n{alert.body}"
    if len(text) > SMS_MAX_CHARS:
        text = text[: SMS_MAX_CHARS - 1] + "\u2026"
    failures = []
    for number in cfg.to_numbers:
        form = {"To": number, "From": cfg.from_number, "Body": text}
        try:
            _twilio_post(url, auth, form)
        except ChannelError as exc:
            failures.append(f"{number}: {exc}")
    if failures:
        raise ChannelError("sms: " + "; ".join(failures))


def _twilio_post(url: str, auth: str, form: dict[str, str]) -> None:
    request = urllib.request.Request(  # noqa: S310 - scheme checked by send_sms
        url,
        data=urllib.parse.urlencode(form).encode("ascii"),
        headers={
            "Authorization": f"Basic {auth}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "User-Agent": "vhc-alerts",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            body = response.read(65536)
    except urllib.error.HTTPError as exc:
        raise ChannelError(f"HTTP {exc.code}: {_twilio_error(exc.read(4096))}") from None
    except urllib.error.URLError as exc:
        raise ChannelError(f"cannot connect ({exc.reason})") from None
    except OSError as exc:
        raise ChannelError(f"{type(exc).__name__}: {exc}") from None
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not doc.get("sid"):
        raise ChannelError("Twilio did not confirm the message (no sid in the reply)")
    if doc.get("status") in ("failed", "undelivered"):
        raise ChannelError(f"Twilio reports the message {doc.get('status')}")


def _twilio_error(body: bytes) -> str:
    """Twilio's error message ({"code", "message"}), or a placeholder."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return "no error detail"
    if isinstance(doc, dict) and doc.get("message"):
        return f"{doc.get('message')} (Twilio code {doc.get('code')})"
    return "no error detail"


#: Channel name -> sender; the names are the keys under `monitoring.alerts`.
Sender = Callable[["Workspace", Any, "Alert", datetime], None]
SENDERS: dict[str, Sender] = {
    "email": send_email,
    "slack": send_slack,
    "webhook": send_webhook,
    "telegram": send_telegram,
    "sms": send_sms,
}
