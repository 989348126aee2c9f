"""`vhc config validate | show | diff | apply`."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

import typer

from ..errors import ConfigError
from ..money import fmt
from ..workspace import check_private
from .output import console, note, print_json, state, table

app = typer.Typer(
    help="Check and show the config file; diff and apply its policy against the ledger.",
    no_args_is_help=True,
)


@app.command("validate")
def validate(ctx: typer.Context) -> None:
    """Check the config file; each problem is named with its line and key.

    Example: vhc config validate
    """
    from ..config import config_problems

    path = state(ctx).workspace.config_path
    check_private(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise ConfigError(
            f"config file {path} not found: run `vhc init` or pass --config"
        ) from None
    problems = config_problems(text, str(path))
    warnings = [] if problems else _warnings(ctx, text, str(path))
    notes = [] if problems else _notes(text)
    if state(ctx).json:
        doc = {"config": str(path), "valid": not problems, "problems": problems}
        print_json({**doc, "warnings": warnings, "notes": notes})
    elif not problems:
        console.print(f"{path}: valid")
        for warning in warnings:
            console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
        for line in notes:
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    if problems:
        if not state(ctx).json:
            for problem in problems[1:]:
                console.print(problem, markup=False)
        raise ConfigError(problems[0])


def _warnings(ctx: typer.Context, text: str, source: str) -> list[str]:
    """Where a valid config does not do what it may seem to (one line each)."""
    from ..config import parse_config
    from ..withdrawals.config_notes import withdrawal_notes

    return withdrawal_notes(parse_config(text, source), state(ctx).workspace)


def _notes(text: str) -> list[str]:
    """Where vhc's meaning of a key the file sets differs from the seed's comment."""
    from ..config import load_yaml
    from ..config_meaning import seed_notes

    data = load_yaml(text)
    return seed_notes(data if isinstance(data, dict) else {})


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the resolved config (defaults filled in) with secrets masked.

    Example: vhc --json config show
    """
    from ..redact import redacted_config

    data = redacted_config(state(ctx).workspace.config)
    if state(ctx).json:
        print_json(data)
    else:
        console.print(_as_yaml(data), markup=False, highlight=False)


def _as_yaml(data: Any) -> str:
    """YAML with Decimals shown as plain numbers, exactly as written (PyYAML loaded here only:
    `vhc --help` imports every command module)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
        text = fmt(value)
        kind = "float" if "." in text else "int"
        return dumper.represent_scalar(f"tag:yaml.org,2002:{kind}", text)

    Dumper.add_representer(Decimal, decimal)
    return str(yaml.dump(data, Dumper=Dumper, sort_keys=False))


def _shown(value: Any) -> str:
    from ..policy.rules import ABSENT

    if value is ABSENT or value is None:
        return "(none)" if value is None else "(absent)"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _change_rows(changes: list[Any]) -> list[list[Any]]:
    return [[c.key, _shown(c.old), _shown(c.new), c.direction, c.reason] for c in changes]


def _changes_json(changes: list[Any]) -> list[dict[str, Any]]:
    from ..policy.rules import ABSENT

    return [
        {
            "key": c.key,
            "old": None if c.old is ABSENT else c.old,
            "new": None if c.new is ABSENT else c.new,
            "direction": c.direction,
            "reason": c.reason,
        }
        for c in changes
    ]


@app.command("diff")
def diff(ctx: typer.Context) -> None:
    """Show how the config file's policy differs from the policy recorded in the ledger.

    Each changed key of `risk`, `withdrawals` and `exchanges`, old -> new, and whether it
    tightens (recorded automatically) or loosens (needs `vhc config apply --auth-code`).
    Example: vhc config diff
    """
    from ..policy.service import policy_status

    st = state(ctx)
    status = policy_status(st.workspace)
    recorded = status.recorded
    if st.json:
        print_json(
            {
                "file_hash": status.file_hash,
                "recorded_hash": recorded.hash if recorded else None,
                "recorded_seq": recorded.seq if recorded else None,
                "same": status.same,
                "needs_code": bool(status.loosening) or recorded is None,
                "changes": _changes_json(status.changes),
            }
        )
        return
    if recorded is None:
        console.print(f"no policy is recorded in the ledger yet; the file's is {status.file_hash}")
        return
    if status.same:
        console.print(f"policy unchanged: {status.file_hash} (ledger seq {recorded.seq})")
        return
    columns = ["key", "recorded", "file", "direction", "why"]
    console.print(table("Policy: recorded -> file", columns, _change_rows(status.changes)))
    if status.loosening:
        console.print(
            f"{len(status.loosening)} change(s) loosen the policy: record them with "
            "`vhc config apply --auth-code CODE [--approver NAME]`"
        )
    else:
        console.print("only tightening: recorded automatically by the next command (or apply)")


@app.command("apply")
def apply(
    ctx: typer.Context,
    auth_code: Annotated[
        str | None, typer.Option("--auth-code", help="2FA code (needed when loosening).")
    ] = None,
    approver: Annotated[
        str | None, typer.Option("--approver", help="Enrolled approver (default admin).")
    ] = None,
) -> None:
    """Record the config file's policy in the ledger; loosening needs an approver's code.

    Example: vhc config apply --auth-code 123456 --approver admin
    """
    from ..policy.service import apply_policy

    st = state(ctx)
    result = apply_policy(st.workspace, auth_code, approver)
    if result.warning:
        note(result.warning)
    if st.json:
        print_json(
            {
                "hash": result.hash,
                "seq": result.seq,
                "how": result.how,
                "changes": _changes_json(result.changes),
            }
        )
        return
    if result.seq is None:
        console.print(f"policy unchanged: {result.hash} is already on record")
        return
    console.print(
        table("Recorded", ["key", "old", "new", "direction", "why"], _change_rows(result.changes))
    )
    who = " (approved with a code)" if result.how == "approved" else ""
    console.print(f"policy {result.hash} recorded at ledger seq {result.seq}{who}")


def register(root: typer.Typer) -> None:
    """Mount the `config` group."""
    root.add_typer(app, name="config")
