"""`vhc secrets set | check`: store keys without echo, and prove they resolve (never shown)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ccxtkit.cli.output import console, note, print_json, state, table
from ccxtkit.errors import UsageError, VhcError

if TYPE_CHECKING:
    from ccxtkit.secrets import Credentials, SetResult

#: Spelled out here so that `vhc --help` does not import the secrets backends (and pydantic).
BACKENDS = ("keyring", "vault", "aws", "env")

app = typer.Typer(help="Store and check API keys and other secrets.", no_args_is_help=True)

BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help=f"Where to store it: {'|'.join(BACKENDS)} (default: the account's `secrets:`).",
    ),
]


def _ask(label: str, optional: bool = False) -> str:
    """Prompt without echo, twice, so a typo is caught before it is stored."""
    value: str = typer.prompt(
        label,
        hide_input=True,
        confirmation_prompt=not optional,
        default="" if optional else None,
        show_default=False,
    )
    return value.strip()


@app.command("set")
def set_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Exchange account name, or a secret's name.")],
    backend: BackendOption = None,
    from_file: Annotated[
        str | None,
        typer.Option("--from-file", help="Read the value(s) from this file; - reads stdin."),
    ] = None,
) -> None:
    """Store an account's API key (or a named secret); prompts and never echoes.

    For an account under `exchanges:` it asks for the API key, the secret and an optional
    passphrase; for any other name (e.g. smtp_password) it asks for one value. When stdin
    is not a terminal (or with --from-file) the values are read from it instead: one value,
    or for an account the key, the secret and the optional passphrase on lines 1-3. The
    ledger records when the secret was set and where, never the value.

    Example: vhc secrets set kraken --backend vault; echo "$TOKEN" | vhc secrets set slack
    """
    st = state(ctx)
    ws = st.workspace
    from ccxtkit.secrets import Credentials, set_credentials, set_secret, target
    from ccxtkit.secrets.common import require_backend

    ref, chosen = target(ws, name, require_backend(backend) if backend else None)
    given = _read_values(from_file)
    result: SetResult
    if ref.is_exchange:
        configured = ws.config.exchange(name).secrets
        if chosen != configured:
            note(
                f"note: account {name!r} reads its key from {configured!r} "
                f"(exchanges.{name}.secrets); storing in {chosen!r} as asked"
            )
        if given is not None:
            creds = _credentials_from(given, name)
        else:
            creds = Credentials(
                api_key=_ask("API key"),
                api_secret=_unescape_pem(_ask("API secret")),
                passphrase=_ask("Passphrase (Enter for none)", optional=True) or None,
            )
        result = set_credentials(ws, name, creds, chosen, now=datetime.now(UTC))
    else:
        value = given.strip() if given is not None else _ask(f"Value of {name}")
        if not value:
            raise UsageError(f"no value for {name} on stdin (or in --from-file); nothing stored")
        result = set_secret(ws, name, value, chosen, now=datetime.now(UTC))
    _show_warnings()
    if st.json:
        print_json(result)
        return
    console.print(f"Stored {result.name} in {result.location} ({result.recorded})")


def _read_values(from_file: str | None) -> str | None:
    """The text given by --from-file or a non-terminal stdin (gh secret set's convention)."""
    import sys

    if from_file is not None and from_file != "-":
        try:
            return Path(from_file).expanduser().read_text("utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read --from-file {from_file}: {exc.strerror}") from None
    if from_file == "-" or not sys.stdin.isatty():
        return sys.stdin.read()
    return None


def _unescape_pem(value: str) -> str:
    """A PEM key pasted on one line with literal \\n escapes (Coinbase's CDP key file
    spells its privateKey so) as the multi-line PEM it is."""
    if value.startswith("-----BEGIN") and "\\n" in value:
        return value.replace("\\n", "\n").strip() + "\n"
    return value


def _join_pem(lines: list[str]) -> list[str]:
    """Lines with a PEM block (e.g. Coinbase's EC private key) joined into one value."""
    out: list[str] = []
    block: list[str] | None = None
    for line in lines:
        if block is None and line.startswith("-----BEGIN"):
            if "-----END" in line:  # the whole key on one line, with \\n escapes
                out.append(_unescape_pem(line))
                continue
            block = [line]
        elif block is not None:
            block.append(line)
            if line.startswith("-----END"):
                out.append("\n".join(block) + "\n")
                block = None
        else:
            out.append(line)
    return out if block is None else out + block


def _credentials_from(text: str, name: str) -> Credentials:
    """API key, secret and optional passphrase on lines 1-3."""
    from ccxtkit.secrets import Credentials

    lines = _join_pem([line.strip() for line in text.splitlines()])
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) < 2 or not lines[0] or not lines[1] or len(lines) > 3:
        raise UsageError(
            f"expected the API key of {name} on line 1, its secret on line 2 and an optional "
            "passphrase on line 3 (stdin or --from-file); nothing stored"
        )
    return Credentials(lines[0], lines[1], (lines[2] if len(lines) == 3 else "") or None)


@app.command("check")
def check_cmd(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this account or secret.")] = None,
) -> None:
    """Prove each configured account's key resolves, and show its age (values never shown).

    Warns past `secrets.max_age_days` (default 90) and when a live account reads its key
    from environment variables. Exits with 2 if a secret is missing, 5 if a backend is down.

    Example: vhc secrets check kraken
    """
    from ccxtkit.secrets.check import check_secrets

    st = state(ctx)
    from ccxtkit.secrets import take_warnings

    report = check_secrets(st.workspace, datetime.now(UTC), name)
    take_warnings()  # the rows carry these warnings already
    if st.json:
        print_json(report)
    else:
        rows = [
            [
                r.name,
                r.backend,
                r.status if r.problem is None else f"{r.status}: {r.problem}",
                "unknown" if r.age_days is None and r.status == "ok" else r.age_days,
            ]
            for r in report.rows
        ]
        console.print(table("Secrets", ["name", "backend", "status", "age (days)"], rows))
        for r in report.rows:
            for warning in r.warnings:
                note(warning if warning.startswith("warning:") else f"warning: {warning}")
        for line in report.notes:
            note(f"note: {line}")
    code = report.exit_code()
    if code:
        failed = [r for r in report.rows if r.problem]
        raise _Failed(failed[0].problem or "a secret did not resolve", code)


class _Failed(VhcError):
    """The first failing row, so `main` prints one line and exits with its code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.exit_code = code


def _show_warnings() -> None:
    from ccxtkit.secrets import take_warnings

    for warning in take_warnings():
        note(warning)


def register(root: typer.Typer) -> None:
    """Mount the `secrets` group."""
    root.add_typer(app, name="secrets")
