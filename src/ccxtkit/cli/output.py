"""Rendering shared by every command: JSON for scripts, rich for people, stderr for notes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ..logs import redact
from ..workspace import Workspace

console = Console()
err_console = Console(stderr=True)


@dataclass
class State:
    """What the global options chose, shared with every command through the context."""

    home: str | None = None
    config: str | None = None
    json: bool = False
    verbose: bool = False
    _workspace: Workspace | None = field(default=None, repr=False)

    @property
    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = Workspace.locate(self.home, self.config)
        return self._workspace


def state(ctx: typer.Context) -> State:
    """The State of this invocation (root callback stores it in ctx.obj)."""
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def jsonable(value: Any) -> Any:
    """Turn dataclasses, Decimals, dates and paths into JSON-ready values (money as strings)."""
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def print_json(value: Any) -> None:
    """Print exactly one JSON document on stdout."""
    typer.echo(redact(json.dumps(jsonable(value), indent=2, sort_keys=True)))


def note(message: str) -> None:
    """A diagnostic line on stderr (never mixes with --json output)."""
    # soft_wrap: an error stays one line however narrow the terminal (scripts grep it).
    err_console.print(redact(message), markup=False, highlight=False, soft_wrap=True)


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    """A rich table of plain cells."""
    t = Table(title=title)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*[redact("" if c is None else str(jsonable(c))) for c in row])
    return t
