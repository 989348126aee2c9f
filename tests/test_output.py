"""Output for scripts (issue 16 items 1, 2, 6): TSV when piped, global flags anywhere, JSON errors."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ccxtkit.cli.app import main


@dataclass
class Run:
    code: int
    out: str
    err: str


def vhc(*args: str, input: str | None = None) -> Run:
    """Run `vhc` through main() with stdout and stderr that are not terminals."""
    with CliRunner().isolation(input=input) as (out, err, _):
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return Run(code, out.getvalue().decode(), err.getvalue().decode())


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    assert vhc("init", str(home)).code == 0
    return home


def test_piped_tables_are_tsv_with_every_row_in_full(ws: Path) -> None:
    h = ("--home", str(ws))
    assert vhc(*h, "trade", "buy", "SOL/USD", "1").code == 0
    assert (
        vhc(*h, "trade", "buy", "BTC/USD", "0.001", "--type", "limit", "--price", "1000").code == 0
    )
    run = vhc(*h, "trade", "orders", "--all")
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    header = lines[0].split("\t")
    assert header[1:4] == ["exchange", "order_id", "symbol"] and header[0].startswith("time (")
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 2 and all(len(r) == len(header) for r in rows)
    assert {r[3] for r in rows} == {"SOL/USD", "BTC/USD"}  # grep SOL/USD finds it
    assert "…" not in run.out


def test_long_messages_are_not_hard_wrapped(ws: Path) -> None:
    run = vhc("--home", str(ws), "trade", "buy", "BTC/USD", "1000", "--dry-run")
    assert run.code == 3
    refusal = [line for line in run.out.splitlines() if "REFUSED" in line]
    # every refused check is one line, every one reported (not only the first)
    assert len(refusal) >= 3 and all(line.count("\t") == 2 for line in refusal)
    assert len(run.err.strip().splitlines()) == 1 and len(run.err) > 200


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_flags_anywhere(ws: Path, where: str) -> None:
    args = ["--home", str(ws), "balances"]
    flags = ["--json", "-v"]
    run = vhc(*(flags + args if where == "before" else args + flags))
    assert run.code == 0, run.err
    assert json.loads(run.out)["balances"]["paper"]["USD"]["total"] == "100000"


def test_json_failure_is_one_error_object_and_the_message_on_stderr(ws: Path) -> None:
    run = vhc("--home", str(ws), "trade", "buy", "BTC/USD", "1000", "--dry-run", "--json")
    assert run.code == 3
    doc = json.loads(run.out)  # exactly one document
    error = doc["error"]
    assert error["exit_code"] == 3 and error["kind"] == "risk_limit"
    assert run.err.strip() == f"error: {error['message']}"
    refused = [c["name"] for c in error["checks"] if not c["ok"]]
    assert {"risk.max_order_value", "risk.max_daily_volume"} <= set(refused)
    usage = vhc("--home", str(ws), "trade", "buy", "--json")
    assert usage.code == 2 and json.loads(usage.out)["error"]["kind"] == "usage"


def test_quiet_prints_nothing_on_success_and_everything_on_failure(ws: Path) -> None:
    ok = vhc("--home", str(ws), "trade", "buy", "SOL/USD", "1", "-q")
    assert ok.code == 0 and ok.out == "" and ok.err == ""
    assert vhc("-q", "--home", str(ws), "ledger", "verify").out == ""
    assert json.loads(vhc("-q", "--json", "--home", str(ws), "balances").out)["balances"]
    bad = vhc("--home", str(ws), "--quiet", "trade", "buy", "BTC/USD", "1000")
    assert bad.code == 3 and "REFUSED" in bad.out and bad.err.startswith("error: ")


def test_version() -> None:
    run = vhc("--version")
    assert run.code == 0 and run.out.startswith("vhc ") and run.out.strip()[4:][0].isdigit()


def test_shell_completion_is_offered() -> None:
    assert "--install-completion" in vhc("--help").out


# A plausible value for each required parameter, so the workspace check is what fails.
SAMPLE = {"--year": "2025", "--method": "hifo", "amount": "1", "--auth-code": "123456"}


def _leaf_commands() -> list[tuple[list[str], list[str]]]:
    import typer.main

    from ccxtkit.cli.app import app

    found: list[tuple[list[str], list[str]]] = []

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
            return
        args: list[str] = []
        for p in getattr(cmd, "params", []):
            if not p.required:
                continue
            opts = [o for o in p.opts if o.startswith("--")]
            key = opts[0] if opts else p.name
            value = SAMPLE.get(key, "x")
            args += [opts[0], value] if opts else [value]
        found.append((path, args))

    walk(typer.main.get_command(app), [])
    return [(p, a) for p, a in found if p[0] not in ("init", "demo")]


@pytest.mark.parametrize("path,args", _leaf_commands(), ids=lambda v: " ".join(v) or "-")
def test_every_command_needs_a_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: list[str], args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VHC_HOME", raising=False)
    monkeypatch.delenv("VHC_CONFIG", raising=False)
    extra = ["--status"] if path == ["kill-switch"] else []
    run = vhc(*path, *args, *extra)
    assert run.code == 2, (run.out, run.err)
    assert "vhc init" in run.err and "VHC_HOME" in run.err
    assert "inactive" not in run.out
    assert list(tmp_path.iterdir()) == []  # nothing created (no ./state/, no ./logs/)
    as_json = vhc(*path, *args, *extra, "--json")
    assert json.loads(as_json.out)["error"]["exit_code"] == 2


def test_dash_is_stdout_and_stdin_and_an_export_reimports(ws: Path, tmp_path: Path) -> None:
    h = ("--home", str(ws))
    assert vhc(*h, "trade", "buy", "SOL/USD", "1").code == 0
    exported = vhc(*h, "ledger", "export", "--table", "trades", "--format", "csv", "--output", "-")
    assert exported.code == 0, exported.err
    assert exported.out.startswith("seq,") and "SOL/USD" in exported.out
    assert not Path("-").exists()
    first = exported.out.splitlines()[1]
    assert "+00:00" in first  # RFC 3339 with an offset in CSV too
    other = tmp_path / "other"
    assert vhc("init", str(other)).code == 0
    imported = vhc("--home", str(other), "--json", "ledger", "import", "--trades", "-",
                   input=exported.out)  # fmt: skip
    assert imported.code == 0, imported.err
    assert json.loads(imported.out)["imported"] == 1
    again = vhc("--home", str(other), "--json", "ledger", "import", "--trades", "-",
                input=exported.out)  # fmt: skip
    assert json.loads(again.out)["duplicates"] == 1
    digest = vhc(*h, "ledger", "digest", "--output", "-")
    assert digest.code == 0 and isinstance(json.loads(digest.out), dict)
    assert not Path("-").exists()


def test_fresh_workspace_reconciles_clean(ws: Path) -> None:
    run = vhc("--home", str(ws), "--json", "reconcile", "--date", "today")
    assert run.code == 0, run.out + run.err
    assert json.loads(run.out)["accounts"]["paper"]["clean"] is True


def test_one_broken_account_does_not_stop_the_others(
    ws: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    monkeypatch.delenv("KRAKEN_API_KEY", raising=False)
    monkeypatch.delenv("KRAKEN_API_SECRET", raising=False)
    path = ws / "config" / "trading_config.yaml"
    data = yaml.safe_load(path.read_text())
    data["exchanges"]["kraken"] = {"id": "kraken", "secrets": "env", "enabled": True}
    path.write_text(yaml.safe_dump(data))
    run = vhc("--home", str(ws), "balances")
    assert run.code == 5 and "paper\tUSD" in run.out and "kraken" in run.err
    doc = json.loads(vhc("--home", str(ws), "--json", "balances").out)
    assert doc["balances"]["paper"]["USD"]["total"] == "100000"
    assert "KRAKEN_API_KEY" in doc["errors"]["kraken"] and doc["error"]["exit_code"] == 5
    rec = vhc("--home", str(ws), "--json", "reconcile", "--date", "today")
    assert rec.code == 5
    accounts = json.loads(rec.out)["accounts"]
    assert accounts["paper"]["clean"] and accounts["kraken"]["error"]
    findings = (ws / "reports").glob("reconciliation_*_findings.csv")
    assert "exchange_unreadable" in next(findings).read_text()


def test_cancelling_a_filled_order_is_exit_1_with_its_final_state(ws: Path) -> None:
    h = ("--home", str(ws))
    filled = json.loads(vhc(*h, "--json", "trade", "buy", "SOL/USD", "1").out)["order"]
    run = vhc(*h, "--json", "trade", "cancel", filled["order_id"])
    assert run.code == 1, run.err  # not 5: nothing is wrong with the exchange
    error = json.loads(run.out)["error"]
    assert error["order"]["status"] == "filled" and "already filled" in error["message"]
    resting = vhc(
        *h, "--json", "trade", "buy", "BTC/USD", "0.001", "--type", "limit", "--price", "1000"
    )
    order_id = json.loads(resting.out)["order"]["order_id"]
    first, second = (vhc(*h, "--json", "trade", "cancel", order_id) for _ in range(2))
    assert first.code == second.code == 0  # cancelling twice: the same answer
    assert json.loads(first.out)["status"] == json.loads(second.out)["status"] == "canceled"


def test_totp_setup_without_a_keyring_is_exit_2_with_the_fix(ws: Path) -> None:
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        run = vhc("--home", str(ws), "--json", "totp", "setup", "--approver", "bob")
    finally:
        keyring.set_keyring(previous)
    assert run.code == 2, run.err
    error = json.loads(run.out)["error"]
    assert "no OS keyring" in error["message"] and "--backend vault|aws" in error["message"]


def _all_paths() -> list[list[str]]:
    import typer.main

    from ccxtkit.cli.app import app

    paths: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        paths.append(path)
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_help_speaks_to_users() -> None:
    for path in _all_paths():
        run = vhc(*path, "--help")
        assert run.code == 0, path
        text = run.out
        assert not re.search(r"<(str|int|float|path)[^>]*>", text), (path, text)
        assert "{" not in text.split("\n", 1)[0], (path, text)  # usage: SYMBOL, not {symbol}
        assert "DESIGN.md" not in text, path  # users of the package have docs/, not DESIGN.md
        commands = text.split("Commands:", 1)[1] if "Commands:" in text else ""
        assert "..." not in commands.replace("COMMAND [ARGS]...", ""), (path, commands)
        for line in text.splitlines():  # a default is said once
            assert not ("(default" in line and "[default:" in line), (path, line)


def test_a_group_alone_prints_its_help_and_exits_0() -> None:
    run = vhc("ledger")
    assert run.code == 0 and "Commands:" in run.out and "verify" in run.out and run.err == ""


def test_doctor_wants_an_approver_and_a_config_that_enables_an_account(ws: Path) -> None:
    doc = json.loads(vhc("--home", str(ws), "--json", "doctor").out)
    approvers = [c for c in doc["checks"] if c["area"] == "approvers"]
    assert approvers[0]["status"] == "warn" and "vhc totp setup" in approvers[0]["detail"]
    (ws / "config" / "trading_config.yaml").write_text("{}\n")
    run = vhc("--home", str(ws), "--json", "doctor")
    assert run.code == 2
    config = json.loads(run.out)["checks"][0]
    assert config["area"] == "config" and config["status"] == "fail"


def test_prices_fetch_is_incremental(ws: Path) -> None:
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    d1, d2 = (today - timedelta(days=3)).isoformat(), (today - timedelta(days=2)).isoformat()
    h = ("--home", str(ws), "--json", "prices", "fetch", "--symbol", "BTC/USD")
    first = json.loads(vhc(*h, "--start", d1, "--end", d1).out)
    assert first["fetched"] == first["recorded"] == 24
    again = json.loads(vhc(*h, "--start", d1, "--end", d1).out)
    assert again["fetched"] == 0  # nothing asked of the exchange twice
    longer = json.loads(vhc(*h, "--start", d1, "--end", d2).out)
    assert longer["fetched"] == longer["recorded"] == 24  # only the new day


def test_tables_show_the_workspace_timezone_and_name_it(ws: Path) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    path = ws / "config" / "trading_config.yaml"
    path.write_text(path.read_text().replace("timezone: UTC", "timezone: Asia/Tokyo"))
    h = ("--home", str(ws))
    order = json.loads(vhc(*h, "--json", "trade", "buy", "SOL/USD", "1").out)["order"]
    run = vhc(*h, "trade", "orders", "--all")
    header, row = run.out.splitlines()[:2]
    assert header.split("\t")[0] == "time (Asia/Tokyo)"
    placed = datetime.fromisoformat(order["timestamp"]).astimezone(ZoneInfo("Asia/Tokyo"))
    assert row.split("\t")[0] == f"{placed:%Y-%m-%d %H:%M}"
    assert "requested (Asia/Tokyo)" in vhc(*h, "withdraw", "list").out
    assert "time (Asia/Tokyo)" in vhc(*h, "ledger", "log").out


def test_a_document_that_carries_its_exit_code_gets_no_error_object(ws: Path) -> None:
    assert vhc("--home", str(ws), "secrets", "check", "nope").code != 0  # leaves a note behind
    run = vhc("--home", str(ws), "--json", "doctor")
    assert run.code == 1  # a warning: no approver yet
    doc = json.loads(run.out)
    assert doc["exit_code"] == 1 and "error" not in doc
