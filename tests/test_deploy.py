"""The shipped ops files: rules pass promtool, dashboards and rules name only exported metrics."""

from __future__ import annotations

import configparser
import datetime as dt
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ccxtkit.cli.app import app
from ccxtkit.ledger.store import open_ledger
from ccxtkit.metrics import collect, record_latency
from ccxtkit.workspace import Workspace

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
RULE_FILES = sorted((DEPLOY / "prometheus").glob("*.yml"))
DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))
METRIC = re.compile(r"\b(?:trading|vhc)_[a-z0-9_]+\b")


def promtool() -> str:
    """The promtool binary; skipped only outside CI (CI installs Debian's `prometheus`)."""
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing in CI: apt-get install -y prometheus")
        pytest.skip("promtool not installed (apt-get install -y prometheus)")
    return found


def test_promtool_check_rules() -> None:
    assert RULE_FILES, "no rule files shipped"
    result = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULE_FILES)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests() -> None:
    tests = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
    result = subprocess.run(
        [promtool(), "test", "rules", *map(str, tests)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name `collect()` exports for a ledger that exercises every metric."""
    home = tmp_path_factory.mktemp("ws")
    (home / "config").mkdir()
    (home / "config" / "trading_config.yaml").write_text("{}\n")
    (home / "config" / "trading_config.yaml").chmod(0o600)
    ws = Workspace.locate(str(home))
    now = dt.datetime.now(dt.UTC)
    with open_ledger(ws.ledger_path, 5) as led:
        led.append("balance_snapshots", [
            {"timestamp": now, "exchange": "kraken", "asset": "USD", "total": D(1), "source": "t"}
        ])  # fmt: skip
        led.record_event("reconcile.completed", {"discrepancy_usd": {"kraken": "1"}, "ok": True})
        led.record_event("ledger.verify", {"ok": True})
    record_latency(ws, "kraken", "fetch_balance", 12.5)
    text = generate_latest(collect(ws)).decode()
    names = set()
    # Series names as Prometheus stores them: a counter family `x` is the series `x_total`.
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in suffixes.get(family.type, [""]))
    assert "trading_orders_filled" not in names and not any(
        n.endswith("_ms") or "_ms_" in n for n in names
    )
    return names


def test_exported_names_cover_the_seed(exported: set[str]) -> None:
    seed = {
        "trading_orders_total", "trading_orders_filled_total", "trading_orders_rejected_total",
        "trading_balance_usd", "trading_pnl_daily_usd", "trading_api_latency_seconds_bucket",
        "trading_reconciliation_discrepancy_usd", "vhc_kill_switch_active",
        "vhc_ledger_head_seq", "vhc_last_reconcile_success_timestamp_seconds",
        "vhc_withdrawal_requests_pending", "vhc_ledger_verify_ok", "trading_drawdown_pct",
        "vhc_exchange_up",
    }  # fmt: skip
    assert seed <= exported


def queries(board: dict) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and templating query of a dashboard."""
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for var in board.get("templating", {}).get("list", []):
        query = var.get("query")
        if var.get("type") == "query":
            yield f"variable {var['name']}", query["query"] if isinstance(query, dict) else query


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_name_only_exported_metrics(path: Path, exported: set[str]) -> None:
    board = json.loads(path.read_text())
    assert board["uid"].startswith("vhc-") and board["panels"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for where, expr in queries(board):
        names = set(METRIC.findall(expr))
        assert names, f"{path.name} {where}: no vhc metric in {expr!r}"
        assert names <= exported, f"{path.name} {where}: unknown {sorted(names - exported)}"


def test_the_four_seed_dashboards_are_shipped() -> None:
    titles = {json.loads(p.read_text())["title"] for p in DASHBOARDS}
    assert titles == {
        "vhc / Trading Overview", "vhc / Risk Metrics", "vhc / System Health",
        "vhc / Reconciliation",
    }  # fmt: skip


def test_alert_rules_name_only_exported_metrics(exported: set[str]) -> None:
    alerts = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                alerts.add(rule["alert"])
                names = set(METRIC.findall(rule["expr"]))
                assert names and names <= exported, (rule["alert"], names - exported)
                assert rule["labels"]["severity"] in {"info", "warning", "critical"}
    assert {
        "VhcReconciliationDiscrepancyHigh", "VhcDrawdownWarning", "VhcDrawdownCritical",
        "VhcFailedOrders", "VhcExchangeApiDown", "VhcReconcileStale", "VhcKillSwitchActive",
        "VhcLedgerVerifyFailed",
    } <= alerts  # fmt: skip


def test_systemd_units_and_crontab_run_real_commands() -> None:
    units = {p.name: p for p in (DEPLOY / "systemd").iterdir()}
    for name in ("vhc-reconcile", "vhc-verify", "vhc-killswitch-check"):
        timer = configparser.ConfigParser(strict=False, interpolation=None)
        timer.read(units[f"{name}.timer"])
        assert timer["Timer"]["OnCalendar"] and timer["Timer"]["Persistent"] == "true"
        assert f"{name}.service" in units
    commands = []
    for path in units.values():
        if path.suffix == ".service":
            unit = configparser.ConfigParser(strict=False, interpolation=None)
            unit.read(path)
            assert unit["Service"]["User"] == "vhc"
            commands.append(unit["Service"]["ExecStart"])
    for line in (DEPLOY / "cron" / "vhc.crontab").read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]:
            fields = line.split(None, 5)
            assert len(fields) == 6, line
            commands += [c.strip() for c in fields[5].split("&&")]
    # every command is one of DESIGN.md's, or a `vhc metrics` subcommand that exists now
    metrics_commands = {c.name for c in _group("metrics").registered_commands}
    for command in commands:
        words = command.split()
        assert words[0].endswith("vhc"), command
        group = words[1]
        if group == "metrics":
            assert words[2] in metrics_commands, command
        else:
            allowed = {
                "reconcile --date",
                "ledger verify",
                "ledger digest",
                "ledger backup",
                "kill-switch --check",
                "serve --host",
                "signals work",
            }
            assert " ".join(words[1:3]) in allowed, command


def _group(name: str):  # type: ignore[no-untyped-def]
    return next(g.typer_instance for g in app.registered_groups if g.name == name)


def test_kill_switch_check_is_scheduled_every_minute() -> None:
    timer = configparser.ConfigParser(strict=False, interpolation=None)
    timer.read(DEPLOY / "systemd" / "vhc-killswitch-check.timer")
    assert timer["Timer"]["OnCalendar"] == "*-*-* *:*:00"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(DEPLOY / "systemd" / "vhc-killswitch-check.service")
    assert unit["Service"]["ExecStart"].endswith("vhc kill-switch --check")
    assert set(unit["Service"]["SuccessExitStatus"].split()) == {"1", "4"}
    cron = [
        line
        for line in (DEPLOY / "cron" / "vhc.crontab").read_text().splitlines()
        if line.strip() and not line.startswith("#") and "kill-switch --check" in line
    ]
    assert [line.split(None, 5)[:5] for line in cron] == [["*", "*", "*", "*", "*"]]
    readme = (DEPLOY.parent / "README.md").read_text()
    assert "kill-switch --check" in readme and "vhc-killswitch-check.timer" in readme
