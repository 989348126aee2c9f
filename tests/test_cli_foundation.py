"""The CLI's foundation: help everywhere, init, permissions, --json, and no tracebacks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from ccxtkit.cli.app import app, main

REPO = Path(__file__).resolve().parents[1]


def vhc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def walk(cmd: Any, path: tuple[str, ...] = ("vhc",)) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from walk(sub, (*path, name))


ROOT = typer.main.get_command(app)
COMMANDS = [(p, c) for p, c in walk(ROOT) if not hasattr(c, "commands")]
GROUPS = [(p, c) for p, c in walk(ROOT) if hasattr(c, "commands")]


def test_help_lists_every_group() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    names = list(getattr(ROOT, "commands", {}))
    assert {"init", "config", "ledger"} <= set(names)
    for name in names:
        assert name in result.output, name
    for option in ("--home", "--config", "--json", "--verbose"):
        assert option in result.output


def test_help_runs_as_a_program() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ccxtkit", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "ledger" in proc.stdout and not proc.stderr


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`{' '.join(path)} --help` shows no example"


@pytest.mark.parametrize("path", [p for p, _ in GROUPS], ids=[" ".join(p) for p, _ in GROUPS])
def test_every_group_has_help(path: tuple[str, ...]) -> None:
    cmd = dict(GROUPS)[path]
    assert (cmd.help or "").strip(), f"group `{' '.join(path)}` has no help text"


def test_init_creates_private_workspace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = tmp_path / "new"
    code, out, err = vhc(capsys, "--json", "init", str(home))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["home"] == str(home)
    config = home / "config" / "trading_config.yaml"
    ledger = home / "ledger" / "vhc.duckdb"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(ledger.stat().st_mode) == 0o600
    for sub in ("config", "ledger", "reports", "logs", "state"):
        assert stat.S_IMODE((home / sub).stat().st_mode) == 0o700, sub
    # It works offline straight away: the paper exchange, the chain verifies.
    code, out, err = vhc(capsys, "--home", str(home), "ledger", "verify")
    assert code == 0 and "ledger OK" in out, err
    assert "id: paper" in config.read_text()
    # A second init never overwrites it.
    before = config.read_bytes()
    code, out, err = vhc(capsys, "init", str(home))
    assert code == 2 and "already holds a workspace" in err and "Traceback" not in err
    assert config.read_bytes() == before


@pytest.fixture
def ws(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    assert vhc(capsys, "init", str(home))[0] == 0
    return home


def test_world_readable_config_refused(capsys: pytest.CaptureFixture[str], ws: Path) -> None:
    config = ws / "config" / "trading_config.yaml"
    os.chmod(config, 0o644)
    for args in (("ledger", "verify"), ("config", "validate"), ("config", "show")):
        code, out, err = vhc(capsys, "--home", str(ws), *args)
        assert code == 2, args
        lines = err.strip().splitlines()
        assert len(lines) == 1 and f"chmod 600 {config}" in lines[0], err


def test_world_readable_ledger_refused(capsys: pytest.CaptureFixture[str], ws: Path) -> None:
    ledger = ws / "ledger" / "vhc.duckdb"
    os.chmod(ledger, 0o644)
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "verify")
    assert code == 2 and f"chmod 600 {ledger}" in err


def test_missing_config_names_init(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for args in (("ledger", "verify"), ("config", "validate"), ("config", "show")):
        code, out, err = vhc(capsys, "--home", str(tmp_path / "nothing"), *args)
        assert code == 2, args
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "vhc init" in lines[0] and "Traceback" not in err, err


def test_json_is_exactly_one_document(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    runs = {
        "verify": ("ledger", "verify"),
        "digest": ("ledger", "digest"),
        "log": ("ledger", "log"),
        "show": ("config", "show"),
        "validate": ("config", "validate"),
    }
    docs = {}
    for name, args in runs.items():
        code, out, err = vhc(capsys, "--json", "--home", str(ws), *args)
        assert code == 0, (name, err)
        docs[name] = json.loads(out)  # the whole of stdout parses as one document
    assert docs["verify"]["ok"] is True and docs["verify"]["problem"] is None
    assert set(docs["digest"]) == {"seq", "hash"} and len(docs["digest"]["hash"]) == 64
    # verify records nothing in the ledger (issue 14): the newest event is still init's last,
    # the first policy record.
    assert isinstance(docs["log"], list) and docs["log"][0]["kind"] == "policy.recorded"
    assert docs["show"]["ledger"]["lock_wait_seconds"] == "30"
    assert docs["validate"]["valid"] is True
    # A failing verify still prints one document, then exits 6.
    (ws / "digest.json").write_text(json.dumps({"seq": 1, "hash": "f" * 64}))
    code, out, err = vhc(
        capsys, "--json", "--home", str(ws), "ledger", "verify", "--digest", str(ws / "digest.json")
    )
    assert code == 6
    doc = json.loads(out)
    assert doc["ok"] is False and "row seq 1 " in doc["problem"]


@pytest.mark.parametrize("garbage", ["random", "empty-tail"])
def test_corrupt_ledger_never_shows_a_traceback(
    capsys: pytest.CaptureFixture[str], ws: Path, garbage: str
) -> None:
    ledger = ws / "ledger" / "vhc.duckdb"
    data = ledger.read_bytes()
    if garbage == "random":
        ledger.write_bytes(os.urandom(64 * 1024))
    else:
        ledger.write_bytes(data[: len(data) // 2])  # a truncated copy
    for args in (("ledger", "verify"), ("ledger", "log"), ("--json", "ledger", "digest")):
        code, out, err = vhc(capsys, "--home", str(ws), *args)
        assert code == 6, (args, err)
        assert "Traceback" not in out + err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: the ledger "), err
        if "--json" in args:  # the one JSON document is the error object
            error = json.loads(out)["error"]
            assert error["exit_code"] == 6 and error["kind"] == "ledger_integrity"
            assert lines[0] == f"error: {error['message']}"
        else:
            assert out == ""
    # With -v the details are there for a bug report.
    code, _, err = vhc(capsys, "-v", "--home", str(ws), "ledger", "verify")
    assert code == 6 and "Traceback" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], ws: Path) -> None:
    for args in (("no-such-command",), ("ledger", "export", "--format"), ("ledger", "log", "-x")):
        code, out, err = vhc(capsys, "--home", str(ws), *args)
        assert code == 2, args
        assert "Traceback" not in out + err
    code, _, err = vhc(capsys, "--home", str(ws), "ledger", "export", "--format", "xls")
    assert code == 2 and "unknown format" in err
