"""`vhc demo`: the offline guided tour."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import VhcError
from .output import console, print_json, state, table


def demo(
    ctx: typer.Context,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Run in this new folder (default: a temp one).")
    ] = None,
) -> None:
    """Offline tour on the paper exchange: trades, a resting limit order, each risk limit refusing.

    Example: vhc demo
    """
    from ..demo import run_demo

    result = run_demo(directory)
    if state(ctx).json:
        print_json({"home": result.home, "ok": result.ok, "steps": result.steps})
    else:
        rows = [
            [i, s.title, s.outcome.upper() if s.expected != "info" else "", s.detail]
            for i, s in enumerate(result.steps, 1)
        ]
        console.print(
            table("vhc demo (paper exchange, offline)", ["#", "step", "result", "detail"], rows)
        )
        console.print(f"demo workspace: {result.home}  (try: vhc --home {result.home} ledger log)")
    if not result.ok:
        bad = [s.title for s in result.steps if not s.as_expected]
        raise VhcError(f"demo steps did not behave as expected: {'; '.join(bad)}")
    if not state(ctx).json:
        console.print("demo OK: every step behaved as expected")


def register(root: typer.Typer) -> None:
    """Mount `demo` on the root app."""
    root.command("demo")(demo)
