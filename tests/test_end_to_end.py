"""Whole-product runs: metrics and alerts after real commands, and a secret that never leaks."""

from __future__ import annotations

import base64
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from ccxtkit.exchanges.factory import open_exchange
from ccxtkit.workspace import Workspace, init_workspace, write_private
from tests.kraken_server import KrakenServer
from tests.test_alerts import SMTP_PASSWORD, Inbox, email_yaml, smtp_server  # noqa: F401
from tests.test_trade_flow import run


def edit_config(home: Path, change: dict[str, object]) -> None:
    """Deep-merge `change` into the workspace's config."""
    path = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())

    def merge(into: dict[str, object], new: dict[str, object]) -> None:
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)  # type: ignore[arg-type]
            else:
                into[key] = value

    merge(data, change)
    write_private(path, yaml.safe_dump(data))


def metric_values(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus textfile, by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_trade_reconcile_finding_and_kill_switch_reach_metrics_and_inbox(
    tmp_path: Path,
    smtp_server: Inbox,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "ws"
    init_workspace(home)
    metrics_dir = tmp_path / "textfile"
    metrics_dir.mkdir()
    alerts = yaml.safe_load(email_yaml(smtp_server))
    edit_config(
        home,
        {
            "secrets": {"backend": "env"},
            "monitoring": {"textfile_dir": str(metrics_dir), "alerts": alerts},
        },
    )
    monkeypatch.setenv("VHC_SMTP_PASSWORD", SMTP_PASSWORD)
    h = ("--home", str(home))

    assert run(capsys, *h, "balances")[0] == 0
    code, _, err = run(capsys, *h, "trade", "buy", "BTC/USD", "0.01")
    assert code == 0, err
    # Somebody empties part of the account behind vhc's back.
    paper = open_exchange(Workspace.locate(str(home)), "paper")
    paper.simulate_withdrawal("USD", Decimal("2500"), "bc1-not-ours")  # type: ignore[attr-defined]
    code, out, err = run(capsys, *h, "reconcile", "--date", "today")
    assert code == 1, (out, err)
    code, _, err = run(capsys, *h, "kill-switch", "--activate", "--reason", "e2e drill")
    assert code == 0, err

    values = metric_values(metrics_dir / "vhc.prom")
    assert values[("trading_orders_total", (("exchange", "paper"),))] == 1
    assert values[("vhc_kill_switch_active", ())] == 1
    discrepancy = values[("trading_reconciliation_discrepancy_usd", (("exchange", "paper"),))]
    assert discrepancy >= 2500
    assert values[("vhc_ledger_head_seq", ())] > 0

    subjects = [str(m["Subject"]) for m in smtp_server.messages]
    assert any("withdrawal" in s.lower() for s in subjects), subjects
    assert any("kill switch" in s.lower() for s in subjects), subjects
    assert all(smtp_server.tls), "every alert went over STARTTLS"


def test_canary_key_appears_nowhere(
    tmp_path: Path,
    kraken_server: KrakenServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    canary_key = "CANARYKEY-7f3e9c1a-do-not-leak"
    canary_secret = base64.b64encode(b"CANARY-SECRET-" + bytes(range(40))).decode()
    kraken_server.keys[canary_key] = canary_secret
    kraken_server.set_balance("USD", "50000")
    kraken_server.set_price("BTC/USD", "60000")
    home = tmp_path / "ws"
    init_workspace(home)
    edit_config(
        home,
        {
            "exchanges": {
                "kraken": {
                    "secrets": "env",
                    "rate_limit": 1000,
                    "ccxt": {**kraken_server.ccxt_config(), "timeout": 3000},
                }
            }
        },
    )
    monkeypatch.setenv("KRAKEN_API_KEY", canary_key)
    monkeypatch.setenv("KRAKEN_API_SECRET", canary_secret)
    h = ("--home", str(home))
    outputs = []
    for args in (
        ("trade", "buy", "BTC/USD", "0.01", "--exchange", "kraken", "--yes"),
        ("-v", "trade", "buy", "BTC/USD", "100", "--exchange", "kraken", "--yes"),
        ("--json", "balances"),
        ("reconcile", "--date", "today"),
        ("--json", "reconcile", "--date", "today", "--auto-sync"),
        ("kill-switch", "--activate", "--reason", "canary drill"),
        ("--json", "kill-switch", "--status"),
        ("tax-report", "--year", "2026"),
        ("--json", "config", "show"),
        ("doctor",),
        ("ledger", "export", "--table", "trades", "--format", "json"),
    ):
        code, out, err = run(capsys, *h, *args)
        assert code != 70, (args, err)  # never an internal error
        outputs.append(out + err)
    assert len(kraken_server.requests_to("AddOrder")) == 1  # the trade really ran

    raw_secret = base64.b64decode(canary_secret)
    for text in outputs:
        assert canary_key not in text and canary_secret not in text
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert canary_key.encode() not in data, path
            assert canary_secret.encode() not in data, path
            assert raw_secret not in data, path
