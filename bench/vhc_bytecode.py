"""Whole-process benchmarks measure vhc as `pip install .` leaves it: with its bytecode.

pip compiles an installed package's modules to `__pycache__` at install time. An editable
install (`pip install -e .`) does not, and under `PYTHONDONTWRITEBYTECODE=1` (set on some
machines and CI images) nothing ever writes it, so each `vhc` process compiled every vhc module
from source again: 60-90 ms of every start-up figure measured here before 6 December 2026.
"""

from __future__ import annotations

import compileall
from pathlib import Path


def ensure_bytecode() -> str:
    """Compile the ccxtkit package as pip's install step does; a line saying so."""
    import ccxtkit

    package = Path(ccxtkit.__file__).resolve().parent
    compileall.compile_dir(str(package), quiet=1)
    return f"(vhc's bytecode compiled in {package}, as `pip install .` does)"
