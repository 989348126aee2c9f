"""Rendering shared by every command: JSON for scripts, rich for people, stderr for notes.

On a terminal, tables are rich tables. When stdout is not a terminal (a pipe, a file, cron)
a table prints as one header line and one tab-separated line per row, in full, and no
message is hard-wrapped. `--json` documents are held until the command ends so that stdout
holds exactly one document, with the error merged in when the command fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..logs import redact
from ..records import jsonable
from ..workspace import Workspace

if TYPE_CHECKING:
    import typer
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

__all__ = [
    "State",
    "console",
    "is_dash",
    "stdin_file",
    "stdout_file",
    "err_console",
    "jsonable",
    "local_time",
    "note",
    "print_json",
    "state",
    "table",
    "time_header",
    "tsv_lines",
]


def _cell(value: Any, text_type: type[Text]) -> str:
    """A table cell as plain text on one line (tabs and newlines would break the columns)."""
    if isinstance(value, text_type):  # rich's Text
        value = value.plain
    text = "" if value is None else str(value)
    return " ".join(text.replace("\t", " ").splitlines())


def tsv_lines(t: Table) -> list[str]:
    """A rich table as a header line and one tab-separated line per row (gh's convention)."""
    from rich.text import Text

    columns = t.columns
    lines = ["\t".join(_cell(c.header, Text) for c in columns)]
    cells = [list(c.cells) for c in columns]
    for i in range(t.row_count):
        lines.append("\t".join(_cell(col[i], Text) if i < len(col) else "" for col in cells))
    return lines


def _make_out() -> Console:
    """The stdout Console (rich is imported on first use: `vhc kill-switch --check` from cron
    and `--json` runs print without it)."""
    from rich.console import Console
    from rich.table import Table

    class _Out(Console):
        """A Console that prints tables as TSV and never hard-wraps when stdout is not a
        terminal."""

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

    return _Out()


def _make_err() -> Console:
    from rich.console import Console

    return Console(stderr=True)


_MAKERS = {"console": _make_out, "err_console": _make_err}
#: The consoles, made on first use by `__getattr__` (declared here for type checkers).
console: Console
err_console: Console


def _get(name: str) -> Console:
    made: Console | None = globals().get(name)
    if made is None:
        made = globals()[name] = _MAKERS[name]()
    return made


def __getattr__(name: str) -> Any:
    """`console` and `err_console`, made on first use (so rich loads only when it prints)."""
    if name not in _MAKERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _get(name)


#: Variables that make rich treat stdout as a terminal (colour, wrapping) even in a pipe.
_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS")
#: Characters rich may interpret in a plain string (markup, tabs, escapes); emoji codes need
#: two colons (`:smile:`), so one colon ("ledger OK: ...") is plain.
_RICH_CHARS = frozenset("[]\t\r\x1b")


def say(text: str) -> None:
    """`console.print(text)` for one plain line; without loading rich when rich would print
    exactly `text` (stdout not a terminal, nothing in it rich would interpret)."""
    plain = text.isprintable() and not _RICH_CHARS.intersection(text) and text.count(":") < 2
    if plain and not any(os.environ.get(v) for v in _TERMINAL_ENV):
        out = sys.stdout
        isatty = getattr(out, "isatty", None)
        if not (isatty and isatty()):
            out.write(text + "\n")
            out.flush()
            return
    _get("console").print(text)


def print_line(text: str) -> None:
    """One line on stdout, flushed (typer.echo's output for plain text, without typer)."""
    out = sys.stdout
    out.write(text + "\n")
    out.flush()


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


#: The State of a fast path's run (see `app.main`): its loaded workspace serves the hooks after.
_fast_state: list[State] = []


def remember_state(st: State) -> None:
    """A fast path runs with this State (there is no typer context to hold it)."""
    _fast_state[:] = [st]


def forget_state() -> None:
    """Start a run with no fast-path State."""
    _fast_state.clear()


def fast_workspace() -> Workspace | None:
    """The workspace a fast path loaded in this run, if any."""
    return _fast_state[0]._workspace if _fast_state else None


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


def has_json() -> bool:
    """Whether this run holds a --json document."""
    return bool(_pending)


def take_json() -> list[Any]:
    """The documents held so far (normally one), forgetting them."""
    held = list(_pending)
    _pending.clear()
    return held


def flush_json() -> None:
    """Print the held document(s) on stdout; several are wrapped in one list."""
    held = take_json()
    if held:
        print_line(dumps(held[0] if len(held) == 1 else held))


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
    _get("err_console").print(redact(message), markup=False, highlight=False, soft_wrap=True)


def forget_notes() -> None:
    """Start a run with no last note."""
    _last_note.clear()


def last_note() -> str | None:
    """The last line note() printed in this run, if any."""
    return _last_note[0] if _last_note else None


def is_dash(path: Path | str | None) -> bool:
    """`-` as a path means stdin or stdout (DESIGN.md)."""
    return path is not None and str(path) == "-"


@contextmanager
def stdin_file(path: Path) -> Iterator[Path]:
    """The file to read: `-` is stdin, copied to a private temporary file first."""
    if not is_dash(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="vhc-stdin-") as tmp:
        copy = Path(tmp) / "stdin"
        with open(copy, "wb") as handle:
            shutil.copyfileobj(sys.stdin.buffer, handle)
        yield copy


@contextmanager
def stdout_file(path: Path) -> Iterator[Path]:
    """The file to write: for `-`, a private temporary file copied to stdout afterwards."""
    if not is_dash(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="vhc-stdout-") as tmp:
        out = Path(tmp) / "stdout"
        yield out
        sys.stdout.flush()
        binary = getattr(sys.stdout, "buffer", None)
        if binary is None:  # a text-only stream (the -q buffer)
            sys.stdout.write(out.read_text("utf-8"))
            return
        with open(out, "rb") as handle:
            shutil.copyfileobj(handle, binary)
        binary.flush()


def zone_name(ws: Workspace) -> str:
    """The workspace's `timezone` (UTC when the config names none): what tables show."""
    return ws.config.timezone or "UTC"


def time_header(ws: Workspace, label: str = "time") -> str:
    """A table's time column header, saying which zone: `time (America/New_York)`."""
    return f"{label} ({zone_name(ws)})"


def local_time(ws: Workspace, value: datetime | None, seconds: bool = False) -> str:
    """A timestamp for a table, in the workspace's zone, with the year (a naive time is UTC)."""
    if value is None:
        return "-"
    from zoneinfo import ZoneInfo

    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    shown = value.astimezone(ZoneInfo(zone_name(ws)))
    return f"{shown:%Y-%m-%d %H:%M:%S}" if seconds else f"{shown:%Y-%m-%d %H:%M}"


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    """A rich table of plain cells (TSV with a header line when stdout is not a terminal)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title)
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*[Text(redact("" if c is None else str(jsonable(c)))) for c in row])
    return t
