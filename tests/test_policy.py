"""Policy is recorded in the ledger: a loosening edit, a second config or new endpoints need a code."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyotp
import pytest
import yaml

from ccxtkit.cli.app import main
from ccxtkit.workspace import init_workspace, write_private

CONFIG = Path("config") / "trading_config.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `vhc ARGS` in-process through main(): exit code, stdout, stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("VHC_TOTP_SECRET", "VHC_TOTP_ADMIN", "VHC_CONFIG", "VHC_HOME"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "ws"
    init_workspace(path)
    edit(path, lambda c: c.setdefault("secrets", {}).update({"backend": "env"}))
    return path


def edit(home: Path, change: object, path: Path | None = None) -> Path:
    """Apply `change(config_dict)` to the workspace's config (or write it to `path`)."""
    data = yaml.safe_load((home / CONFIG).read_text(encoding="utf-8"))
    change(data)  # type: ignore[operator]
    target = path or home / CONFIG
    write_private(target, yaml.safe_dump(data))
    return target


def enrol(home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Enrol `admin` through the CLI with the env backend; returns the TOTP secret."""
    code, out, err = run(capsys, "--home", str(home), "--json", "totp", "setup", "--backend", "env")
    assert code == 0, err
    exports = dict(line.split("=", 1) for line in json.loads(out)["export"])
    for name, value in exports.items():  # VHC_TOTP_SECRET and VHC_CONTROL_KEY
        monkeypatch.setenv(name, value)
    return exports["VHC_TOTP_SECRET"]


def policy_events(home: Path) -> list[dict[str, object]]:
    return policy_events_at(home / "ledger" / "vhc.duckdb")


def policy_events_at(path: Path) -> list[dict[str, object]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT details FROM control_events WHERE kind = 'policy.recorded' ORDER BY seq"
        ).fetchall()
    finally:
        con.close()
    return [json.loads(r[0]) for r in rows]


def order_count(home: Path) -> int:
    con = duckdb.connect(str(home / "ledger" / "vhc.duckdb"), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM order_events").fetchall()[0][0])
    finally:
        con.close()


def buy(
    capsys: pytest.CaptureFixture[str], home: Path, *extra: str, pre: tuple[str, ...] = ()
) -> tuple[int, str, str]:
    return run(capsys, "--home", str(home), *pre, "trade", "buy", "BTC/USD", "0.01", *extra)


def raise_order_limit(c: dict) -> None:  # type: ignore[type-arg]
    c["risk"]["max_order_value"] = 20000


def test_init_records_the_first_policy(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = policy_events(home)
    assert [e["how"] for e in events] == ["initial"]
    assert events[0]["policy"]["risk"]["max_order_value"] == "10000"  # type: ignore[index]
    code, out, err = run(capsys, "--home", str(home), "--json", "config", "diff")
    assert code == 0, err
    assert json.loads(out)["same"] is True


def test_loosening_is_refused_until_applied_with_a_code(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = enrol(home, capsys, monkeypatch)
    edit(home, raise_order_limit)
    code, _, err = buy(capsys, home)
    assert code == 8
    assert "risk.max_order_value" in err and "vhc config apply --auth-code" in err
    assert order_count(home) == 0
    # diff shows the change key by key, and that it loosens.
    code, out, err = run(capsys, "--home", str(home), "config", "diff")
    assert code == 0, err
    assert "risk.max_order_value" in out and "10000" in out and "20000" in out
    assert "loosen" in out
    code, out, _ = run(capsys, "--home", str(home), "--json", "config", "diff")
    doc = json.loads(out)
    assert doc["needs_code"] is True and doc["same"] is False
    assert doc["changes"] == [
        {
            "key": "risk.max_order_value",
            "old": "10000",
            "new": "20000",
            "direction": "loosen",
            "reason": "raised",
        }
    ]
    # apply without a code, or with a wrong one, is refused; nothing is recorded.
    code, _, err = run(capsys, "--home", str(home), "config", "apply")
    assert code == 8 and "--auth-code" in err
    good = pyotp.TOTP(secret).now()
    wrong = f"{(int(good) + 1) % 1000000:06d}"
    code, _, err = run(capsys, "--home", str(home), "config", "apply", "--auth-code", wrong)
    assert code == 8
    assert buy(capsys, home)[0] == 8
    # An env var naming another approver is no way round it.
    monkeypatch.setenv("VHC_TOTP_OPS2", pyotp.random_base32())
    code, _, err = run(
        capsys,
        "--home", str(home), "config", "apply", "--auth-code", good, "--approver", "ops2",
    )  # fmt: skip
    assert code == 8
    # With the approver's code it is recorded, and trading goes on under the new limit.
    code, out, err = run(capsys, "--home", str(home), "config", "apply", "--auth-code", good)
    assert code == 0, err
    assert "recorded" in out
    code, _, err = buy(capsys, home)
    assert code == 0, err
    last = policy_events(home)[-1]
    assert last["how"] == "approved" and last["approver"] == "admin"
    assert last["changes"][0]["key"] == "risk.max_order_value"  # type: ignore[index]
    assert good not in json.dumps(policy_events(home))


def test_tightening_is_recorded_automatically(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    enrol(home, capsys, monkeypatch)

    def tighten(c: dict) -> None:  # type: ignore[type-arg]
        c["risk"]["max_order_value"] = 5000
        c["withdrawals"]["new_address_delay_hours"] = 48

    edit(home, tighten)
    code, _, err = buy(capsys, home)
    assert code == 0, err
    assert "recorded automatically" in err and "risk.max_order_value" in err
    last = policy_events(home)[-1]
    assert last["how"] == "tightened"
    assert {c["key"] for c in last["changes"]} == {  # type: ignore[attr-defined]
        "risk.max_order_value",
        "withdrawals.new_address_delay_hours",
    }
    assert run(capsys, "--home", str(home), "--json", "config", "diff")[1].count('"same": true')


def test_a_second_config_on_the_real_ledger_is_refused(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    enrol(home, capsys, monkeypatch)
    loose = edit(home, raise_order_limit, path=tmp_path / "loose.yaml")
    code, _, err = buy(capsys, home, pre=("--config", str(loose)))
    assert code == 8 and "risk.max_order_value" in err
    monkeypatch.setenv("VHC_HOME", str(home))
    monkeypatch.setenv("VHC_CONFIG", str(loose))
    code, _, err = run(capsys, "trade", "buy", "BTC/USD", "0.01")
    assert code == 8
    assert order_count(home) == 0
    assert [e["how"] for e in policy_events(home)] == ["initial"]

    # A config that also moves the ledger to a fresh file finds no record there: refused too.
    def elsewhere(c: dict) -> None:  # type: ignore[type-arg]
        raise_order_limit(c)
        c["ledger"] = {"path": str(tmp_path / "fresh.duckdb")}

    fresh = edit(home, elsewhere, path=tmp_path / "fresh.yaml")
    monkeypatch.setenv("VHC_CONFIG", str(fresh))
    code, _, err = run(capsys, "trade", "buy", "BTC/USD", "0.01")
    assert code == 8 and "has no policy on record" in err
    code, _, err = run(capsys, "config", "apply")
    assert code == 8 and "has no policy on record" in err
    assert not (tmp_path / "fresh.duckdb").exists() or not policy_events_at(
        tmp_path / "fresh.duckdb"
    )


def test_new_endpoints_or_a_new_account_are_refused_but_halting_still_works(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def kraken(c: dict) -> None:  # type: ignore[type-arg]
        urls = {"api": {"public": "http://127.0.0.1:9/", "private": "http://127.0.0.1:9/"}}
        c["exchanges"]["kraken"] = {"secrets": "env", "enabled": False, "ccxt": {"urls": urls}}

    edit(home, kraken)
    assert buy(capsys, home, "--exchange", "paper")[0] == 0  # before enrolment: recorded
    enrol(home, capsys, monkeypatch)

    def redirect(c: dict) -> None:  # type: ignore[type-arg]
        c["exchanges"]["kraken"]["ccxt"]["urls"]["api"]["private"] = "http://evil.invalid/"

    edit(home, redirect)
    code, _, err = buy(capsys, home, "--exchange", "paper")
    assert code == 8 and "exchanges.kraken.ccxt.urls.api.private" in err
    code, out, _ = run(capsys, "--home", str(home), "--json", "config", "diff")
    assert json.loads(out)["changes"][0]["direction"] == "loosen"
    # Reconcile and balances would talk to the exchanges under the new policy: refused too.
    assert run(capsys, "--home", str(home), "balances")[0] == 8
    # The kill switch never waits on the policy: activation sweeps and succeeds.
    code, _, err = run(capsys, "--home", str(home), "kill-switch", "--activate", "--reason", "t")
    assert code == 0, err

    def another(c: dict) -> None:  # type: ignore[type-arg]
        c["exchanges"]["kraken"]["ccxt"]["urls"]["api"]["private"] = "http://127.0.0.1:9/"
        c["exchanges"]["paper2"] = {"id": "paper"}

    edit(home, another)
    code, _, err = run(capsys, "--home", str(home), "balances")
    assert code == 8 and "exchanges.paper2" in err


def test_loosened_triggers_and_withdrawals_are_refused(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    enrol(home, capsys, monkeypatch)

    def no_switch(c: dict) -> None:  # type: ignore[type-arg]
        c["risk"]["kill_switch_enabled"] = False
        c["withdrawals"]["auto_approve_under"] = 1000000

    edit(home, no_switch)
    code, _, err = run(capsys, "--home", str(home), "kill-switch", "--check")
    assert code == 8 and "risk.kill_switch_enabled" in err
    code, _, err = run(
        capsys, "--home", str(home), "withdraw", "request", "paper", "USD", "10", "0xabc"
    )
    assert code == 8 and "withdrawals.auto_approve_under" in err


def test_before_enrolment_changes_are_recorded_with_a_warning(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(home, raise_order_limit)
    code, _, err = buy(capsys, home)
    assert code == 0, err
    assert "WITHOUT a code" in err and "vhc totp setup" in err
    last = policy_events(home)[-1]
    assert last["how"] == "unenrolled" and last["policy"]["risk"]["max_order_value"] == "20000"  # type: ignore[index]
    # apply says the same when used directly.
    edit(home, lambda c: c["risk"].update({"max_daily_volume": 90000}))
    code, out, err = run(capsys, "--home", str(home), "config", "apply")
    assert code == 0 and "WITHOUT a code" in err


def test_an_edited_policy_record_fails_closed(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    enrol(home, capsys, monkeypatch)
    edit(home, raise_order_limit)
    con = duckdb.connect(str(home / "ledger" / "vhc.duckdb"))
    try:
        # An attacker rewrites the recorded policy to match the loosened file.
        con.execute(
            "UPDATE control_events SET details = replace(details, "
            '\'"max_order_value": "10000"\', \'"max_order_value": "20000"\') '
            "WHERE kind = 'policy.recorded'"
        )
    finally:
        con.close()
    code, _, err = buy(capsys, home)
    assert code == 6 and "recorded policy" in err


def test_credentials_in_the_ccxt_passthrough_never_reach_the_ledger(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(home, lambda c: c["exchanges"]["paper"].update({"ccxt": {"secret": "hunter2hunter2"}}))
    code, out, err = buy(capsys, home)
    assert code == 2 and "exchanges.paper.ccxt.secret" in err
    assert "hunter2" not in out + err
    assert "hunter2" not in json.dumps(policy_events(home))
    assert os.stat(home / CONFIG).st_mode & 0o077 == 0
