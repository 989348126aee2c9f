"""The every-minute check's config memo: no pydantic on an unchanged config, never a wrong limit.

`state/config-memo.json` is keyed by the config file's bytes; its policy hash must be the
ledger's record, and the limits are read from that record. Each test edits one thing a person
at the keyboard could edit (the config, the memo's hash, its ledger path, its settings) and
checks that the check still evaluates the recorded policy on the workspace's own ledger.
"""

from __future__ import annotations

import json
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from ccxtkit.config_memo import memo_path, recall
from ccxtkit.risk import killswitch
from ccxtkit.workspace import Workspace, write_private
from tests.test_killswitch import _failures as record_failures
from tests.test_killswitch import make_workspace, paper, run_cli
from tests.test_startup import VHC, watched


def _failures(ws: Workspace, count: int) -> None:
    """Record `count` rejected orders in the last minute (what the circuit breaker counts)."""
    record_failures(ws, count, datetime.now(UTC))


def _breaker(home: Path, max_failures: int) -> Workspace:
    return make_workspace(
        home, {"p": paper()}, risk={"circuit_breaker": {"max_failures": max_failures}}
    )


def _check(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    fresh = Workspace.locate(str(ws.home))  # a new process's workspace: nothing loaded yet
    code, out, err = run_cli(fresh, ["--json", "kill-switch", "--check"], capsys)
    assert code in (0, 1), err
    return code, json.loads(out)


def _edit_memo(ws: Workspace, change) -> None:
    path = memo_path(ws)
    doc = json.loads(path.read_text("utf-8"))
    change(doc)
    write_private(path, json.dumps(doc))


def test_an_unchanged_config_is_checked_without_pydantic(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    subprocess.run([VHC, "init", str(home)], check=True, capture_output=True)
    first = watched(tmp_path, home, "kill-switch", "--check")
    assert first["code"] == 0, first["err"]
    assert "pydantic" in first["modules"]  # the first run validates in full, then remembers
    memo = memo_path(Workspace.locate(str(home)))
    assert stat.S_IMODE(memo.stat().st_mode) == 0o600
    again = watched(tmp_path, home, "kill-switch", "--check")
    assert again["code"] == 0, again["err"]
    assert again["out"] == "no trigger fired\n"
    assert not {"pydantic", "yaml"} & set(again["modules"])


def test_an_edited_config_is_validated_again(tmp_path: Path, capsys) -> None:
    ws = _breaker(tmp_path, 10)
    _failures(ws, 3)
    for _ in range(2):  # the second run uses the memo
        assert _check(ws, capsys)[0] == 0
    assert recall(Workspace.locate(str(tmp_path))) is not None
    # Tightened in the file (recorded automatically): the new limit applies at once.
    _breaker(tmp_path, 3)
    code, doc = _check(ws, capsys)
    assert code == 1 and [f["trigger"] for f in doc["fired"]] == ["circuit_breaker"]
    assert killswitch.read_state(ws).active


def test_a_broken_config_is_refused_even_with_a_memo(tmp_path: Path, capsys) -> None:
    ws = _breaker(tmp_path, 10)
    _check(ws, capsys)
    data = yaml.safe_load(ws.config_path.read_text("utf-8"))
    data["risk"]["max_drawdown_pct"] = "lots"
    write_private(ws.config_path, yaml.safe_dump(data))
    code, _, err = run_cli(Workspace.locate(str(tmp_path)), ["kill-switch", "--check"], capsys)
    assert code == 2 and "max_drawdown_pct" in err


def test_a_memo_naming_another_policy_takes_the_full_path(tmp_path: Path, capsys) -> None:
    ws = _breaker(tmp_path, 3)
    _check(ws, capsys)
    _edit_memo(ws, lambda d: d.update(policy_hash="0" * 64))
    _failures(ws, 3)
    code, doc = _check(ws, capsys)
    assert code == 1 and [f["trigger"] for f in doc["fired"]] == ["circuit_breaker"]
    # The full path wrote the true memo back.
    assert recall(Workspace.locate(str(tmp_path))).policy_hash != "0" * 64


def test_a_memo_cannot_point_the_check_at_another_ledger(tmp_path: Path, capsys) -> None:
    ws = _breaker(tmp_path, 3)
    _check(ws, capsys)
    empty = tmp_path / "ledger" / "empty.duckdb"
    _edit_memo(ws, lambda d: d["basics"].update(ledger_path=str(empty)))
    assert recall(Workspace.locate(str(tmp_path))) is None
    _failures(ws, 3)
    code, doc = _check(ws, capsys)
    assert code == 1 and [f["trigger"] for f in doc["fired"]] == ["circuit_breaker"]
    assert not empty.exists()


def test_the_limits_are_the_records_not_the_memos(tmp_path: Path, capsys) -> None:
    # The memo holds no limit to edit: with 3 failures and max_failures 3 on record, it fires.
    ws = _breaker(tmp_path, 3)
    _check(ws, capsys)
    text = memo_path(ws).read_text("utf-8")
    assert "max_failures" not in text and "circuit_breaker" not in text
    _failures(ws, 3)
    code, doc = _check(ws, capsys)
    assert code == 1 and "3 failed" in doc["fired"][0]["reason"]


def test_memo_settings_that_disagree_with_the_config_give_way(tmp_path: Path, capsys) -> None:
    ws = _breaker(tmp_path, 10)
    _check(ws, capsys)
    _edit_memo(ws, lambda d: d["basics"].update(timezone="Asia/Tokyo"))
    fresh = Workspace.locate(str(tmp_path))
    assert fresh.recall_memo() is not None and fresh.basics.timezone == "Asia/Tokyo"
    fresh.config  # noqa: B018 - loading the config compares it with the memo's settings
    assert fresh.basics.timezone is None  # the config's (no time zone: UTC)
    assert not memo_path(ws).exists()


def test_a_memo_readable_by_others_is_refused(tmp_path: Path, capsys) -> None:
    ws = _breaker(tmp_path, 10)
    _check(ws, capsys)
    memo_path(ws).chmod(0o644)
    code, _, err = run_cli(Workspace.locate(str(tmp_path)), ["kill-switch", "--check"], capsys)
    assert code != 0 and "chmod 600" in err and "config-memo.json" in err


def test_the_memo_is_keyed_by_the_configs_bytes(tmp_path: Path, capsys) -> None:
    ws = _breaker(tmp_path, 10)
    _check(ws, capsys)
    assert recall(Workspace.locate(str(tmp_path))) is not None
    data = yaml.safe_load(ws.config_path.read_text("utf-8"))
    write_private(ws.config_path, yaml.safe_dump(data) + "# a comment\n")
    assert recall(Workspace.locate(str(tmp_path))) is None
