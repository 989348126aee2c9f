"""keyring (a test-only file keyring), env, key age, the ledger record and file modes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import keyring
import pytest

from ccxtkit.errors import UnsafePermissionsError
from ccxtkit.ledger.store import ledger_lock, open_ledger
from ccxtkit.secrets import (
    BackendUnavailableError,
    Credentials,
    MissingSecretError,
    get_secret,
    resolve_credentials,
    set_credentials,
    take_warnings,
)
from ccxtkit.secrets.check import check_secrets
from ccxtkit.secrets.meta import age_days, age_warning
from ccxtkit.workspace import Workspace
from tests.servers import write_workspace

CONFIG = """
exchanges:
  kraken: {secrets: keyring}
  devkraken: {id: kraken, secrets: env}
  sandboxed: {id: kraken, secrets: env, sandbox: true}
  paper: {id: paper, secrets: keyring}
  offline: {id: kraken, secrets: none}
ledger: {lock_wait_seconds: 0}
"""


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace.locate(str(write_workspace(tmp_path / "ws", CONFIG)))


def test_keyring_round_trip_under_service_vhc(ws, file_keyring):
    creds = Credentials("kr-key-123456", "kr-secret-654321")
    result = set_credentials(ws, "kraken", creds)
    assert "'vhc'" in result.location and "exchanges/kraken" in result.location
    stored = json.loads(keyring.get_password("vhc", "exchanges/kraken"))
    assert stored == {"api_key": "kr-key-123456", "api_secret": "kr-secret-654321"}
    assert resolve_credentials(ws, "kraken") == creds
    assert "kr-secret" not in repr(creds) and "kr-secret" not in str(creds)


def test_keyring_missing_is_exit_2_with_the_fix(ws, file_keyring):
    with pytest.raises(MissingSecretError) as info:
        resolve_credentials(ws, "kraken")
    assert info.value.exit_code == 2 and "vhc secrets set kraken" in info.value.message


def test_no_usable_keyring_is_exit_5(ws, file_keyring):
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())  # the fixture restores the previous one
    with pytest.raises(BackendUnavailableError) as info:
        resolve_credentials(ws, "kraken")
    assert info.value.exit_code == 5 and "keyring" in info.value.message


def test_paper_and_none_need_no_keys(ws):
    assert resolve_credentials(ws, "paper") is None
    assert resolve_credentials(ws, "offline") is None


def test_env_backend_and_its_live_warning(ws, monkeypatch):
    take_warnings()
    monkeypatch.setenv("DEVKRAKEN_API_KEY", "env-key-1234")
    monkeypatch.setenv("DEVKRAKEN_API_SECRET", "env-secret-1234")
    monkeypatch.setenv("DEVKRAKEN_PASSPHRASE", "env-pass-1234")
    assert resolve_credentials(ws, "devkraken") == Credentials(
        "env-key-1234", "env-secret-1234", "env-pass-1234"
    )
    warnings = take_warnings()
    assert len(warnings) == 1 and "devkraken" in warnings[0] and "\n" not in warnings[0]
    assert "env-secret-1234" not in warnings[0]

    monkeypatch.setenv("SANDBOXED_API_KEY", "sb-key-1234")
    monkeypatch.setenv("SANDBOXED_API_SECRET", "sb-secret-1234")
    assert resolve_credentials(ws, "sandboxed") is not None
    assert take_warnings() == []  # the exchange's testnet is not a live account


def test_env_missing_names_the_variables(ws, monkeypatch):
    monkeypatch.delenv("DEVKRAKEN_API_KEY", raising=False)
    monkeypatch.delenv("DEVKRAKEN_API_SECRET", raising=False)
    with pytest.raises(MissingSecretError) as info:
        resolve_credentials(ws, "devkraken")
    assert "DEVKRAKEN_API_KEY" in info.value.message and info.value.exit_code == 2


def test_named_secret_from_env(ws, monkeypatch):
    monkeypatch.setenv("VHC_TOTP_SECRET", "JBSWY3DPEHPK3PXP")
    assert get_secret(ws, "totp_secret", backend="env") == "JBSWY3DPEHPK3PXP"


def test_set_records_when_not_what_in_the_ledger(ws, file_keyring):
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    set_credentials(ws, "kraken", Credentials("ledger-key-1", "ledger-secret-1"), now=when)
    with open_ledger(ws.ledger_path) as ledger:
        rows = ledger.rows("SELECT * FROM control_events WHERE kind = 'secret.set'")
    assert len(rows) == 1
    details = json.loads(rows[0]["details"])
    assert details["name"] == "kraken" and details["backend"] == "keyring"
    assert rows[0]["timestamp"] == when.replace(tzinfo=None)
    assert b"ledger-secret-1" not in ws.ledger_path.read_bytes()
    assert b"ledger-key-1" not in ws.ledger_path.read_bytes()


def test_busy_ledger_says_the_record_was_not_made(ws, file_keyring):
    # The outbox carries kill-switch events only (a forged `secret.set` there could make an old
    # key look fresh), so a busy ledger leaves the record unmade and says so.
    with open_ledger(ws.ledger_path):
        pass
    with ledger_lock(ws.ledger_path, 0):
        result = set_credentials(ws, "kraken", Credentials("busy-key-1", "busy-secret-1"))
    assert "not recorded" in result.recorded and "busy" in result.recorded
    with open_ledger(ws.ledger_path) as ledger:
        kinds = [r[0] for r in ledger.query("SELECT kind FROM control_events")]
    assert "secret.set" not in kinds


def test_age_rules():
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert age_days(None, now) is None
    assert age_days(now - timedelta(days=90, hours=23), now) == 90
    assert age_warning("kraken", now - timedelta(days=90), now, 90) is None
    warning = age_warning("kraken", now - timedelta(days=91), now, 90)
    assert warning is not None and "91 days" in warning and "vhc secrets set kraken" in warning


def test_check_reports_age_and_staleness(ws, file_keyring):
    old = datetime.now(UTC) - timedelta(days=120)
    set_credentials(ws, "kraken", Credentials("old-key-1", "old-secret-1"), now=old)
    report = check_secrets(ws, datetime.now(UTC), "kraken")
    (row,) = report.rows
    assert row.status == "ok" and row.age_days == 120
    assert any("120 days old" in w for w in row.warnings)
    assert report.exit_code() == 0 and report.notes  # says what it did not check


def test_ledger_readable_by_others_is_refused(ws):
    path = ws.ledger_path
    with open_ledger(path):
        pass
    path.chmod(0o644)
    fresh = Workspace.locate(str(ws.home))
    with pytest.raises(UnsafePermissionsError) as info:
        _ = fresh.ledger_path
    assert f"chmod 600 {path}" in info.value.message


def test_check_tells_missing_from_misconfigured(tmp_path, file_keyring, monkeypatch):
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    home = write_workspace(
        tmp_path / "mixed", "exchanges:\n  kraken: {secrets: keyring}\n  bybit: {secrets: vault}\n"
    )
    report = check_secrets(Workspace.locate(str(home)), datetime.now(UTC))
    status = {r.name: (r.status, r.exit_code) for r in report.rows}
    assert status == {"kraken": ("missing", 2), "bybit": ("misconfigured", 2)}
    assert "VAULT_ADDR" in next(r.problem for r in report.rows if r.name == "bybit")
    assert report.exit_code() == 2 and not report.notes
