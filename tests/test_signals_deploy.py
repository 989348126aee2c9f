"""`vhc signals work --once` from cron: shipped in deploy/, rendered by `vhc deploy schedule`,
and a pass that keeps the ledger open only while it runs."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from ccxtkit.ledger import keeper
from ccxtkit.signals.intake import receive
from ccxtkit.workspace import init_workspace
from tests.signals_kit import make_workspace, sheets_body, sheets_headers, workspace
from tests.test_killswitch import run_cli

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def cron_lines(text: str) -> list[list[str]]:
    return [
        line.split(None, 5)
        for line in text.splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]


def test_the_shipped_crontab_runs_a_signal_pass_every_minute() -> None:
    lines = [f for f in cron_lines((DEPLOY / "cron" / "vhc.crontab").read_text())]
    work = [f for f in lines if f[5].endswith("signals work --once")]
    assert [f[:5] for f in work] == [["*", "*", "*", "*", "*"]]
    assert "signals work --once" in (DEPLOY / "README.md").read_text()
    assert "vhc signals work --once" in (DEPLOY.parent / "docs" / "serve.md").read_text()


def test_deploy_schedule_has_the_pass_only_when_signal_sources_are_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_workspace(tmp_path, monkeypatch)
    code, out, err = run_cli(workspace(home), ["deploy", "schedule"], capsys)
    assert code == 0, err
    work = [f for f in cron_lines(out) if f[5].endswith("signals work --once")]
    assert [f[:5] for f in work] == [["*", "*", "*", "*", "*"]]
    code, out, err = run_cli(workspace(home), ["deploy", "schedule", "--systemd"], capsys)
    assert code == 0, err
    assert "vhc-signals-work.timer" in out and "SuccessExitStatus=1" in out

    bare = tmp_path / "bare"
    init_workspace(bare)
    code, out, err = run_cli(workspace(bare), ["deploy", "schedule"], capsys)
    assert code == 0, err
    assert "signals work" not in out


def test_a_pass_from_cron_executes_and_leaves_the_ledger_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = make_workspace(tmp_path, monkeypatch)
    for n in range(3):
        body = sheets_body(f"cron-{n}")
        assert receive(workspace(home), "sheets", sheets_headers(body), body).status == 202
    code, out, err = run_cli(workspace(home), ["signals", "work", "--once"], capsys)
    assert code == 0, err
    assert out.count(": executed (attempt 1)") == 3, out
    path = home / "ledger" / "vhc.duckdb"
    assert not keeper.keeps(path)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: the pass let go when it ended
    finally:
        os.close(fd)
