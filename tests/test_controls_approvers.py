"""Issue 12, findings 1, 2, 5 and 6, tried as an attacker would, through the real `vhc` CLI.

Setup steps run through the core with times in the past (each 2FA code is single-use, so the
setup must not spend the current step); every attack runs `vhc` with the current code.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml

from ccxtkit.auth import totp
from ccxtkit.auth.ledger_id import ledger_id
from ccxtkit.exchanges.factory import open_exchange
from ccxtkit.ledger.store import open_ledger
from ccxtkit.risk import killswitch
from ccxtkit.withdrawals import allowlist
from ccxtkit.workspace import Workspace, write_private
from tests.test_killswitch import ledger_holder, run_cli  # noqa: F401 - ledger_holder: fixture

ADDR = "0x1111111111111111111111111111111111111111"
OTHER = "0x2222222222222222222222222222222222222222"
XRP = "rEXAMPLEexampleEXAMPLEexample1234"
PAST = datetime.now(UTC) - timedelta(days=3)  # setup time: cool-offs are over by now
ENV_VARS = ("VHC_TOTP_SECRET", "VHC_TOTP_OPS2", "VHC_TOTP_ALICE", "VHC_TOTP_MALLORY")


def write_ws(home: Path, backend: str = "env", **extra: Any) -> Workspace:
    """A paper workspace with USDC; the withdrawal policy sends under 100 USD without a person."""
    cfg = {
        "version": "1.0",
        "exchanges": {
            "paper": {
                "id": "paper",
                "secrets": "none",
                "paper": {"starting_balances": {"USD": 10000, "USDC": 50000}},
            }
        },
        "secrets": {"backend": backend},
        "withdrawals": {
            "auto_approve_under": 100,
            "daily_auto_approve_cap_usd": 1000,
            "require_two_approvals_over": 1000,
            "daily_limit_usd": 5000,
            "new_address_delay_hours": 24,
        },
        **extra,
    }
    write_private(home / "config" / "trading_config.yaml", yaml.safe_dump(cfg))
    return Workspace.locate(str(home))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*ENV_VARS, "VHC_CONTROL_KEY", "VHC_HOME", "VHC_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def enrol(ws: Workspace, mp: pytest.MonkeyPatch, who: str = "admin", **kw: Any) -> str:
    """Enrol through the core at a past time and export what the user is told to export."""
    result = totp.enrol(ws, who, now=kw.pop("now", PAST), **kw)
    for name, value in result.exports.items():
        mp.setenv(name, value)
    assert result.secret is not None
    return result.secret


def at(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def wrong(secret: str) -> str:
    return f"{(int(pyotp.TOTP(secret).now()) + 500000) % 1000000:06d}"


def entries(ws: Workspace) -> list[dict[str, Any]]:
    return [
        {"address": r.address, "state": r.state, "tag": r.tag} for r in allowlist.list_entries(ws)
    ]


def paper_withdrawals(ws: Workspace) -> list[Any]:
    return open_exchange(ws, "paper").fetch_withdrawals(PAST - timedelta(days=1))


# -- finding 1: no environment fallback -------------------------------------------------------
def test_env_secret_of_a_never_enrolled_approver_opens_nothing(tmp_path, clean_env, capsys):
    ws = write_ws(tmp_path)
    enrol(ws, clean_env, backend="env")
    attacker = pyotp.random_base32()
    clean_env.setenv("VHC_TOTP_OPS2", attacker)
    killswitch.activate(ws, "drill")
    deactivate = ["kill-switch", "--deactivate", "--approver", "ops2", "--auth-code"]
    code, _, err = run_cli(ws, [*deactivate, pyotp.TOTP(attacker).now()], capsys)
    assert code == 8 and "'ops2' is not enrolled" in err
    assert killswitch.is_active(ws)
    add = ["withdraw", "allowlist", "add", "USDC", OTHER, "--approver", "ops2", "--auth-code"]
    code, _, err = run_cli(ws, [*add, pyotp.TOTP(attacker).now()], capsys)
    assert code == 8 and "not enrolled" in err
    assert entries(ws) == []


def test_a_failing_backend_never_falls_back_to_the_environment(
    tmp_path, clean_env, file_keyring, capsys
):
    import keyring
    from keyring.backends.fail import Keyring as FailKeyring

    ws = write_ws(tmp_path, backend="keyring")
    enrol(ws, clean_env)
    killswitch.activate(ws, "drill")
    attacker = pyotp.random_base32()
    clean_env.setenv("VHC_TOTP_SECRET", attacker)  # the old fallback's variable
    keyring.set_keyring(FailKeyring())  # the keyring is locked / gone
    args = ["kill-switch", "--deactivate", "--auth-code", pyotp.TOTP(attacker).now()]
    code, _, err = run_cli(ws, args, capsys)
    assert code == 8 and "keyring" in err
    assert killswitch.is_active(ws)


# -- finding 2: enrolment in the ledger, ledger id in secret names ----------------------------
def test_a_second_workspace_neither_overwrites_nor_lends_its_code(
    tmp_path, clean_env, file_keyring, capsys
):
    real = write_ws(tmp_path / "real", backend="keyring")
    admin = enrol(real, clean_env)
    scratch = write_ws(tmp_path / "scratch", backend="keyring")
    code, out, err = run_cli(scratch, ["--json", "totp", "setup", "--no-qr"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    scratch_secret = pyotp.parse_uri(doc["uri"]).secret
    with open_ledger(real.ledger_path) as a, open_ledger(scratch.ledger_path) as b:
        real_id, scratch_id = ledger_id(a), ledger_id(b)
    assert real_id and scratch_id and real_id != scratch_id
    assert scratch_id in doc["location"]
    killswitch.activate(real, "drill")
    deactivate = ["kill-switch", "--deactivate", "--auth-code"]
    code, _, err = run_cli(real, [*deactivate, pyotp.TOTP(scratch_secret).now()], capsys)
    assert code == 8 and "not valid" in err and killswitch.is_active(real)
    # The real admin's secret was not overwritten: its current code still works.
    code, _, err = run_cli(real, [*deactivate, pyotp.TOTP(admin).now()], capsys)
    assert code == 0, err
    assert not killswitch.is_active(real)


def test_deleting_state_neither_re_enrols_nor_replays(tmp_path, clean_env, capsys):
    ws = write_ws(tmp_path)
    admin = enrol(ws, clean_env, backend="env")
    allowlist.add_entry(ws, "USDC", ADDR, None, None, at(admin, PAST), now=PAST)
    shutil.rmtree(ws.state_dir)
    code, _, err = run_cli(ws, ["totp", "setup", "--backend", "env", "--no-qr"], capsys)
    assert code == 2 and "already enrolled" in err
    code, _, err = run_cli(ws, ["totp", "setup", "--approver", "mallory", "--no-qr"], capsys)
    assert code == 8 and "needs --auth-code" in err
    assert set(totp.enrolled_approvers(ws)) == {"admin"}
    # A code is spent once, and deleting state/ does not give it back.
    now_code = pyotp.TOTP(admin).now()
    add = ["withdraw", "allowlist", "add", "USDC", OTHER, "--auth-code", now_code]
    code, _, err = run_cli(ws, add, capsys)
    assert code == 0, err
    shutil.rmtree(ws.state_dir)
    add = ["withdraw", "allowlist", "add", "USDC", XRP, "--auth-code", now_code]
    code, _, err = run_cli(ws, add, capsys)
    assert code == 8 and "already used" in err
    assert {e["address"] for e in entries(ws)} == {ADDR, OTHER}


def test_a_lockout_survives_deleting_state(tmp_path, clean_env, capsys):
    ws = write_ws(tmp_path)
    admin = enrol(ws, clean_env, backend="env")
    killswitch.activate(ws, "drill")
    for _ in range(5):
        code, _, _ = run_cli(
            ws, ["kill-switch", "--deactivate", "--auth-code", wrong(admin)], capsys
        )
        assert code == 8
    shutil.rmtree(ws.state_dir)
    killswitch.activate(ws, "drill again")  # the switch file went with state/: set it again
    args = ["kill-switch", "--deactivate", "--auth-code", pyotp.TOTP(admin).now()]
    code, _, err = run_cli(ws, args, capsys)
    assert code == 8 and "locked out" in err
    assert killswitch.is_active(ws)


def test_deactivation_under_a_held_ledger_fails_closed_and_keeps_the_code(
    tmp_path,
    clean_env,
    ledger_holder,  # noqa: F811 - the fixture imported above
    capsys,
):
    ws = write_ws(tmp_path, ledger={"lock_wait_seconds": 1})
    admin = enrol(ws, clean_env, backend="env")
    holder = ledger_holder(ws.ledger_path)
    started = time.monotonic()
    code, out, err = run_cli(ws, ["kill-switch", "--activate", "--reason", "x"], capsys)
    assert code == 0 and time.monotonic() - started < 2.0, err  # activation never waits
    now_code = pyotp.TOTP(admin).now()
    code, _, err = run_cli(ws, ["kill-switch", "--deactivate", "--auth-code", now_code], capsys)
    assert code == 7 and "not used up" in err
    assert killswitch.is_active(ws)
    holder.stdin.close()
    holder.wait(timeout=10)
    code, _, err = run_cli(ws, ["kill-switch", "--deactivate", "--auth-code", now_code], capsys)
    assert code == 0, err
    assert not killswitch.is_active(ws)


def test_a_forged_enrolment_row_is_refused(tmp_path, clean_env, capsys):
    ws = write_ws(tmp_path)
    enrol(ws, clean_env, backend="env")
    mallory = pyotp.random_base32()
    clean_env.setenv("VHC_TOTP_MALLORY", mallory)
    with open_ledger(ws.ledger_path) as ledger:  # a row with a correct chain hash, no seal
        details = {"approver": "mallory", "backend": "env", "location": "env", "mac": "00" * 32}
        ledger.record_event("totp.enrolled", details, subject="mallory")
    killswitch.activate(ws, "drill")
    args = ["kill-switch", "--deactivate", "--approver", "mallory", "--auth-code"]
    code, _, err = run_cli(ws, [*args, pyotp.TOTP(mallory).now()], capsys)
    assert code == 6 and "no valid seal" in err
    assert killswitch.is_active(ws)


# -- finding 5: MACs on allowlist entries and approvals ---------------------------------------
def test_a_forged_allowlist_row_is_refused_before_use(tmp_path, clean_env, capsys):
    ws = write_ws(tmp_path)
    admin = enrol(ws, clean_env, backend="env")
    allowlist.add_entry(ws, "USDC", ADDR, None, None, at(admin, PAST), now=PAST)
    with open_ledger(ws.ledger_path) as ledger:
        real = ledger.rows("SELECT details FROM control_events WHERE kind = 'allowlist.added'")
        mac = json.loads(real[0]["details"])["mac"]  # even a genuine MAC, copied, is no good
        forged = {"asset": "USDC", "address": OTHER, "network": None, "tag": None,
                  "label": None, "approver": "admin", "step": 1, "mac": mac}  # fmt: skip
        ledger.record_event("allowlist.added", forged, subject=f"USDC:{OTHER}", timestamp=PAST)
    code, _, err = run_cli(ws, ["withdraw", "request", "paper", "USDC", "50", OTHER], capsys)
    assert code == 6 and "no valid seal" in err
    assert paper_withdrawals(ws) == []
    listed = {e["address"]: e["state"] for e in entries(ws)}
    assert listed == {ADDR: "usable", OTHER: "forged"}
    # Removing the forged row (with a code) restores service.
    rm = ["withdraw", "allowlist", "remove", "USDC", OTHER, "--auth-code"]
    code, _, err = run_cli(ws, [*rm, pyotp.TOTP(admin).now()], capsys)
    assert code == 0, err
    code, _, err = run_cli(ws, ["withdraw", "request", "paper", "USDC", "50", ADDR], capsys)
    assert code == 0, err
    assert len(paper_withdrawals(ws)) == 1


def test_a_forged_approval_is_caught_right_before_the_send(tmp_path, clean_env, capsys):
    ws = write_ws(tmp_path)
    admin = enrol(ws, clean_env, backend="env")
    enrol(ws, clean_env, "alice", backend="env", replace_code=at(admin, PAST), vouched_by="admin")
    later = PAST + timedelta(minutes=1)
    allowlist.add_entry(ws, "USDC", ADDR, None, None, at(admin, later), now=later)
    code, out, err = run_cli(
        ws, ["--json", "withdraw", "request", "paper", "USDC", "2000", ADDR], capsys
    )
    assert code == 0, err
    rid = json.loads(out)["id"]
    with open_ledger(ws.ledger_path) as ledger:  # alice's approval, without her code
        forged = {"approver": "alice", "usd": "2000", "needed": 2, "step": 1, "mac": "ab" * 32}
        ledger.record_event("withdraw.approval", forged, subject=rid)
    args = ["withdraw-approve", rid, "--auth-code", pyotp.TOTP(admin).now()]
    code, _, err = run_cli(ws, args, capsys)
    assert code == 6 and "approval of withdrawal" in err and "no valid seal" in err
    assert paper_withdrawals(ws) == []


# -- finding 6: destination tags ---------------------------------------------------------------
def test_a_request_tag_must_equal_its_entry_tag(tmp_path, clean_env, capsys):
    ws = write_ws(tmp_path)
    admin = enrol(ws, clean_env, backend="env")
    step = PAST + timedelta(minutes=1)
    allowlist.add_entry(ws, "USDC", XRP, None, "desk", at(admin, step), now=step, tag="111")
    step += timedelta(minutes=1)
    allowlist.add_entry(ws, "USDC", ADDR, None, None, at(admin, step), now=step)
    request = ["withdraw", "request", "paper", "USDC", "50"]
    code, _, err = run_cli(ws, [*request, XRP, "--tag", "999"], capsys)
    assert code == 8 and "tag '999'" in err and "'111'" in err
    code, _, err = run_cli(ws, [*request, XRP], capsys)
    assert code == 8 and "no tag" in err
    code, _, err = run_cli(ws, [*request, ADDR, "--tag", "5"], capsys)
    assert code == 8 and "tag '5'" in err
    assert paper_withdrawals(ws) == []
    code, _, err = run_cli(ws, [*request, XRP, "--tag", "111"], capsys)
    assert code == 0, err
    sent = paper_withdrawals(ws)
    assert len(sent) == 1 and sent[0].tag == "111"
    code, out, _ = run_cli(ws, ["--json", "withdraw", "list", "--status", "all"], capsys)
    assert code == 0
    assert [(r["tag"], r["label"]) for r in json.loads(out)] == [("111", "desk")]
    code, out, _ = run_cli(ws, ["--json", "withdraw", "allowlist", "list"], capsys)
    listed = {(r["address"], r["tag"], r["label"]) for r in json.loads(out)}
    assert listed == {(XRP, "111", "desk"), (ADDR, None, None)}


def test_cli_allowlist_add_records_the_tag_sealed(tmp_path, clean_env, capsys):
    ws = write_ws(tmp_path)
    admin = enrol(ws, clean_env, backend="env")
    args = ["--json", "withdraw", "allowlist", "add", "USDC", XRP, "--tag", "42", "--label"]
    code, out, err = run_cli(ws, [*args, "desk", "--auth-code", pyotp.TOTP(admin).now()], capsys)
    assert code == 0, err
    assert json.loads(out)["tag"] == "42"
    with open_ledger(ws.ledger_path) as ledger:
        row = ledger.rows("SELECT details FROM control_events WHERE kind = 'allowlist.added'")
    details = json.loads(row[0]["details"])
    assert details["tag"] == "42" and len(details["mac"]) == 64


def test_deleting_the_enrolment_rows_does_not_reopen_enrolment(
    tmp_path, clean_env, file_keyring, capsys
):
    import duckdb

    ws = write_ws(tmp_path, backend="keyring")
    enrol(ws, clean_env)
    setup = ["totp", "setup", "--no-qr"]
    con = duckdb.connect(str(ws.ledger_path))
    con.execute("DELETE FROM control_events WHERE kind = 'totp.enrolled'")
    con.close()
    code, _, err = run_cli(ws, setup, capsys)
    assert code == 6 and "enrolment records were removed" in err
    con = duckdb.connect(str(ws.ledger_path))
    con.execute("DELETE FROM control_events WHERE kind = 'control_key.created'")
    con.close()
    code, _, err = run_cli(ws, setup, capsys)  # the key is still in the keyring: found out
    assert code == 6 and "already holds this workspace's control key" in err


def test_a_forged_auto_approval_never_leaves(tmp_path, clean_env, capsys):
    ws = write_ws(tmp_path)
    admin = enrol(ws, clean_env, backend="env")
    allowlist.add_entry(ws, "USDC", ADDR, None, None, at(admin, PAST), now=PAST)
    rid = "wr-f0f0f0f0f0"
    request = {
        "exchange": "paper", "asset": "USDC", "amount": "4000", "address": ADDR,
        "network": None, "tag": None, "label": None, "usd": "40", "requested_by": "x",
        "approvals_needed": 0, "time_lock_until": None, "policy": "auto",
        "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }  # fmt: skip
    with open_ledger(ws.ledger_path) as ledger:
        ledger.record_event("withdraw.request", request, subject=rid)
        ledger.record_event("withdraw.approved", {"auto": True, "via": "auto"}, subject=rid)
    code, _, _ = run_cli(ws, ["withdraw", "recover"], capsys)
    assert code != 0
    assert paper_withdrawals(ws) == []


def test_vhc_secrets_set_cannot_overwrite_a_2fa_secret(tmp_path, clean_env, file_keyring, capsys):
    ws = write_ws(tmp_path, backend="keyring")
    enrol(ws, clean_env)
    with open_ledger(ws.ledger_path) as ledger:
        lid = ledger_id(ledger)
    for name in (f"totp_{lid}_admin", f"control_{lid}"):
        code, _, err = run_cli(ws, ["secrets", "set", name, "--backend", "keyring"], capsys)
        assert code == 2 and "vhc totp setup" in err


def test_moving_the_control_key_record_to_the_environment_is_found(
    tmp_path, clean_env, file_keyring, capsys
):
    import duckdb

    from ccxtkit.auth.mac import check_value

    ws = write_ws(tmp_path, backend="keyring")
    enrol(ws, clean_env)
    mine = bytes(range(32))
    clean_env.setenv("VHC_CONTROL_KEY", mine.hex())
    con = duckdb.connect(str(ws.ledger_path))
    row = con.execute(
        "SELECT seq, details FROM control_events WHERE kind = 'control_key.created'"
    ).fetchone()
    moved = {**json.loads(row[1]), "backend": "env", "check": check_value(mine)}
    con.execute("UPDATE control_events SET details = ? WHERE seq = ?", [json.dumps(moved), row[0]])
    con.close()
    killswitch.activate(ws, "drill")
    deactivate = ["kill-switch", "--deactivate", "--auth-code", "123456"]
    code, _, err = run_cli(ws, deactivate, capsys)
    assert code == 6 and "was edited" in err  # an in-place edit: the row's hash gives it away
    rechain(ws.ledger_path, int(row[0]))  # now re-hash it and every later row, consistently
    code, _, err = run_cli(ws, deactivate, capsys)
    assert code == 6 and "record was rewritten" in err  # the keyring still holds the real key


def rechain(path: Path, start: int) -> None:
    """Recompute prev_hash/row_hash from row `start` on, as an attacker with the file would."""
    import duckdb

    from ccxtkit.ledger.chain import canonical_select, chain_union_sql

    con = duckdb.connect(str(path))
    rows = con.execute(
        f"SELECT seq, tbl FROM ({chain_union_sql()}) WHERE seq >= ? ORDER BY seq", [start]
    ).fetchall()
    prev = con.execute(
        f"SELECT row_hash FROM ({chain_union_sql()}) WHERE seq = ?", [start - 1]
    ).fetchone()[0]
    for seq, table in rows:
        con.execute(f'UPDATE "{table}" SET prev_hash = ? WHERE seq = ?', [prev, seq])
        prev = con.execute(
            f"SELECT sha256(canon) FROM ({canonical_select(table)}) WHERE seq = ?", [seq]
        ).fetchone()[0]
        con.execute(f'UPDATE "{table}" SET row_hash = ? WHERE seq = ?', [prev, seq])
    con.close()


def test_one_real_approval_plus_a_forged_approved_row_never_leaves(tmp_path, clean_env, capsys):
    """Two approvals are needed; one is real, and a row claims the request is approved."""
    ws = write_ws(tmp_path)
    admin = enrol(ws, clean_env, backend="env")
    allowlist.add_entry(ws, "USDC", ADDR, None, None, at(admin, PAST), now=PAST)
    request = ["--json", "withdraw", "request", "paper", "USDC", "2000", ADDR]
    code, out, err = run_cli(ws, request, capsys)
    assert code == 0, err
    rid = json.loads(out)["id"]
    approve = ["withdraw-approve", rid, "--auth-code", pyotp.TOTP(admin).now()]
    code, out, err = run_cli(ws, approve, capsys)
    assert code == 0 and "needs another approver" in out, err
    with open_ledger(ws.ledger_path) as ledger:
        forged = {"approvers": ["admin"], "via": "approvers"}
        ledger.record_event("withdraw.approved", forged, subject=rid)
    code, _, _ = run_cli(ws, ["withdraw", "recover"], capsys)
    assert code != 0
    assert paper_withdrawals(ws) == []


def test_removal_is_sealed_needs_a_code_and_never_removes_the_last(tmp_path, clean_env, capsys):
    ws = write_ws(tmp_path)
    admin = enrol(ws, clean_env, backend="env")
    enrol(ws, clean_env, "alice", backend="env", replace_code=at(admin, PAST), vouched_by="admin")
    rm = ["totp", "remove", "--approver", "alice", "--by", "admin", "--auth-code"]
    code, _, err = run_cli(ws, [*rm, wrong(admin)], capsys)
    assert code == 8 and set(totp.enrolled_approvers(ws)) == {"admin", "alice"}
    code, _, err = run_cli(ws, [*rm, pyotp.TOTP(admin).now()], capsys)
    assert code == 0, err
    assert set(totp.enrolled_approvers(ws)) == {"admin"}
    with open_ledger(ws.ledger_path) as ledger:
        row = ledger.rows("SELECT details FROM control_events WHERE kind = 'totp.removed'")
    assert len(json.loads(row[0]["details"])["mac"]) == 64
    last = ["totp", "remove", "--approver", "admin", "--auth-code", pyotp.TOTP(admin).now()]
    code, _, err = run_cli(ws, last, capsys)
    assert code == 2 and "only enrolled approver" in err
