"""The Vault backend against a real OpenBao dev server (KV v2 at secret/)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ccxtkit.logs import redact
from ccxtkit.secrets import (
    BackendUnavailableError,
    Credentials,
    MissingSecretError,
    get_secret,
    resolve_credentials,
    set_credentials,
    set_secret,
)
from ccxtkit.secrets.check import check_secrets
from ccxtkit.workspace import Workspace
from tests.servers import OpenBaoDevServer, closed_port, write_workspace


def vault_ws(tmp_path, address: str, extra: str = "") -> Workspace:
    home = write_workspace(
        tmp_path / "ws",
        f"""
exchanges:
  kraken: {{secrets: vault}}
  coinbase: {{secrets: vault}}
  binance: {{secrets: vault}}
secrets:
  backend: vault
  vault:
    address: {address}
{extra}
""",
    )
    return Workspace.locate(str(home))


@pytest.fixture
def vault_env(openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch) -> OpenBaoDevServer:
    for key in ("VAULT_ADDR", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_CACERT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VAULT_TOKEN", openbao.token)
    return openbao


def test_set_then_resolve_uses_the_seed_path_and_fields(tmp_path, vault_env):
    ws = vault_ws(tmp_path, vault_env.address)
    creds = Credentials("vault-key-111111", "vault-secret-222222", "vault-pass-333333")
    result = set_credentials(ws, "coinbase", creds)
    assert result.location == "Vault path secret/exchanges/coinbase"

    raw = vault_env.client().secrets.kv.v2.read_secret_version(
        path="exchanges/coinbase", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert raw == {
        "api_key": "vault-key-111111",
        "api_secret": "vault-secret-222222",
        "passphrase": "vault-pass-333333",
    }
    assert resolve_credentials(ws, "coinbase") == creds
    # The values are now redacted wherever vhc writes text.
    assert redact("sig vault-secret-222222 end") == "sig *** end"


def test_resolves_a_key_stored_with_vault_kv_put(tmp_path, vault_env):
    # As the seed does it: `vault kv put secret/exchanges/kraken api_key=... api_secret=...`
    vault_env.client().secrets.kv.v2.create_or_update_secret(
        path="exchanges/kraken",
        secret={"api_key": "kv-put-key-1", "api_secret": "kv-put-secret-1"},
        mount_point="secret",
    )
    ws = vault_ws(tmp_path, vault_env.address)
    creds = resolve_credentials(ws, "kraken")
    assert creds == Credentials("kv-put-key-1", "kv-put-secret-1", None)
    # Key age comes from Vault's version metadata when the ledger has no record.
    report = check_secrets(ws, datetime.now(UTC))
    row = next(r for r in report.rows if r.name == "kraken")
    assert row.status == "ok" and row.age_days == 0 and row.set_at is not None


def test_missing_path_is_exit_2_and_names_path_and_fix(tmp_path, vault_env):
    ws = vault_ws(tmp_path, vault_env.address)
    with pytest.raises(MissingSecretError) as info:
        resolve_credentials(ws, "binance")
    msg = info.value.message
    assert info.value.exit_code == 2
    assert "secret/exchanges/binance" in msg and "vhc secrets set binance" in msg
    assert "\n" not in msg


def test_bad_token_is_exit_5_one_line_naming_path(tmp_path, vault_env, monkeypatch):
    vault_env.client().secrets.kv.v2.create_or_update_secret(
        path="exchanges/kraken", secret={"api_key": "k1", "api_secret": "s1"}, mount_point="secret"
    )
    monkeypatch.setenv("VAULT_TOKEN", "not-a-real-token-9f8e7d")
    ws = vault_ws(tmp_path, vault_env.address)
    with pytest.raises(BackendUnavailableError) as info:
        resolve_credentials(ws, "kraken")
    msg = info.value.message
    assert info.value.exit_code == 5
    assert "secret/exchanges/kraken" in msg and vault_env.address in msg
    assert "not-a-real-token-9f8e7d" not in msg and "\n" not in msg


def test_vault_down_is_exit_5_naming_address_and_path(tmp_path, vault_env):
    address = f"http://127.0.0.1:{closed_port()}"
    ws = vault_ws(tmp_path, address)
    with pytest.raises(BackendUnavailableError) as info:
        resolve_credentials(ws, "kraken")
    msg = info.value.message
    assert info.value.exit_code == 5
    assert address in msg and "secret/exchanges/kraken" in msg and "unreachable" in msg
    assert "\n" not in msg


def test_no_address_and_no_token_are_config_errors(tmp_path, vault_env, monkeypatch):
    monkeypatch.delenv("VAULT_TOKEN")
    ws = vault_ws(tmp_path, vault_env.address)
    with pytest.raises(Exception) as info:
        resolve_credentials(ws, "kraken")
    assert info.value.exit_code == 2 and "VAULT_TOKEN" in info.value.message


def test_approle_login(tmp_path, vault_env, monkeypatch):
    root = vault_env.client()
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy(
        name="vhc-read", policy='path "secret/data/exchanges/*" { capabilities = ["read"] }'
    )
    root.auth.approle.create_or_update_approle(role_name="vhc", token_policies=["vhc-read"])
    role_id = root.auth.approle.read_role_id(role_name="vhc")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role_name="vhc")["data"]["secret_id"]
    root.secrets.kv.v2.create_or_update_secret(
        path="exchanges/kraken",
        secret={"api_key": "approle-key", "api_secret": "approle-secret"},
        mount_point="secret",
    )
    monkeypatch.delenv("VAULT_TOKEN")
    monkeypatch.setenv("VAULT_SECRET_ID", secret_id)
    ws = vault_ws(tmp_path, vault_env.address, f"    role_id: {role_id}")
    assert resolve_credentials(ws, "kraken") == Credentials("approle-key", "approle-secret")

    # The policy reads exchange keys only: a named secret elsewhere is refused, naming the path.
    with pytest.raises(BackendUnavailableError) as denied:
        get_secret(ws, "smtp_password")
    assert "secret/vhc/smtp_password" in denied.value.message

    monkeypatch.setenv("VAULT_SECRET_ID", "00000000-0000-0000-0000-000000000000")
    ws2 = vault_ws(tmp_path / "again", vault_env.address, f"    role_id: {role_id}")
    with pytest.raises(BackendUnavailableError) as info:
        resolve_credentials(ws2, "kraken")
    assert info.value.exit_code == 5 and "AppRole" in info.value.message
    assert "00000000-0000-0000-0000-000000000000" not in info.value.message


def test_named_secret_round_trip(tmp_path, vault_env):
    ws = vault_ws(tmp_path, vault_env.address)
    result = set_secret(ws, "smtp_password", "smtp-pw-4444444")
    assert result.backend == "vault" and "secret/vhc/smtp_password" in result.location
    raw = vault_env.client().secrets.kv.v2.read_secret_version(
        path="vhc/smtp_password", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert raw == {"value": "smtp-pw-4444444"}
    assert get_secret(ws, "smtp_password") == "smtp-pw-4444444"
