"""Config: the seed's example loads unchanged; every kind of bad config gets one line naming it."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from ccxtkit.cli.app import main
from ccxtkit.config import parse_config

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "tests" / "data" / "seed_trading_config.yaml"
EXAMPLE = REPO / "config" / "trading_config.example.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `vhc ARGS` in-process through main() (where errors become one line + exit code)."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)
    return path


def test_seed_example_validates_unchanged() -> None:
    config = parse_config(SEED.read_text(encoding="utf-8"), str(SEED))
    assert set(config.exchanges) == {"coinbase", "kraken"}
    assert config.exchanges["kraken"].rate_limit == Decimal(15)
    assert config.exchanges["coinbase"].ip_allowlist == ["203.0.113.5", "203.0.113.6"]
    assert config.risk.max_order_value == Decimal(10000)
    assert config.withdrawals.approval_method == "email"
    assert config.logging.retention_days == 2555
    # YAML floats become exact Decimals from their text, never via float.
    threshold = config.reconciliation.alert_threshold
    assert isinstance(threshold, Decimal) and str(threshold) == "0.01"


def test_committed_example_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = parse_config(EXAMPLE.read_text(encoding="utf-8"), str(EXAMPLE))
    assert config.exchanges["paper"].id == "paper"
    assert config.exchanges["paper"].paper.fee_rate == Decimal("0.001")
    cfg = write_config(tmp_path / "c.yaml", EXAMPLE.read_text(encoding="utf-8"))
    code, out, err = run(capsys, "--config", str(cfg), "config", "validate")
    assert code == 0, err
    assert "valid" in out


def test_seed_validates_through_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "seed.yaml", SEED.read_text(encoding="utf-8"))
    code, out, err = run(capsys, "--json", "--config", str(cfg), "config", "validate")
    assert code == 0, err
    doc = json.loads(out)
    assert {k: doc[k] for k in ("config", "valid", "problems")} == {
        "config": str(cfg),
        "valid": True,
        "problems": [],
    }


# (name, config text, expected line or None, words the message must contain)
BAD_CONFIGS = [
    ("unknown top-level key", "version: '1.0'\nrisk_limits:\n  x: 1\n", 2, ["risk_limits"]),
    (
        "unknown nested key",
        "risk:\n  max_order_value: 10\n  max_order_valu: 5\n",
        3,
        ["risk.max_order_valu", "unknown key"],
    ),
    ("wrong type", "risk:\n  max_order_value: abc\n", 2, ["risk.max_order_value", "'abc'"]),
    ("negative limit", "risk:\n  max_daily_volume: -5\n", 2, ["risk.max_daily_volume"]),
    ("bad enum", "logging:\n  level: LOUD\n", 2, ["logging.level", "LOUD"]),
    (
        "bad secrets backend",
        "exchanges:\n  kraken:\n    rate_limit: 15\n    secrets: lastpass\n",
        4,
        ["exchanges.kraken.secrets", "lastpass"],
    ),
    ("bad timezone", "version: '1.0'\ntimezone: Mars/Olympus\n", 2, ["timezone", "Mars/Olympus"]),
    ("invalid YAML", "risk:\n  max_order_value: 1\n   bad: [\n", 3, ["not valid YAML"]),
    ("top level a list", "- risk\n- exchanges\n", None, ["top level must be a mapping"]),
    (
        "rate_limit 0",
        "exchanges:\n  kraken:\n    rate_limit: 0\n",
        3,
        ["exchanges.kraken.rate_limit", "greater than 0"],
    ),
    ("bad daily_loss_limit", "risk:\n  daily_loss_limit: lots\n", 2, ["risk.daily_loss_limit"]),
    ("negative daily_loss_limit", "risk:\n  daily_loss_limit: -5\n", 2, ["daily_loss_limit"]),
    ("percentage over 100", "risk:\n  daily_loss_limit: '150%'\n", 2, ["daily_loss_limit"]),
    # A second value for a key would silently replace the first limit.
    (
        "duplicate key",
        "risk:\n  max_order_value: 100\n  max_order_value: 100000\n",
        3,
        ["duplicate key", "max_order_value"],
    ),
    ("infinite limit", "risk:\n  max_order_value: .inf\n", 2, ["risk.max_order_value"]),
    ("bad boolean", "risk:\n  kill_switch_enabled: maybe\n", 2, ["risk.kill_switch_enabled"]),
    (
        "port out of range",
        "monitoring:\n  prometheus_port: 70000\n",
        2,
        ["monitoring.prometheus_port"],
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "words"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    line: int | None,
    words: list[str],
) -> None:
    cfg = write_config(tmp_path / "trading_config.yaml", text)
    code, out, err = run(capsys, "--config", str(cfg), "config", "validate")
    assert code == 2
    assert "Traceback" not in err + out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    prefix = f"error: {cfg}:{line}: " if line else f"error: {cfg}: "
    assert lines[0].startswith(prefix), lines[0]
    for word in words:
        assert word in lines[0]


def test_every_problem_listed_in_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "c.yaml", "risk:\n  max_order_valu: 1\nlogging:\n  level: LOUD\n")
    code, out, _ = run(capsys, "--json", "--config", str(cfg), "config", "validate")
    assert code == 2
    doc = json.loads(out)
    assert doc["valid"] is False
    assert len(doc["problems"]) == 2
    assert f"{cfg}:2:" in doc["problems"][0] and f"{cfg}:4:" in doc["problems"][1]


SECRET_CONFIG = """\
secrets:
  backend: keyring
exchanges:
  kraken:
    rate_limit: 15
    secrets: keyring
    ccxt:
      apiKey: AKIA-live-key-123456
      secret: sup3r-s3cret-value-987
      password: hunter2hunter2
      timeout: 30000
      options:
        defaultType: spot
monitoring:
  alerts:
    slack:
      url: https://hooks.slack.com/services/T0000/B0000/XXXXslacktoken
    email:
      host: smtp.example.com
      sender: vhc@example.com
      recipients: [ops@example.com]
      password_secret: smtp_password
"""


def test_show_masks_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "c.yaml", SECRET_CONFIG)
    for args in (("config", "show"), ("--json", "config", "show")):
        code, out, err = run(capsys, "--config", str(cfg), *args)
        assert code == 0, err
        for secret in ("AKIA-live-key", "sup3r-s3cret", "hunter2", "XXXXslacktoken"):
            assert secret not in out + err
        assert "***" in out
        assert "defaultType" in out and "smtp_password" in out
    doc = json.loads(out)
    kraken = doc["exchanges"]["kraken"]
    assert kraken["secrets"] == "keyring"  # a backend's name, not a secret
    assert kraken["ccxt"]["apiKey"] == "***" and kraken["ccxt"]["secret"] == "***"
    assert kraken["ccxt"]["timeout"] == 30000
    assert doc["monitoring"]["alerts"]["slack"]["url"] == "***"
    assert doc["risk"]["max_order_value"] == "10000"  # defaults filled in, money as strings
