"""A signal source is remote order entry: adding one is a loosening that needs an approver."""

from __future__ import annotations

import json

import yaml

from ccxtkit.cli.app import main
from ccxtkit.policy.rules import compare
from ccxtkit.signals.intake import receive
from ccxtkit.workspace import write_private
from tests.signals_kit import (
    SHEETS_KEY,
    SHEETS_SECRET,
    make_workspace,
    queued,
    sheets_body,
    sheets_headers,
    workspace,
)
from tests.test_policy import enrol


def _add_source(home, name: str) -> None:
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["signals"]["sources"][name] = {"kind": "sheets", "exchange": "paper", "secrets": "env"}
    write_private(path, yaml.safe_dump(data))


def test_a_source_added_after_enrolment_takes_no_signal_until_approved(
    tmp_path, monkeypatch, capsys
):
    home = make_workspace(tmp_path, monkeypatch)
    body = sheets_body("first")
    assert receive(workspace(home), "sheets", sheets_headers(body), body).status == 202
    enrol(home, capsys, monkeypatch)
    _add_source(home, "desk2")
    monkeypatch.setenv("VHC_SIGNALS_DESK2_KEY", SHEETS_KEY)
    monkeypatch.setenv("VHC_SIGNALS_DESK2_SECRET", SHEETS_SECRET)

    body = sheets_body("second")
    answer = receive(workspace(home), "desk2", sheets_headers(body), body)
    assert answer.status == 403, answer.body
    assert answer.body["error"]["code"] == "POLICY_NOT_APPROVED"
    assert "signals.sources.desk2" in answer.body["error"]["message"]
    assert queued(home) == 1  # only the first signal

    capsys.readouterr()
    try:
        main(["--home", str(home), "--json", "config", "diff"])
    except SystemExit:
        pass
    changes = json.loads(capsys.readouterr().out)["changes"]
    assert {"key": "signals.sources.desk2", "direction": "loosen"}.items() <= changes[0].items()


def test_signal_rules_classify_tightening_and_loosening() -> None:
    old = {"signals": {"max_age_seconds": 300, "sources": {"a": {"chat_ids": [1, 2]}}}}
    tighter = {"signals": {"max_age_seconds": 60, "sources": {"a": {"chat_ids": [1]}}}}
    looser = {"signals": {"max_age_seconds": 900, "sources": {"a": {"chat_ids": [1, 2, 3]}}}}
    assert {c.direction for c in compare(old, tighter)} == {"tighten"}
    assert {c.direction for c in compare(old, looser)} == {"loosen"}
    removed = compare(old, {"signals": {"max_age_seconds": 300, "sources": {}}})
    assert [(c.key, c.direction) for c in removed] == [("signals.sources.a", "tighten")]
