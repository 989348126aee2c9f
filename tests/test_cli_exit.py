"""The `vhc` process leaves without the interpreter's teardown (`cli.app.run`), and nothing
is lost by it: exit codes, every byte written to stdout, the log file's lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ccxtkit.workspace import init_workspace

VHC = [sys.executable, "-m", "ccxtkit"]


def _vhc(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VHC, "--home", str(home), *args], capture_output=True, text=True, timeout=120
    )


def test_exit_codes_output_and_log_lines_all_survive_the_fast_exit(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    init_workspace(home)
    done = _vhc(home, "--json", "kill-switch", "--status")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["active"] is False  # the whole document, flushed
    refused = _vhc(home, "kill-switch", "--activate")  # no --reason: a usage error
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("error:") and "--reason" in refused.stderr
    logged = (home / "logs" / "trading.log").read_text(encoding="utf-8")
    assert "kill-switch --status -> exit 0" in logged  # its handler flushed at exit


def test_a_document_piped_out_is_written_whole(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    init_workspace(home)
    done = _vhc(home, "--json", "config", "show")
    assert done.returncode == 0, done.stderr
    assert "paper" in json.loads(done.stdout)["exchanges"]


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    init_workspace(home)
    shell = f"{' '.join(VHC)} --home {home} --json config show | head -c 10 >/dev/null"
    done = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "Traceback" not in done.stderr
