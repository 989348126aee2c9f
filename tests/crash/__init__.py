"""The crash harness: run the real `vhc` in a subprocess that dies at one named crash point.

`sitecustomize.py` here is put on PYTHONPATH of those subprocesses only; it replaces the
no-op `ccxtkit.crashpoints.reach` with one that calls `os._exit(137)` at the chosen point.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HARNESS_DIR = Path(__file__).resolve().parent
CRASH_EXIT = 137
ENV = "VHC_TEST_CRASH_AT"

#: Every crash point placed in src/ (tests/test_crash_matrix.py crashes at each one).
POINTS = (
    "order.intent_recorded",
    "order.sent",
    "order.outcome_recorded",
    "withdraw.claimed",
    "withdraw.sent",
    "withdraw.recorded",
    "killswitch.state_written",
    "killswitch.swept_account",
    "killswitch.before_sweep_event",
    "ledger.import.mid_batch",
    "reconcile.sync.mid_batch",
    "ledger.sync.mid_batch",
)


def vhc_command() -> list[str]:
    """The installed `vhc` entry point of this venv (else `python -m ccxtkit`)."""
    script = Path(sys.executable).with_name("vhc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "ccxtkit"]


@dataclass(frozen=True)
class Run:
    """A finished vhc subprocess."""

    code: int
    out: str
    err: str

    @property
    def crashed(self) -> bool:
        return self.code == CRASH_EXIT


def run_vhc(
    home: Path,
    args: list[str],
    crash_at: str | None = None,
    env: dict[str, str] | None = None,
    harness: bool = True,
    timeout: float = 60,
) -> Run:
    """Run `vhc --home HOME ARGS` in a subprocess, crashing at `crash_at` (a name in POINTS)."""
    full = {**os.environ, **(env or {})}
    full.pop(ENV, None)
    if harness:
        full["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HARNESS_DIR), full.get("PYTHONPATH", "")) if p
        )
    if crash_at is not None:
        assert crash_at.partition("#")[0] in POINTS, crash_at
        full[ENV] = crash_at
    proc = subprocess.run(
        [*vhc_command(), "--home", str(home), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)
