"""TOTP 2FA: enrolment, one use per code, wrong codes locked out, and `--deactivate` behind it."""

import json
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from ccxtkit.auth import totp
from ccxtkit.errors import AuthorizationError
from ccxtkit.ledger.store import open_ledger
from ccxtkit.risk import killswitch
from tests.test_killswitch import make_workspace, run_cli

T0 = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
ENV_VARS = (
    "VHC_TOTP_SECRET",
    "VHC_TOTP_ADMIN",
    "VHC_TOTP_ALICE",
    "VHC_TOTP_BOB",
    "VHC_TOTP_CAROL",
    "VHC_CONTROL_KEY",
)


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A workspace with one quiet paper account; named secrets come from the environment."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return make_workspace(tmp_path, {"paper": {"id": "paper"}}, secrets_backend="env")


def enrol_env(ws, monkeypatch, approver="admin", code=None, by=None, now=None):
    """Enrol with the env backend and export the secret as the user is told to."""
    result = totp.enrol(ws, approver, backend="env", replace_code=code, vouched_by=by, now=now)
    assert result.stored_in == "env"
    for name, value in result.exports.items():
        monkeypatch.setenv(name, value)
    return result.secret


def code_at(secret, when):
    return pyotp.TOTP(secret).at(when)


def events(ws, prefix):
    with open_ledger(ws.ledger_path, wait_seconds=5) as ledger:
        return ledger.rows(
            "SELECT kind, subject, details FROM control_events WHERE kind LIKE ? ORDER BY seq",
            [prefix + "%"],
        )


def test_enrol_gives_an_otpauth_uri_and_codes_verify_once(ws, monkeypatch):
    result = totp.enrol(ws, "admin", backend="env")
    assert result.uri.startswith("otpauth://totp/") and f"secret={result.secret}" in result.uri
    assert set(result.exports) == {"VHC_TOTP_SECRET", "VHC_CONTROL_KEY"}
    for name, value in result.exports.items():
        monkeypatch.setenv(name, value)
    ok = totp.verify_code(ws, code_at(result.secret, T0), now=T0)
    assert ok.approver == "admin"
    with pytest.raises(AuthorizationError, match="already used"):
        totp.verify_code(ws, code_at(result.secret, T0), now=T0 + timedelta(seconds=5))
    # An older code still inside the clock window is refused once a newer one was accepted.
    later = T0 + timedelta(seconds=30)
    totp.verify_code(ws, code_at(result.secret, later), now=later)
    with pytest.raises(AuthorizationError, match="already used"):
        totp.verify_code(ws, code_at(result.secret, T0), now=later)
    # Nothing is kept in state/, and the audit trail never holds a code or the secret.
    assert not (ws.state_dir / "totp_state.json").exists()
    trail = events(ws, "totp.")
    assert [e["kind"] for e in trail] == ["totp.enrolled"] + ["totp.verified", "totp.failed"] * 2
    assert result.secret not in json.dumps(trail) and code_at(result.secret, T0) not in str(trail)


def test_wrong_codes_lock_out_for_five_minutes(ws, monkeypatch):
    secret = enrol_env(ws, monkeypatch)
    good = code_at(secret, T0)
    wrong = f"{(int(good) + 1) % 1000000:06d}"
    for i in range(5):
        with pytest.raises(AuthorizationError, match="not valid"):
            totp.verify_code(ws, wrong, now=T0 + timedelta(seconds=i))
    # The sixth attempt is refused even with the right code, and says when to retry.
    with pytest.raises(
        AuthorizationError, match=r"locked out; try again after 2025-03-01 12:05:05"
    ):
        totp.verify_code(ws, good, now=T0 + timedelta(seconds=10))
    # Five minutes after the first failure one slot frees up.
    retry = T0 + timedelta(minutes=5, seconds=1)
    assert totp.verify_code(ws, code_at(secret, retry), now=retry).approver == "admin"
    with pytest.raises(AuthorizationError, match="not valid"):
        totp.verify_code(ws, "12345", now=retry)  # malformed codes count as wrong too


def test_approvers_are_independent(ws, monkeypatch):
    alice = enrol_env(ws, monkeypatch, "alice")
    early = T0 - timedelta(minutes=10)
    bob = enrol_env(ws, monkeypatch, "bob", code_at(alice, early), "alice", now=early)
    assert alice != bob
    assert set(totp.enrolled_approvers(ws)) == {"alice", "bob"}
    with pytest.raises(AuthorizationError, match="not valid"):
        totp.verify_code(ws, code_at(alice, T0), "bob", now=T0)
    totp.verify_code(ws, code_at(alice, T0), "alice", now=T0)
    totp.verify_code(ws, code_at(bob, T0), "bob", now=T0)  # alice's use does not spend bob's
    monkeypatch.setenv("VHC_TOTP_CAROL", alice)  # a secret in the environment enrols no one
    with pytest.raises(AuthorizationError, match="'carol' is not enrolled in this workspace"):
        totp.verify_code(ws, code_at(alice, T0), "carol", now=T0)
    # Re-enrolling needs a current code of the old secret.
    with pytest.raises(Exception, match="already enrolled"):
        totp.enrol(ws, "alice", backend="env")


def test_a_further_approver_needs_a_code_from_an_enrolled_one(ws, monkeypatch):
    """A stolen laptop alone must not be able to mint the second approver."""
    admin = enrol_env(ws, monkeypatch, "admin")
    with pytest.raises(AuthorizationError, match="needs --auth-code"):
        totp.enrol(ws, "mallory", backend="env", now=T0)
    with pytest.raises(AuthorizationError, match="not valid"):
        totp.enrol(ws, "mallory", backend="env", replace_code="000000", now=T0)
    assert set(totp.enrolled_approvers(ws)) == {"admin"}
    enrol_env(ws, monkeypatch, "bob", code_at(admin, T0), "admin", now=T0)
    assert set(totp.enrolled_approvers(ws)) == {"admin", "bob"}


def test_secret_stored_in_the_keyring(tmp_path, monkeypatch, file_keyring):
    monkeypatch.delenv("VHC_TOTP_SECRET", raising=False)
    ws = make_workspace(tmp_path, {"paper": {"id": "paper"}}, secrets_backend="keyring")
    result = totp.enrol(ws, "admin")
    assert result.stored_in == "keyring"
    assert file_keyring.exists()  # it went to the keyring file, not the environment
    now = datetime.now(UTC)
    assert totp.verify_code(ws, code_at(result.secret, now), now=now).approver == "admin"


def test_cli_setup_prints_uri_and_qr(ws, monkeypatch, capsys):
    code, out, err = run_cli(ws, ["totp", "setup", "--backend", "env"], capsys)
    assert code == 0
    assert "otpauth://totp/" in out and "export VHC_TOTP_SECRET=" in out
    assert "export VHC_CONTROL_KEY=" in out
    assert "env backend (VHC_TOTP_SECRET): development only" in err  # warned on enrolment
    assert "█" in out  # the terminal QR code


def test_cli_deactivate_wrong_code_replay_and_success(ws, monkeypatch, capsys):
    secret = enrol_env(ws, monkeypatch)
    killswitch.activate(ws, "drill")
    wrong = f"{(int(pyotp.TOTP(secret).now()) + 500000) % 1000000:06d}"
    code, _, err = run_cli(ws, ["kill-switch", "--deactivate", "--auth-code", wrong], capsys)
    assert code == 8 and "not valid" in err and killswitch.is_active(ws)
    good = pyotp.TOTP(secret).now()
    code, out, err = run_cli(ws, ["kill-switch", "--deactivate", "--auth-code", good], capsys)
    assert code == 0 and "deactivated" in out and not killswitch.is_active(ws)
    assert "comes from VHC_TOTP_SECRET (backend env): development only" in err  # and on use
    killswitch.activate(ws, "drill again")
    code, _, err = run_cli(ws, ["kill-switch", "--deactivate", "--auth-code", good], capsys)
    assert code == 8 and "already used" in err and killswitch.is_active(ws)
    kinds = [e["kind"] for e in events(ws, "kill_switch.deactivate")]
    assert kinds == [
        "kill_switch.deactivate_failed",
        "kill_switch.deactivate",
        "kill_switch.deactivate_failed",
    ]


def test_cli_rate_limit_blocks_the_right_code(ws, monkeypatch, capsys):
    secret = enrol_env(ws, monkeypatch)
    killswitch.activate(ws, "drill")
    good = pyotp.TOTP(secret).now()
    wrong = f"{(int(good) + 500000) % 1000000:06d}"
    for _ in range(5):
        code, _, _ = run_cli(ws, ["kill-switch", "--deactivate", "--auth-code", wrong], capsys)
        assert code == 8
    code, _, err = run_cli(ws, ["kill-switch", "--deactivate", "--auth-code", good], capsys)
    assert code == 8 and "locked out" in err and "try again after" in err
    assert killswitch.is_active(ws)
    reasons = [json.loads(e["details"])["reason"] for e in events(ws, "totp.failed")]
    assert reasons == ["wrong_code"] * 5 + ["locked_out"]


def test_state_dir_is_not_where_2fa_state_lives(ws, monkeypatch):
    """An unreadable or deleted state/ file changes nothing: the ledger holds it all."""
    secret = enrol_env(ws, monkeypatch)
    (ws.state_dir / "totp_state.json").write_text("{not json")
    assert totp.verify_code(ws, code_at(secret, T0), now=T0).approver == "admin"
