"""`vhc config validate | show`."""

from __future__ import annotations

from decimal import Decimal

import typer
import yaml

from ..errors import ConfigError
from ..money import fmt
from ..workspace import check_private
from .output import console, print_json, state

app = typer.Typer(help="Check and show the config file.", no_args_is_help=True)


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
    if state(ctx).json:
        doc = {"config": str(path), "valid": not problems, "problems": problems}
        print_json({**doc, "warnings": warnings})
    elif not problems:
        console.print(f"{path}: valid")
        for warning in warnings:
            console.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
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
        text = yaml.dump(data, Dumper=_Dumper, sort_keys=False)
        console.print(text, markup=False, highlight=False)


class _Dumper(yaml.SafeDumper):
    """Shows Decimals as plain numbers, exactly as written."""


def _decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
    text = fmt(value)
    kind = "float" if "." in text else "int"
    return dumper.represent_scalar(f"tag:yaml.org,2002:{kind}", text)


_Dumper.add_representer(Decimal, _decimal)


def register(root: typer.Typer) -> None:
    """Mount the `config` group."""
    root.add_typer(app, name="config")
