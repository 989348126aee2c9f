"""Shared pieces of the signals tests: a paper workspace with three sources, signed bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccxtkit.signals import credentials
from ccxtkit.workspace import Workspace, init_workspace, write_private

SHEETS_KEY = "sheets-api-key-0123456789"
SHEETS_SECRET = "sheets-hmac-secret-0123456789"  # noqa: S105 - test value
BOT_TOKEN = "123456:telegram-bot-token-abcdef"  # noqa: S105 - test value
TG_SECRET = "telegram-webhook-secret-0123"  # noqa: S105 - test value
TV_PASSPHRASE = "tradingview-passphrase-0123"  # noqa: S105 - test value
CHAT_ID = 4242


def make_workspace(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    signals: Mapping[str, Any] | None = None,
    risk: Mapping[str, Any] | None = None,
    bot_api_base: str = "http://127.0.0.1:9",
) -> Path:
    """A paper workspace (init) with sheets, telegram and tradingview sources on env secrets."""
    home = tmp_path / "ws"
    init_workspace(home)
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["signals"] = {
        "sources": {
            "sheets": {"kind": "sheets", "exchange": "paper", "secrets": "env"},
            "telegram": {
                "kind": "telegram",
                "exchange": "paper",
                "chat_ids": [CHAT_ID],
                "secrets": "env",
                "bot_api_base": bot_api_base,
            },
            "tradingview": {"kind": "tradingview", "exchange": "paper", "secrets": "env"},
        },
        **(signals or {}),
    }
    if risk:
        data["risk"] = {**data.get("risk", {}), **risk}
    write_private(path, yaml.safe_dump(data))
    for name, value in {
        "VHC_SIGNALS_SHEETS_KEY": SHEETS_KEY,
        "VHC_SIGNALS_SHEETS_SECRET": SHEETS_SECRET,
        "VHC_SIGNALS_TELEGRAM_KEY": BOT_TOKEN,
        "VHC_SIGNALS_TELEGRAM_SECRET": TG_SECRET,
        "VHC_SIGNALS_TRADINGVIEW_SECRET": TV_PASSPHRASE,
    }.items():
        monkeypatch.setenv(name, value)
    credentials.forget()
    return home


def workspace(home: Path) -> Workspace:
    return Workspace.locate(str(home))


def sheets_body(
    signal_id: str = "row-1",
    when: datetime | None = None,
    **changes: Any,
) -> bytes:
    doc: dict[str, Any] = {
        "id": signal_id,
        "timestamp": int((when or datetime.now(UTC)).timestamp()),
        "symbol": "BTC/USD",
        "exchange": "paper",
        "transactionType": "BUY",
        "quantity": "0.01",
        "price": None,
        "orderType": "MARKET",
        "productType": "CNC",
    }
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def sheets_headers(
    body: bytes, secret: str = SHEETS_SECRET, key: str = SHEETS_KEY
) -> dict[str, str]:
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-API-Key": key, "X-Signature": signature, "Content-Type": "application/json"}


def telegram_body(
    text: str, message_id: int = 1, chat_id: int = CHAT_ID, when: datetime | None = None
) -> bytes:
    return json.dumps(
        {
            "update_id": 1000 + message_id,
            "message": {
                "message_id": message_id,
                "date": int((when or datetime.now(UTC)).timestamp()),
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": 99, "is_bot": False, "first_name": "T"},
                "text": text,
            },
        }
    ).encode()


def telegram_headers(secret: str = TG_SECRET) -> dict[str, str]:
    return {"X-Telegram-Bot-Api-Secret-Token": secret}


def tradingview_body(when: datetime | None = None, **changes: Any) -> bytes:
    doc: dict[str, Any] = {
        "passphrase": TV_PASSPHRASE,
        "id": "tv-1",
        "timestamp": (when or datetime.now(UTC)).isoformat(),
        "symbol": "BTC/USD",
        "action": "buy",
        "quantity": "0.02",
    }
    doc.update(changes)
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def rows(home: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """A read of the ledger, under its lock: a running `vhc serve` keeps the file open and
    lets go for a process that waits for the lock (ledger/keeper.py), not for a bare connect."""
    from ccxtkit.ledger.store import open_ledger

    with open_ledger(home / "ledger" / "vhc.duckdb", 30, read_only=True) as ledger:
        return ledger.query(sql, params)


def refusals(home: Path) -> list[dict[str, Any]]:
    """The `signal.refused` control events' details, in order."""
    return [
        json.loads(d)
        for (d,) in rows(
            home, "SELECT details FROM control_events WHERE kind = 'signal.refused' ORDER BY seq"
        )
    ]


def queued(home: Path) -> int:
    return int(rows(home, "SELECT count(*) FROM signals")[0][0])
