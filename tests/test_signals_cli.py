"""`vhc signals list|retry|drop|work --once`: the queue from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ccxtkit.cli.app import main
from ccxtkit.signals.intake import receive
from tests.signals_kit import make_workspace, sheets_body, sheets_headers, workspace


def vhc(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(["--home", str(home), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_workspace(tmp_path, monkeypatch, signals={"retry_base_seconds": 0})


def submit(home: Path, signal_id: str, **changes: Any) -> str:
    body = sheets_body(signal_id, **changes)
    answer = receive(workspace(home), "sheets", sheets_headers(body), body)
    assert answer.status == 202, answer.body
    return str(answer.body["signal_id"])


def test_list_work_and_list_again(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sid = submit(home, "a")
    code, out, err = vhc(capsys, home, "signals", "list", "--json")
    assert code == 0, err
    (record,) = json.loads(out)
    assert record["signal_id"] == sid and record["status"] == "queued"
    assert record["amount"] == "0.01" and record["received_at"].endswith("+00:00")
    code, out, err = vhc(capsys, home, "signals", "work", "--once", "--json")
    assert code == 0, err
    (done,) = json.loads(out)
    assert done["status"] == "executed" and done["signal_id"] == sid
    code, out, _ = vhc(capsys, home, "signals", "list", "--status", "executed")
    assert code == 0
    header, line = out.strip().splitlines()[-2:]
    assert "signal_id" in header and sid in line and "executed" in line
    code, out, _ = vhc(capsys, home, "signals", "work", "--once")
    assert code == 0 and "no signal is due" in out


def test_bad_usage_is_exit_2_with_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = vhc(capsys, home, "signals", "list", "--status", "lost")
    assert code == 2 and "queued" in err and "Traceback" not in err
    code, _, err = vhc(capsys, home, "signals", "work")
    assert code == 2 and "--once" in err
    code, out, _ = vhc(capsys, home, "--json", "signals", "retry", "no-such-signal")
    assert code == 2 and json.loads(out)["error"]["exit_code"] == 2


def test_dead_letter_exit_1_then_retry_and_drop(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = submit(home, "bad-market", symbol="NOPE/USD")
    code, _, err = vhc(capsys, home, "signals", "work", "--once")
    assert code == 1 and "dead letter" in err
    code, out, _ = vhc(capsys, home, "signals", "list", "--status", "dead", "--json")
    (record,) = json.loads(out)
    assert record["signal_id"] == dead and "NOPE/USD" in record["reason"]
    code, out, err = vhc(capsys, home, "signals", "retry", dead[:8])
    assert code == 0 and "queued again" in out, err
    code, out, err = vhc(capsys, home, "--json", "signals", "drop", dead, "--reason", "typo")
    assert code == 0, err
    assert json.loads(out)["status"] == "dropped" and json.loads(out)["reason"] == "typo"
    code, _, err = vhc(capsys, home, "signals", "retry", dead)
    assert code == 2 and "dropped" in err
    code, out, _ = vhc(capsys, home, "signals", "work", "--once")
    assert code == 0 and "no signal is due" in out


def test_executed_signal_cannot_be_retried_or_dropped(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sid = submit(home, "ok")
    assert vhc(capsys, home, "signals", "work", "--once")[0] == 0
    code, _, err = vhc(capsys, home, "signals", "retry", sid)
    assert code == 2 and "executed" in err
    code, _, err = vhc(capsys, home, "signals", "drop", sid, "--reason", "late")
    assert code == 2 and "executed" in err


def test_config_refuses_a_source_on_an_unknown_account(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from ccxtkit.workspace import write_private

    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["signals"]["sources"]["sheets"]["exchange"] = "krakn"
    write_private(path, yaml.safe_dump(data))
    code, _, err = vhc(capsys, home, "config", "validate")
    assert code == 2 and "signals.sources.sheets.exchange" in err and "krakn" in err
    data["signals"]["sources"]["sheets"] = {"kind": "fax"}
    write_private(path, yaml.safe_dump(data))
    code, _, err = vhc(capsys, home, "config", "validate")
    assert code == 2 and "signals.sources.sheets.kind" in err


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ({"kind": "sheets", "chat_ids": [1]}, "chat_ids is only for kind telegram"),
        ({"kind": "tradingview", "bot_api_base": "http://x"}, "bot_api_base is only"),
        ({"kind": "telegram"}, "needs chat_ids"),
        ({"kind": "tradingview", "ip_allowlist": ["not-an-ip"]}, "not an IP address"),
    ],
)
def test_source_keys_that_would_do_nothing_are_refused(source: dict[str, Any], words: str) -> None:
    import yaml

    from ccxtkit.config import parse_config
    from ccxtkit.errors import ConfigError

    text = yaml.safe_dump({"signals": {"sources": {"s": source}}})
    with pytest.raises(ConfigError, match=words):
        parse_config(text)
