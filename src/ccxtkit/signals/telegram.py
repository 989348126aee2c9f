"""Answering a Telegram signal in its chat with the outcome (Bot API `sendMessage`).

The base URL is `signals.sources.<name>.bot_api_base` (tests point it at a local server). The
bot token is part of the URL, so it is registered for redaction and never put in an error.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..config import SignalSource
from ..logs import register_secret

TIMEOUT = 10.0


class ReplyError(Exception):
    """The reply was not delivered (the message says why, never the token)."""


def send_message(
    cfg: SignalSource, token: str, chat_id: str, text: str, reply_to: str | None = None
) -> None:
    """POST {bot_api_base}/bot<token>/sendMessage; ReplyError unless Telegram says ok."""
    register_secret(token)
    base = cfg.bot_api_base.rstrip("/")
    if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        raise ReplyError("bot_api_base must start with https://")
    payload: dict[str, Any] = {
        "chat_id": int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
    }
    payload["text"] = text[:4000]
    if reply_to and reply_to.isdigit():
        payload["reply_to_message_id"] = int(reply_to)
        payload["allow_sending_without_reply"] = True
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        f"{base}/bot{token}/sendMessage",
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "User-Agent": "vhc-signals"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            body = response.read(65536)
    except urllib.error.HTTPError as exc:
        raise ReplyError(f"the Bot API answered HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise ReplyError(f"cannot reach the Bot API ({type(exc.reason).__name__})") from None
    except OSError as exc:
        raise ReplyError(f"cannot reach the Bot API ({type(exc).__name__})") from None
    try:
        ok = json.loads(body or b"{}").get("ok") is True
    except (ValueError, AttributeError):
        ok = False
    if not ok:
        raise ReplyError("the Bot API did not confirm the message (ok != true)")
