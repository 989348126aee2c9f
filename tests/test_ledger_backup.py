"""Issue 14, finding 9: encrypted backups under the lock, restores that verify or refuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ccxtkit.cli.app import main
from ccxtkit.workspace import init_workspace

REPO = Path(__file__).resolve().parents[1]
CSV = (
    "timestamp,exchange,symbol,side,amount,price,fee,fee_currency,trade_id\n"
    "2025-01-23T14:05:00Z,kraken,BTC/USD,buy,0.5,60000,3,USD,T-1\n"
)


def vhc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture
def ws(tmp_path: Path, file_keyring: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    home = tmp_path / "ws"
    init_workspace(home)
    trades = tmp_path / "t.csv"
    trades.write_text(CSV)
    assert vhc(capsys, "--home", str(home), "ledger", "import", "--trades", str(trades))[0] == 0
    return home


def backup(capsys: pytest.CaptureFixture[str], home: Path, *extra: str) -> dict[str, object]:
    code, out, err = vhc(capsys, "--json", "--home", str(home), "ledger", "backup", *extra)
    assert code == 0, err
    doc: dict[str, object] = json.loads(out)
    return doc


def test_backup_restores_to_the_same_digest(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path, file_keyring: Path
) -> None:
    target = tmp_path / "off" / "b.vhcbak"
    doc = backup(capsys, ws, "--output", str(target))
    data = target.read_bytes()
    assert data.startswith(b"VHCBAK1\n") and b"DUCK" not in data[:4096]  # encrypted
    assert (target.stat().st_mode & 0o777) == 0o600
    assert "backup_key" in file_keyring.read_text()  # the key lives in the secrets backend
    beside = json.loads(Path(str(doc["digest"])).read_text())
    code, out, _ = vhc(capsys, "--json", "--home", str(ws), "ledger", "digest")
    live = json.loads(out)
    assert (beside["seq"], beside["hash"]) == (live["seq"], live["hash"])
    code, out, err = vhc(
        capsys, "--json", "--home", str(ws), "ledger", "restore", str(target), "--to",
        str(tmp_path / "restored"),
    )  # fmt: skip
    assert code == 0, err
    restored = json.loads(out)
    assert restored["head"] == {"seq": live["seq"], "hash": live["hash"]}
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "verify_ledger.py"),
         str(tmp_path / "restored" / "vhc.duckdb")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0 and live["hash"] in proc.stdout


@pytest.mark.parametrize("where", ["header", "middle", "tag", "digest", "truncated"])
def test_tampered_backup_is_refused(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path, where: str
) -> None:
    target = tmp_path / "b.vhcbak"
    backup(capsys, ws, "--output", str(target))
    data = bytearray(target.read_bytes())
    if where == "header":
        data[10] ^= 1
    elif where == "middle":
        data[len(data) // 2] ^= 1
    elif where == "tag":
        data[-1] ^= 1
    elif where == "truncated":
        del data[-100:]
    if where == "digest":
        digest = target.with_name(target.name + ".digest.json")
        doc = json.loads(digest.read_text())
        digest.write_text(json.dumps({**doc, "seq": doc["seq"] - 1}))
    else:
        target.write_bytes(bytes(data))
    out_dir = tmp_path / "restored"
    code, _, err = vhc(
        capsys, "--home", str(ws), "ledger", "restore", str(target), "--to", str(out_dir)
    )
    assert code == 6, err
    assert not (out_dir / "vhc.duckdb").exists()
    assert list(out_dir.iterdir()) == [] if out_dir.exists() else True


def test_backup_under_another_key_is_refused(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path, file_keyring: Path
) -> None:
    target = tmp_path / "b.vhcbak"
    backup(capsys, ws, "--output", str(target))
    import base64

    from ccxtkit.secrets import set_secret
    from ccxtkit.workspace import Workspace

    other = base64.urlsafe_b64encode(b"k" * 32).decode()
    set_secret(Workspace(ws, ws / "config" / "trading_config.yaml"), "backup_key", other)
    code, _, err = vhc(
        capsys, "--home", str(ws), "ledger", "restore", str(target), "--to", str(tmp_path / "r")
    )
    assert code == 6 and "another backup_key" in err, err


def test_keep_prunes_old_backups_and_cron_takes_one_daily(
    capsys: pytest.CaptureFixture[str], ws: Path, tmp_path: Path
) -> None:
    for _ in range(3):
        backup(capsys, ws, "--keep", "2")
    kept = sorted((ws / "backups").glob("vhc-*.vhcbak"))
    assert len(kept) == 2
    assert len(list((ws / "backups").glob("*.digest.json"))) == 2
    cron = (REPO / "deploy" / "cron" / "vhc.crontab").read_text()
    line = next(ln for ln in cron.splitlines() if "vhc ledger backup" in ln)
    assert line.split()[2:5] == ["*", "*", "*"] and "--keep" in line
