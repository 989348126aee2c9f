"""The tokens' signing key: created in the secrets backend on first use, refused when missing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
import yaml

from ccxtkit.errors import ConfigError, TokenError
from ccxtkit.serve import tokens
from ccxtkit.workspace import Workspace, write_private
from tests.test_killswitch import run_cli


def make(home: Path, backend: str) -> Workspace:
    cfg = {
        "version": "1.0",
        "exchanges": {"paper": {"id": "paper"}},
        "secrets": {"backend": backend},
    }
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    return Workspace.locate(str(home))


def test_key_is_created_once_in_the_keyring_and_reused(tmp_path, file_keyring):
    ws = make(tmp_path, "keyring")
    first = tokens.create_token(ws, "a", "viewer", timedelta(hours=1))
    key = tokens.signing_key(ws)
    assert len(key) >= 48 and key in file_keyring.read_text()
    second = tokens.create_token(ws, "b", "admin", timedelta(hours=1))
    for issued in (first, second):
        assert jwt.decode(issued.token, key, algorithms=["HS256"], issuer="vhc")["sub"]
        assert tokens.verify(ws, issued.token, key).role == issued.record.role
    with ws.open_ledger(read_only=True) as ledger:
        kinds = [r[0] for r in ledger.query("SELECT kind FROM control_events ORDER BY seq")]
        everything = json.dumps(
            [list(map(str, r)) for r in ledger.query("SELECT * FROM control_events")]
        )
    assert kinds.count("secret.set") == 1  # created once: when, not what
    assert key not in everything and first.token not in everything
    assert "IssuedToken(record=" in repr(first) and first.token not in repr(first)


def test_env_backend_without_the_key_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("VHC_SERVE_JWT_KEY", raising=False)
    ws = make(tmp_path, "env")
    with pytest.raises(ConfigError, match="VHC_SERVE_JWT_KEY"):
        tokens.signing_key(ws)
    code, _, err = run_cli(ws, ["serve", "--port", "1"], capsys)
    assert code == 2 and "VHC_SERVE_JWT_KEY" in err and "Traceback" not in err


def test_a_key_change_invalidates_every_token(tmp_path, monkeypatch):
    monkeypatch.setenv("VHC_SERVE_JWT_KEY", "k" * 40)
    ws = make(tmp_path, "env")
    issued = tokens.create_token(ws, "a", "trader", timedelta(days=1))
    assert tokens.verify(ws, issued.token, "k" * 40).name == "a"
    with pytest.raises(TokenError, match="not valid"):
        tokens.verify(ws, issued.token, "j" * 40)
    later = datetime.now(UTC) + timedelta(days=2)
    with pytest.raises(TokenError, match="expired"):
        tokens.check_recorded(jwt.decode(issued.token, options={"verify_signature": False}),
                              tokens.list_tokens(ws), later)  # fmt: skip
