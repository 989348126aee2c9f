"""Watch what a `vhc` process imports. Loaded only by tests/test_startup.py (this folder on
PYTHONPATH); production code never reads these variables.

`VHC_TEST_IMPORTS_OUT=FILE`: at exit, FILE gets a JSON object with `modules` (the top-level
names in sys.modules) and, for each of ccxt, pydantic and duckdb that was imported, what the
kill switch's state file said at the moment its import began (`state_active`: true/false/null
for no file) and how long after this process started (`seconds`). `VHC_TEST_STATE_FILE`
names that file.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

STARTED = time.monotonic()
OUT = os.environ.get("VHC_TEST_IMPORTS_OUT")
STATE = os.environ.get("VHC_TEST_STATE_FILE")
WATCHED = ("ccxt", "pydantic", "duckdb")
seen: dict[str, object] = {}


def _chain() -> None:
    """Run the sitecustomize this file shadows (the venv's or the interpreter's), if any."""
    here = Path(__file__).resolve().parent
    rest = [p for p in sys.path if Path(p or ".").resolve() != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


def _state_active() -> bool | None:
    if not STATE:
        return None
    try:
        return bool(json.loads(Path(STATE).read_text("utf-8")).get("active"))
    except (OSError, ValueError):
        return None


class _Watch(importlib.abc.MetaPathFinder):
    """Notes the first import of each watched package (and finds nothing: the normal finders
    load it)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name in WATCHED and name not in seen:
            seen[name] = {
                "state_active": _state_active(),
                "seconds": round(time.monotonic() - STARTED, 4),
            }
        return None


def _dump() -> None:
    assert OUT is not None
    modules = sorted({m.partition(".")[0] for m in sys.modules})
    Path(OUT).write_text(json.dumps({"modules": modules, **seen}), "utf-8")


_chain()
if OUT:
    sys.meta_path.insert(0, _Watch())
    atexit.register(_dump)
