"""`vhc serve` loads the exchange library before it listens: an activation never waits for it.

Importing ccxt costs about 0.3 s; through a warm server the kill switch's sweep of a ccxt
account must start with its first exchange call (bench/bench_serve_killswitch.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ccxtkit.workspace import init_workspace, write_private
from tests.serve_process import JWT_KEY

STATE = (
    "import sys\n"
    "from ccxtkit.serve.app import new_state\n"
    "from ccxtkit.workspace import Workspace\n"
    "new_state(Workspace.locate(sys.argv[1]))\n"
    "print('ccxt' in sys.modules)\n"
)


@pytest.mark.parametrize(
    ("accounts", "loaded"),
    [
        ({"paper": {"id": "paper"}}, "False"),
        ({"paper": {"id": "paper"}, "kraken": {"id": "kraken", "secrets": "env"}}, "True"),
    ],
    ids=["paper only", "with a ccxt account"],
)
def test_serve_loads_ccxt_before_listening_only_when_an_account_needs_it(
    tmp_path: Path, accounts: dict, loaded: str
) -> None:
    home = tmp_path / "ws"
    init_workspace(home)
    config = {"version": "1.0", "exchanges": accounts, "secrets": {"backend": "env"}}
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(config))
    env = {**os.environ, "VHC_SERVE_JWT_KEY": JWT_KEY}
    done = subprocess.run(
        [sys.executable, "-c", STATE, str(home)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == loaded
