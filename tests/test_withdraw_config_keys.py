"""Issue 17's withdrawal keys through the CLI: recipient_allowlist is adopted with one code, the
auto-approval cap has a default tied to the threshold, and validate says both."""

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
from ccxtkit.exchanges.factory import open_exchange
from ccxtkit.withdrawals import service
from ccxtkit.workspace import Workspace, write_private
from tests.test_killswitch import run_cli

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "tests" / "data" / "seed_trading_config.yaml"
USDC = "0x1234567890abcdef1234567890abcdef12345678"
BTC = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"


def workspace(home: Path, withdrawals: dict[str, Any], mp: pytest.MonkeyPatch) -> Workspace:
    """A paper workspace with `withdrawals:` as given and admin enrolled (env backend)."""
    for name in ("VHC_TOTP_SECRET", "VHC_TOTP_ADMIN", "VHC_CONTROL_KEY"):
        mp.delenv(name, raising=False)
    cfg = {
        "version": "1.0",
        "exchanges": {
            "paper": {
                "id": "paper",
                "secrets": "none",
                "paper": {"starting_balances": {"USDC": 50000, "BTC": 1}},
            },
        },  # fmt: skip
        "secrets": {"backend": "env"},
        "withdrawals": withdrawals,
    }
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    ws = Workspace.locate(str(home))
    for name, value in totp.enrol(ws, "admin", backend="env").exports.items():
        mp.setenv(name, value)  # VHC_TOTP_SECRET and VHC_CONTROL_KEY
    return ws


def admin_code(ws: Workspace, when: datetime | None = None) -> str:
    return pyotp.TOTP(os.environ[totp.env_names("admin")[0]]).at(when or datetime.now(UTC))


def warnings(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> list[str]:
    rc, out, err = run_cli(ws, ["--json", "config", "validate"], capsys)
    assert rc == 0, err
    found: list[str] = json.loads(out)["warnings"]
    return found


def test_seed_config_validates_and_says_where_vhc_differs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_private(tmp_path / "config" / "trading_config.yaml", SEED.read_text(encoding="utf-8"))
    ws = Workspace.locate(str(tmp_path))
    rc, out, err = run_cli(ws, ["config", "validate"], capsys)
    assert rc == 0, err
    text = " ".join(out.split())  # rich may wrap long lines
    # Both seed addresses name no asset: refused, with how to adopt them.
    for address in (USDC, BTC):
        assert f"recipient_allowlist: {address} is refused: no asset" in text
    assert "import-config" in text
    # approval_method email without an email channel: the request is not sent.
    assert "approval_method email: monitoring.alerts.email is not configured" in text


def test_import_config_adopts_pending_entries_with_one_code_and_cool_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = [
        {"address": USDC, "asset": "usdc", "network": "ERC20", "label": "treasury"},
        {"address": BTC, "asset": "BTC"},
        "0xplainstringwithoutanyasset000000000000",
    ]
    ws = workspace(tmp_path, {"recipient_allowlist": entries}, monkeypatch)
    notes = warnings(ws, capsys)
    assert sum("is pending" in n for n in notes) == 2, notes
    assert any("0xplainstring" in n and "no asset" in n for n in notes), notes
    # Declared in the YAML only: refused (exit 8), the exchange never asked.
    rc, _, err = run_cli(ws, ["withdraw", "request", "paper", "USDC", "10", USDC], capsys)
    assert rc == 8 and "recipient_allowlist" in err
    # A wrong code adopts nothing.
    rc, _, err = run_cli(
        ws, ["withdraw", "allowlist", "import-config", "--auth-code", "000000"], capsys
    )
    assert rc == 8
    rc, out, _ = run_cli(ws, ["--json", "withdraw", "allowlist", "list"], capsys)
    assert {r["state"] for r in json.loads(out)} == {"not_recorded"}
    # One code adopts both entries that name an asset; the plain string is named (exit 1).
    now = datetime.now(UTC)
    rc, out, err = run_cli(
        ws,
        ["--json", "withdraw", "allowlist", "import-config", "--auth-code", admin_code(ws)],
        capsys,
    )
    assert rc == 1, err
    doc = json.loads(out)
    assert [(a["asset"], a["address"], a["network"], a["label"]) for a in doc["added"]] == [
        ("USDC", USDC, "ERC20", "treasury"),
        ("BTC", BTC, None, None),
    ]
    assert [s["address"] for s in doc["skipped"]] == ["0xplainstringwithoutanyasset000000000000"]
    rc, out, _ = run_cli(ws, ["--json", "withdraw", "allowlist", "list"], capsys)
    states = {r["address"]: r["state"] for r in json.loads(out)}
    assert states[USDC] == states[BTC] == "cooling_off"
    rc, out, _ = run_cli(ws, ["--json", "ledger", "log", "--limit", "20"], capsys)
    added = [e for e in json.loads(out) if e["kind"] == "allowlist.added"]
    assert len(added) == 2
    # The cool-off applies: refused now (exit 8), accepted once it is over.
    rc, _, err = run_cli(ws, ["withdraw", "request", "paper", "USDC", "10", USDC], capsys)
    assert rc == 8 and "usable only from" in err
    later = now + timedelta(hours=24, minutes=1)
    outcome = service.request_withdrawal(ws, "paper", "USDC", "10", USDC, now=later)
    assert outcome.request.status == "pending" and outcome.request.label == "treasury"
    # Nothing left to adopt: exit 2 before any code is asked for; validate no longer warns.
    rc, _, err = run_cli(
        ws, ["withdraw", "allowlist", "import-config", "--auth-code", "123456"], capsys
    )
    assert rc == 2 and "nothing to import" in err
    assert not any("is pending" in n for n in warnings(ws, capsys))
    client = open_exchange(ws, "paper")
    try:
        assert client.fetch_withdrawals(now - timedelta(days=1)) == []
    finally:
        client.close()


def test_import_config_code_is_single_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(
        tmp_path, {"recipient_allowlist": [{"address": BTC, "asset": "BTC"}]}, monkeypatch
    )
    code = admin_code(ws)
    rc, _, err = run_cli(
        ws, ["withdraw", "allowlist", "import-config", "--auth-code", code], capsys
    )
    assert rc == 0, err
    # A second entry appears in the YAML (an edit); the same code cannot adopt it.
    cfg = yaml.safe_load(ws.config_path.read_text())
    cfg["withdrawals"]["recipient_allowlist"].append({"address": USDC, "asset": "USDC"})
    write_private(ws.config_path, yaml.safe_dump(cfg))
    ws = Workspace.locate(str(tmp_path))
    rc, _, err = run_cli(
        ws, ["withdraw", "allowlist", "import-config", "--auth-code", code], capsys
    )
    assert rc == 8 and "already used" in err


def test_auto_cap_defaults_to_five_times_the_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = workspace(tmp_path, {"auto_approve_under": 100, "new_address_delay_hours": 0}, monkeypatch)
    notes = warnings(ws, capsys)
    assert any("default 5 x auto_approve_under = 500 USD" in n for n in notes), notes
    rc, _, err = run_cli(
        ws,
        ["withdraw", "allowlist", "add", "USDC", USDC, "--auth-code", admin_code(ws)],
        capsys,
    )
    assert rc == 0, err
    statuses = []
    for _ in range(6):
        rc, out, err = run_cli(
            ws, ["--json", "withdraw", "request", "paper", "USDC", "99", USDC], capsys
        )
        assert rc == 0, err
        statuses.append(json.loads(out)["status"])
    assert statuses == ["executed"] * 5 + ["pending"]  # 5 x 99 = 495 <= 500 < 594
    # An explicit 0 turns auto-approval off, and validate says so.
    cfg = yaml.safe_load(ws.config_path.read_text())
    cfg["withdrawals"]["daily_auto_approve_cap_usd"] = 0
    write_private(ws.config_path, yaml.safe_dump(cfg))
    ws = Workspace.locate(str(tmp_path))
    assert any("nothing is auto-approved" in n for n in warnings(ws, capsys))
