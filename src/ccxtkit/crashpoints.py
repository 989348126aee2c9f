"""Named crash points: the steps of a money-moving flow where a crash leaves a different state.

Each such step calls `reach("flow.step")`. In production that call does nothing: this module
reads no environment variable and no config. Only the crash tests' harness
(`tests/crash/sitecustomize.py`, put on PYTHONPATH by those tests alone) replaces `reach` to end
the process there, so each recovery path is tested from the state a crash really leaves.
"""

from __future__ import annotations


def reach(name: str) -> None:
    """Test-only hook marking crash point `name`; does nothing in production."""
