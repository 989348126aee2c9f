"""Rendering shared by every command: JSON for scripts, rich for people, stderr for notes.

On a terminal, tables are rich tables. When stdout is not a terminal (a pipe, a file, cron)
a table prints as one header line and one tab-separated line per row, in full, and no
message is hard-wrapped. `--json` documents are held until the command ends so that stdout
holds exactly one document, with the error merged in when the command fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..logs import redact
from ..workspace import Workspace
from .records import jsonable

__all__ = [
    "State",
    "console",
    "err_console",
    "jsonable",
    "note",
    "print_json",
    "state",
    "table",
    "tsv_lines",
]


def _cell(value: Any) -> str:
    """A table cell as plain text on one line (tabs and newlines would break the columns)."""
    if isinstance(value, Text):
        value = value.plain
    text = "" if value is None else str(value)
    return " ".join(text.replace("\t", " ").splitlines())


def tsv_lines(t: Table) -> list[str]:
    """A rich table as a header line and one tab-separated line per row (gh's convention)."""
    columns = t.columns
    lines = ["\t".join(_cell(c.header) for c in columns)]
    cells = [list(c.cells) for c in columns]
    for i in range(t.row_count):
        lines.append("\t".join(_cell(col[i]) if i < len(col) else "" for col in cells))
    return lines


class _Out(Console):
    """A Console that prints tables as TSV and never hard-wraps when stdout is not a terminal."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        if self.is_terminal:
            super().print(*objects, **kwargs)
            return
        kwargs["soft_wrap"] = True
        for obj in objects:
            if isinstance(obj, Table):  # written as is: rich would expand the tabs
                self.file.write("".join(f"{line}\n" for line in tsv_lines(obj)))
                self.file.flush()
            else:
                super().print(obj, **kwargs)


console = _Out()
err_console = Console(stderr=True)


@dataclass
class State:
    """What the global options chose, shared with every command through the context."""

    home: str | None = None
    config: str | None = None
    json: bool = False
    verbose: bool = False
    quiet: bool = False
    _workspace: Workspace | None = field(default=None, repr=False)

    @property
    def workspace(self) -> Workspace:
        """This run's workspace; a folder without a config is refused (exit 2, with the fix)."""
        if self._workspace is None:
            ws = Workspace.locate(self.home, self.config)
            ws.require_config()
            self._workspace = ws
        return self._workspace


def state(ctx: typer.Context) -> State:
    """The State of this invocation (root callback stores it in ctx.obj)."""
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


#: True while main() runs the app: it prints the held document itself, after the command.
run_by_main = False
#: The --json document of this run, held until the command ends (see flush_json).
_pending: list[Any] = []
#: The last diagnostic line, the message of a JSON error object when a command exits non-zero.
_last_note: list[str] = []


def print_json(value: Any) -> None:
    """Hold this run's one JSON document; it is printed when the command ends."""
    _pending.append(jsonable(value))


def dumps(value: Any) -> str:
    """The one JSON text format of vhc (indented, keys sorted, secrets redacted)."""
    return redact(json.dumps(value, indent=2, sort_keys=True))


def take_json() -> list[Any]:
    """The documents held so far (normally one), forgetting them."""
    held = list(_pending)
    _pending.clear()
    return held


def flush_json() -> None:
    """Print the held document(s) on stdout; several are wrapped in one list."""
    held = take_json()
    if held:
        typer.echo(dumps(held[0] if len(held) == 1 else held))


def error_document(
    exit_code: int, kind: str, message: str, extra: dict[str, Any] | None = None
) -> Any:
    """The JSON printed when a command fails: the error object, merged into a partial result."""
    error: dict[str, Any] = {"exit_code": exit_code, "kind": kind, "message": redact(message)}
    if extra:
        error.update(jsonable(extra))
    held = take_json()
    if not held:
        return {"error": error}
    partial = held[0] if len(held) == 1 else held
    if isinstance(partial, dict) and "error" not in partial:
        return {**partial, "error": error}
    return {"error": error, "result": partial}


def note(message: str) -> None:
    """A diagnostic line on stderr (never mixes with --json output)."""
    _last_note[:] = [message]
    # soft_wrap: an error stays one line however narrow the terminal (scripts grep it).
    err_console.print(redact(message), markup=False, highlight=False, soft_wrap=True)


def last_note() -> str | None:
    """The last line note() printed in this run, if any."""
    return _last_note[0] if _last_note else None


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    """A rich table of plain cells (TSV with a header line when stdout is not a terminal)."""
    t = Table(title=title)
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*[Text(redact("" if c is None else str(jsonable(c)))) for c in row])
    return t
