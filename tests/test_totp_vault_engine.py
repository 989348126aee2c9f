"""`vhc totp setup --backend vault-engine` against a real OpenBao dev server (its TOTP engine).

The approver's key is generated inside OpenBao (`totp/keys/<name>`) and each code is checked
there (`totp/code/<name>`); vhc never stores the secret. The test plays the authenticator app
by reading the otpauth URI printed once at enrolment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyotp
import pytest

from ccxtkit.auth.ledger_id import ledger_id
from ccxtkit.ledger.store import open_ledger
from ccxtkit.risk import killswitch
from ccxtkit.workspace import Workspace
from tests.servers import OpenBaoDevServer, closed_port, write_workspace
from tests.test_killswitch import run_cli


def engine_ws(home: Path, address: str) -> Workspace:
    write_workspace(
        home,
        f"""
exchanges:
  paper: {{id: paper, secrets: none}}
secrets:
  backend: vault
  vault:
    address: {address}
""",
    )
    return Workspace.locate(str(home))


@pytest.fixture
def bao(openbao: OpenBaoDevServer, monkeypatch: pytest.MonkeyPatch) -> OpenBaoDevServer:
    for key in ("VAULT_ADDR", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_CACERT"):
        monkeypatch.delenv(key, raising=False)
    for key in ("VHC_TOTP_SECRET", "VHC_CONTROL_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VAULT_TOKEN", openbao.token)
    vc = openbao.client()
    if "totp/" not in vc.sys.list_mounted_secrets_engines()["data"]:
        vc.sys.enable_secrets_engine("totp", path="totp")
    return openbao


def test_enrol_deactivate_replay_and_vault_down(tmp_path, bao, monkeypatch, capsys):
    ws = engine_ws(tmp_path / "ws", bao.address)
    args = ["--json", "totp", "setup", "--backend", "vault-engine", "--no-qr"]
    code, out, err = run_cli(ws, args, capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["stored_in"] == "vault-engine" and "export" not in doc
    secret = pyotp.parse_uri(doc["uri"]).secret  # what the authenticator app scans

    with open_ledger(ws.ledger_path) as ledger:
        lid = ledger_id(ledger)
        trail = ledger.rows("SELECT kind, details FROM control_events ORDER BY seq")
    vc = bao.client()
    assert vc.read(f"totp/keys/vhc-{lid}-admin") is not None  # the key lives in the engine
    kv = vc.secrets.kv.v2.list_secrets(path="vhc", mount_point="secret")["data"]["keys"]
    assert f"control_{lid}" in kv and not any(k.startswith("totp_") for k in kv)
    assert secret not in json.dumps(trail)  # never in the ledger

    killswitch.activate(ws, "drill")
    now_code = pyotp.TOTP(secret).now()
    deactivate = ["kill-switch", "--deactivate", "--auth-code"]
    code, _, err = run_cli(ws, [*deactivate, now_code], capsys)
    assert code == 0, err
    assert not killswitch.is_active(ws)

    killswitch.activate(ws, "drill again")
    code, _, err = run_cli(ws, [*deactivate, now_code], capsys)
    assert code == 8 and killswitch.is_active(ws)  # the same code twice: refused

    wrong = f"{(int(now_code) + 500000) % 1000000:06d}"
    code, _, err = run_cli(ws, [*deactivate, wrong], capsys)
    assert code == 8 and "not valid" in err

    # Vault down: exit 8 with Vault's own message, and no other source is tried.
    monkeypatch.setenv("VHC_TOTP_SECRET", secret)
    down = engine_ws(tmp_path / "ws", f"http://127.0.0.1:{closed_port()}")
    code, _, err = run_cli(down, [*deactivate, pyotp.TOTP(secret).now()], capsys)
    assert code == 8 and "unreachable" in err
    assert killswitch.is_active(down)


def test_an_existing_engine_key_is_never_overwritten(tmp_path, bao, capsys):
    """A key in the engine that this ledger does not record as enrolled is not replaced."""
    ws = engine_ws(tmp_path / "ws", bao.address)
    code, out, err = run_cli(ws, ["--json", "totp", "setup", "--backend", "vault-engine"], capsys)
    assert code == 0, err
    admin = pyotp.parse_uri(json.loads(out)["uri"]).secret
    with open_ledger(ws.ledger_path) as ledger:
        lid = ledger_id(ledger)
    bao.client().write_data(
        f"totp/keys/vhc-{lid}-bob", data={"generate": True, "issuer": "x", "account_name": "y"}
    )
    args = ["totp", "setup", "--approver", "bob", "--backend", "vault-engine", "--by", "admin"]
    code, _, err = run_cli(ws, [*args, "--auth-code", pyotp.TOTP(admin).now()], capsys)
    assert code == 8 and "never overwrites" in err


def test_the_engine_is_not_mounted(tmp_path, bao, capsys):
    bao.client().sys.disable_secrets_engine("totp")
    try:
        ws = engine_ws(tmp_path / "ws", bao.address)
        args = ["totp", "setup", "--backend", "vault-engine", "--no-qr"]
        code, _, err = run_cli(ws, args, capsys)
        assert code == 8 and "secrets enable totp" in err
    finally:
        bao.client().sys.enable_secrets_engine("totp", path="totp")


def test_kv_backend_names_carry_the_ledger_id_and_vault_down_is_exit_8(tmp_path, bao, capsys):
    ws = engine_ws(tmp_path / "ws", bao.address)
    code, out, err = run_cli(ws, ["--json", "totp", "setup", "--backend", "vault"], capsys)
    assert code == 0, err
    secret = pyotp.parse_uri(json.loads(out)["uri"]).secret
    with open_ledger(ws.ledger_path) as ledger:
        lid = ledger_id(ledger)
    stored = bao.client().secrets.kv.v2.read_secret_version(
        path=f"vhc/totp_{lid}_admin", mount_point="secret", raise_on_deleted_version=True
    )["data"]["data"]
    assert stored == {"value": secret}
    killswitch.activate(ws, "drill")
    down = engine_ws(tmp_path / "ws", f"http://127.0.0.1:{closed_port()}")
    deactivate = ["kill-switch", "--deactivate", "--auth-code", pyotp.TOTP(secret).now()]
    code, _, err = run_cli(down, deactivate, capsys)
    assert code == 8 and "unreachable" in err and killswitch.is_active(down)
    ws = engine_ws(tmp_path / "ws", bao.address)  # Vault is back
    code, _, err = run_cli(ws, deactivate, capsys)  # the code was not used up by the failure
    assert code == 0, err
