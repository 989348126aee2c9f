"""Crash vhc at one named point. Loaded only by the crash tests (tests/crash on PYTHONPATH).

`VHC_TEST_CRASH_AT=name` (or `name#n`: the n-th time the point is reached) makes
`ccxtkit.crashpoints.reach(name)` end the process at once with `os._exit(137)`, the status
of a SIGKILL: no finally blocks, no atexit, no flushing; the kernel drops file locks and
DuckDB never sees a commit. Production code never reads this variable; this file alone does.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

CRASH_EXIT = 137
ENV = "VHC_TEST_CRASH_AT"


def _install(spec: str) -> None:
    import ccxtkit.crashpoints as crashpoints

    name, _, nth = spec.partition("#")
    wanted = int(nth or 1)
    seen = 0

    def reach(point: str) -> None:
        nonlocal seen
        if point != name:
            return
        seen += 1
        if seen >= wanted:
            os._exit(CRASH_EXIT)

    crashpoints.reach = reach


def _chain() -> None:
    """Run the sitecustomize this file shadows (the venv's or the interpreter's), if any."""
    here = Path(__file__).resolve().parent
    rest = [p for p in sys.path if Path(p or ".").resolve() != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_chain()
if os.environ.get(ENV):
    _install(os.environ[ENV])
