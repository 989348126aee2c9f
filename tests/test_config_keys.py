"""Every config key does what it says: a reader for each key, the seed's example explained."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from ccxtkit.cli.app import main
from ccxtkit.config import TradingConfig
from ccxtkit.config_meaning import PENDING, SEED_NOTES, USED_BY

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "tests" / "data" / "seed_trading_config.yaml"

#: The keys whose seed comment promises something vhc does differently (each must be printed;
#: the withdrawals section's are printed as warnings by withdrawals.config_notes).
SEED_DIFFERENCES = {
    "exchanges.*.sandbox",
    "exchanges.*.ip_allowlist",
    "risk.max_drawdown_pct",
    "risk.kill_switch_enabled",
    "logging.retention_days",
    "logging.immutable",
    "reconciliation.frequency",
    "reconciliation.alert_threshold",
    "monitoring.prometheus_port",
    "monitoring.grafana_port",
    "monitoring.healthcheck_interval",
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def leaves(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every leaf key of a config model; `*` for the names of a mapping of sub-models."""
    out: list[str] = []
    for name, field in model.model_fields.items():
        kind, key = field.annotation, f"{prefix}{name}"
        args, origin = typing.get_args(kind), typing.get_origin(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            out += leaves(kind, key + ".")
        elif origin is dict and isinstance(args[1], type) and issubclass(args[1], BaseModel):
            out += leaves(args[1], key + ".*.")
        elif origin in (typing.Union, types.UnionType) and any(
            isinstance(a, type) and issubclass(a, BaseModel) for a in args
        ):
            sub = next(a for a in args if isinstance(a, type) and issubclass(a, BaseModel))
            if all(a is type(None) or a is sub for a in args):
                out += leaves(sub, key + ".")
            else:
                out.append(key)
        else:
            out.append(key)
    return out


def _sources() -> dict[str, str]:
    src = REPO / "src" / "ccxtkit"
    skip = {"config.py", "config_meaning.py", "redact.py"}
    return {
        str(p): p.read_text(encoding="utf-8")
        for p in src.rglob("*.py")
        if p.name not in skip and "policy" not in p.parts
    }


def test_every_leaf_key_is_read_by_some_code() -> None:
    keys = leaves(TradingConfig)
    assert len(keys) > 70
    missing = [k for k in keys if k not in USED_BY and k not in PENDING]
    assert not missing, f"config keys nothing reads (add a reader and a USED_BY entry): {missing}"
    stale = sorted(set(USED_BY) - set(keys))
    assert not stale, f"USED_BY names keys the model no longer has: {stale}"
    for key in keys:
        if key not in USED_BY:
            continue
        leaf = key.rsplit(".", 1)[-1]
        source = inspect.getsource(importlib.import_module(USED_BY[key]))
        # Read as an attribute (cfg.leaf) or by name ("leaf"), or validated (key: a validator).
        assert re.search(rf"\.{leaf}\b|[\"']{leaf}[\"']", source), (
            f"{key}: {USED_BY[key]} does not read `{leaf}`"
        )
    # A pending key is one nothing reads yet; once something does, it belongs in USED_BY.
    sources = _sources()
    for key in PENDING:
        leaf = key.rsplit(".", 1)[-1]
        readers = [p for p, text in sources.items() if re.search(rf"\.{leaf}\b", text)]
        assert not readers, f"{key} is read by {readers}: move it from PENDING to USED_BY"


def test_the_seed_config_validates_unchanged_and_names_every_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "trading_config.yaml"
    cfg.write_text(SEED.read_text(encoding="utf-8"), encoding="utf-8")
    os.chmod(cfg, 0o600)
    code, out, err = run(capsys, "--config", str(cfg), "config", "validate")
    assert code == 0, err
    assert "valid" in out
    printed = {
        line.split(":", 2)[1].strip() for line in out.splitlines() if line.startswith("note:")
    }
    assert printed == SEED_DIFFERENCES
    assert SEED_DIFFERENCES <= set(SEED_NOTES)
    code, out, err = run(capsys, "--json", "--config", str(cfg), "config", "validate")
    doc = json.loads(out)
    assert code == 0 and doc["valid"] is True and len(doc["notes"]) == len(SEED_DIFFERENCES)
    assert cfg.read_text(encoding="utf-8") == SEED.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("logging:\n  max_bytes: 100000000\n", ["logging.max_bytes", "retention_days"]),
        ("logging:\n  backup_count: 5\n", ["logging.backup_count", "daily files"]),
        ("version: '2.0'\n", ["version", "1.0"]),
    ],
)
def test_keys_that_would_mislead_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, words: list[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text, encoding="utf-8")
    os.chmod(cfg, 0o600)
    code, _, err = run(capsys, "--config", str(cfg), "config", "validate")
    assert code == 2
    for word in words:
        assert word in err
