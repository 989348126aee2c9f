"""`vhc secrets check` lists each signal source's secret: resolved, missing, or unusable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.signals_kit import make_workspace, workspace
from tests.test_killswitch import run_cli


def rows(out: str) -> dict[str, dict[str, object]]:
    return {r["name"]: r for r in json.loads(out)["rows"]}


def test_each_signal_source_is_listed_with_where_its_secret_lives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_workspace(tmp_path, monkeypatch)
    code, out, err = run_cli(workspace(home), ["--json", "secrets", "check"], capsys)
    assert code == 0, err
    found = rows(out)
    for source in ("sheets", "telegram", "tradingview"):
        row = found[f"signals_{source}"]
        assert row["kind"] == "signal source" and row["status"] == "ok", row
        assert row["backend"] == "env"
        assert f"VHC_SIGNALS_{source.upper()}_SECRET" in str(row["location"])
    # The values never appear.
    from tests import signals_kit as kit

    for value in (kit.SHEETS_KEY, kit.SHEETS_SECRET, kit.TV_PASSPHRASE):
        assert value not in out and value not in err


def test_a_source_missing_what_it_needs_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_workspace(tmp_path, monkeypatch)
    monkeypatch.delenv("VHC_SIGNALS_SHEETS_KEY")  # sheets refuses every delivery without it
    monkeypatch.delenv("VHC_SIGNALS_TELEGRAM_KEY", raising=False)  # only the replies need it
    monkeypatch.delenv("VHC_SIGNALS_TRADINGVIEW_SECRET")
    code, out, err = run_cli(workspace(home), ["--json", "secrets", "check"], capsys)
    assert code == 2, (out, err)
    found = rows(out)
    assert found["signals_sheets"]["status"] == "missing"
    assert "X-API-Key" in str(found["signals_sheets"]["problem"])
    assert found["signals_tradingview"]["status"] == "missing"
    telegram = found["signals_telegram"]
    assert telegram["status"] == "ok" and "replies" in json.dumps(telegram["warnings"])
    # One source by name: only its row.
    code, out, _ = run_cli(workspace(home), ["--json", "secrets", "check", "tradingview"], capsys)
    assert code == 2 and list(rows(out)) == ["signals_tradingview"]
    code, out, _ = run_cli(
        workspace(home), ["--json", "secrets", "check", "signals_telegram"], capsys
    )
    assert code == 0 and list(rows(out)) == ["signals_telegram"]
