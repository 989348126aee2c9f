"""Kill-switch deactivations and policy records carry the control key's seal: a row appended to
the DuckDB file by hand (correct chain hash, no seal) neither lifts the switch nor loosens a limit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml

from ccxtkit.ledger.store import open_ledger
from ccxtkit.policy.document import policy_document, policy_hash
from ccxtkit.risk import killswitch
from ccxtkit.workspace import Workspace, write_private
from tests.test_controls_approvers import ENV_VARS, enrol, write_ws
from tests.test_killswitch import run_cli


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*ENV_VARS, "VHC_CONTROL_KEY", "VHC_HOME", "VHC_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def trade(
    ws: Workspace, capsys: pytest.CaptureFixture[str], amount: str = "0.01"
) -> tuple[int, str]:
    code, _, err = run_cli(ws, ["trade", "buy", "BTC/USD", amount, "--exchange", "paper"], capsys)
    return code, err


def test_a_genuine_deactivation_is_sealed_and_lifts_the_switch(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = write_ws(tmp_path)
    secret = enrol(ws, clean_env, backend="env")
    killswitch.activate(ws, "drill")
    code, _, err = run_cli(ws, ["kill-switch", "--deactivate", "--auth-code",
                                pyotp.TOTP(secret).now()], capsys)  # fmt: skip
    assert code == 0, err
    with open_ledger(ws.ledger_path, read_only=True) as ledger:
        [details] = ledger.query(
            "SELECT details FROM control_events WHERE kind = 'kill_switch.deactivate'"
        )[0]
    assert len(json.loads(details)["mac"]) == 64
    assert trade(ws, capsys)[0] == 0


def test_a_forged_deactivation_row_and_file_keep_trading_blocked(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = write_ws(tmp_path)
    enrol(ws, clean_env, backend="env")
    killswitch.activate(ws, "suspected key leak")
    # The attacker appends a deactivation with a correct chain hash and rewrites the file.
    with open_ledger(ws.ledger_path) as ledger:
        ledger.record_event(
            "kill_switch.deactivate",
            {"approver": "admin", "step": 1, "since": None, "reason": "x", "mac": "00" * 32},
        )
    path = ws.state_dir / "kill_switch.json"
    state = json.loads(path.read_text())
    write_private(path, json.dumps({**state, "active": False}))
    code, err = trade(ws, capsys)
    assert code == 4, err
    code, out, err = run_cli(ws, ["--json", "kill-switch", "--status"], capsys)
    doc = json.loads(out)
    assert doc["active"] is True
    assert "without a valid seal" in json.dumps(doc)


def edit_config(ws: Workspace, change: Any) -> None:
    data = yaml.safe_load(ws.config_path.read_text())
    change(data)
    write_private(ws.config_path, yaml.safe_dump(data))


def test_a_forged_loosened_policy_row_is_refused(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = write_ws(tmp_path)
    enrol(ws, clean_env, backend="env")
    assert trade(ws, capsys)[0] == 0  # the policy is on record, sealed from now on
    # Loosen the file and append a matching policy record with a correct hash but no seal.
    edit_config(ws, lambda c: c.setdefault("risk", {}).update({"max_order_value": 10_000_000}))
    loose = Workspace.locate(str(tmp_path))
    document = policy_document(loose.config)
    with open_ledger(ws.ledger_path) as ledger:
        details = {"hash": policy_hash(document), "policy": document, "previous": None,
                   "changes": [], "how": "approved", "approver": "admin", "note": None}  # fmt: skip
        ledger.record_event("policy.recorded", details, subject=policy_hash(document)[:16])
    code, err = trade(loose, capsys)
    assert code == 6, err
    assert "no valid seal" in err


def test_a_tightened_policy_is_recorded_sealed_and_trading_goes_on(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = write_ws(tmp_path)
    enrol(ws, clean_env, backend="env")
    assert trade(ws, capsys)[0] == 0
    edit_config(ws, lambda c: c.setdefault("risk", {}).update({"max_order_value": 5000}))
    tight = Workspace.locate(str(tmp_path))
    code, err = trade(tight, capsys)
    assert code == 0, err
    with open_ledger(ws.ledger_path, read_only=True) as ledger:
        rows = ledger.query(
            "SELECT details FROM control_events WHERE kind = 'policy.recorded' ORDER BY seq"
        )
    last = json.loads(rows[-1][0])
    assert last["how"] == "tightened" and len(last["mac"]) == 64
