"""`vhc init`: create a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..workspace import init_workspace
from .output import console, print_json, state


def init(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Folder for the new workspace.")] = Path("."),
) -> None:
    """Create a workspace that works offline (paper exchange, example limits).

    Example: vhc init ~/vhc && cd ~/vhc && vhc trade buy BTC/USD 0.01
    """
    result = init_workspace(directory)
    if state(ctx).json:
        print_json(result)
        return
    console.print(f"Created workspace {result.home}")
    console.print(f"  config: {result.config_path}  (edit limits and exchanges here)")
    console.print(f"  ledger: {result.ledger_path}")
    console.print("Next: `vhc --home DIR balances`, `vhc --home DIR trade buy BTC/USD 0.01`")


def register(root: typer.Typer) -> None:
    """Mount `init` on the root app."""
    root.command("init")(init)
