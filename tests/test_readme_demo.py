"""The README's first command, `vhc demo`, works as written on a fresh machine."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ccxtkit.cli.app import main
from tests.crash import vhc_command

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_first_command_is_vhc_demo_and_it_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S)
    assert first_block is not None
    assert first_block.group(1).strip().endswith("&& vhc demo"), first_block.group(1)
    # As a new user runs it: no workspace configured, from an empty directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VHC_")}
    env.update(HOME=str(tmp_path), TMPDIR=str(tmp_path), COLUMNS="200")
    proc = subprocess.run(
        [*vhc_command(), "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo OK: every step behaved as expected" in proc.stdout
    assert "Traceback" not in proc.stderr
    found = re.search(r"demo workspace: (\S+)", proc.stdout)
    assert found is not None, proc.stdout
    demo_home = Path(found.group(1))
    assert demo_home.is_relative_to(tmp_path)
    with pytest.raises(SystemExit) as done:
        main(["--home", str(demo_home), "ledger", "verify"])
    assert done.value.code in (0, None), capsys.readouterr()
