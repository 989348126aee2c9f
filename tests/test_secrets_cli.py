"""`vhc secrets set | check` through the real CLI entry point, and the never-appears canary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ccxtkit.cli.app import main
from ccxtkit.logs import log, setup_logging
from tests.servers import OpenBaoDevServer, closed_port, write_workspace

CANARY_KEY = "CANARYKEY-7f3a9c1e5b"
CANARY_SECRET = "CANARYSECRET-d4e8b2a6f0"
CANARY_PASS = "CANARYPASS-91c3e7"
CANARY_SMTP = "CANARYSMTP-5e2a8d"
CANARY_ENV = "CANARYENV-0b7d3f"
CANARY_TOKEN = "CANARYTOKEN-c81f40"
CANARIES = [CANARY_KEY, CANARY_SECRET, CANARY_PASS, CANARY_SMTP, CANARY_ENV, CANARY_TOKEN]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def vhc(args: list[str], input: str | None = None) -> Run:
    """Run `vhc` through main(): real exit codes and the one-line error on stderr."""
    runner = CliRunner()
    with runner.isolation(input=input) as (out, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return Run(code, out.getvalue().decode(), err.getvalue().decode())


def one_line(text: str) -> str:
    """rich wraps long lines at the terminal width; join them back for assertions."""
    return " ".join(text.split())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return write_workspace(
        tmp_path / "ws",
        """
exchanges:
  kraken: {secrets: keyring}
  paper: {id: paper, secrets: none}
""",
    )


def test_set_reads_stdin_when_not_a_terminal_and_check_resolves(home, file_keyring):
    ran = vhc(
        ["--home", str(home), "secrets", "set", "kraken"], input="key-abcdef\nsecret-abcdef\n"
    )
    assert ran.code == 0, ran.stderr
    assert "Stored kraken" in ran.stdout and "secret-abcdef" not in ran.stdout + ran.stderr
    assert "Warning" not in ran.stderr  # no GetPassWarning: no prompt at all

    ran = vhc(["--home", str(home), "--json", "secrets", "check"])
    assert ran.code == 0, ran.stderr
    rows = {r["name"]: r for r in json.loads(ran.stdout)["rows"]}
    assert rows["kraken"]["status"] == "ok" and rows["kraken"]["age_days"] == 0
    assert rows["paper"]["status"] == "not needed"


def test_set_from_file_and_a_bad_file_stores_nothing(home, file_keyring, tmp_path):
    import keyring

    keys = tmp_path / "keys.txt"
    keys.write_text("key-from-file\nsecret-from-file\npass-from-file\n")
    ran = vhc(["--home", str(home), "secrets", "set", "kraken", "--from-file", str(keys)])
    assert ran.code == 0, ran.stderr
    stored = json.loads(keyring.get_password("vhc", "exchanges/kraken"))
    assert stored["api_secret"] == "secret-from-file" and stored["passphrase"] == "pass-from-file"
    ran = vhc(["--home", str(home), "secrets", "set", "slack_token"], input="  tok-123  \n")
    assert ran.code == 0 and keyring.get_password("vhc", "slack_token") == "tok-123"
    bad = vhc(["--home", str(home), "secrets", "set", "kraken"], input="only-one-line\n")
    assert bad.code == 2 and "line 2" in bad.stderr
    assert json.loads(keyring.get_password("vhc", "exchanges/kraken"))["api_key"] == "key-from-file"


def test_on_a_terminal_it_prompts_and_asks_again_on_a_mismatch(home, file_keyring):
    """A real pseudo-terminal: no echo, a confirmation, a typo caught before storing."""
    import os
    import pty
    import subprocess
    import sys
    import time

    import keyring

    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccxtkit", "--home", str(home), "secrets", "set", "kraken"],
        stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    seen = b""

    def expect(text: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while text not in seen:
            assert time.monotonic() < deadline, seen
            try:
                seen += os.read(master, 1024)
            except OSError:
                break

    script = [
        (b"API key: ", b"key-1111111"),
        (b"confirmation: ", b"key-2222222"),  # a typo: asked again
        (b"API key: ", b"key-3333333"),
        (b"confirmation: ", b"key-3333333"),
        (b"API secret: ", b"sec-4444444"),
        (b"confirmation: ", b"sec-4444444"),
        (b"none): ", b""),
    ]
    for prompt, answer in script:
        expect(prompt)
        assert b"key-" not in seen and b"sec-" not in seen  # nothing echoed
        seen = b""
        os.write(master, answer + b"\n")
    code = proc.wait(timeout=60)
    expect(b"\x00")  # the rest of the output, for the message below
    os.close(master)
    assert code == 0, seen
    stored = json.loads(keyring.get_password("vhc", "exchanges/kraken"))
    assert stored["api_key"] == "key-3333333" and stored["api_secret"] == "sec-4444444"


def test_a_plaintext_keyring_is_refused_naming_it_and_the_fix(home, tmp_path):
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    previous = keyring.get_keyring()
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "plain.cfg")  # type: ignore[misc]
    keyring.set_keyring(backend)
    try:
        ran = vhc(["--home", str(home), "secrets", "set", "kraken"], input="key-abc\nsec-abc\n")
        check = vhc(["--home", str(home), "secrets", "check", "kraken"])
    finally:
        keyring.set_keyring(previous)
    assert ran.code == 2
    assert "keyrings.alt.file.PlaintextKeyring" in ran.stderr and "pip uninstall" in ran.stderr
    assert not (tmp_path / "plain.cfg").exists()  # nothing was written
    assert check.code == 2 and "plain text" in check.stderr  # never "ok"


def test_check_missing_key_exits_2_with_the_fix(home, file_keyring):
    ran = vhc(["--home", str(home), "secrets", "check", "kraken"])
    assert ran.code == 2
    assert "vhc secrets set kraken" in one_line(ran.stderr)


def test_set_refuses_a_paper_account_before_prompting(home, file_keyring):
    ran = vhc(["--home", str(home), "secrets", "set", "paper"], input="")
    assert ran.code == 2 and "needs no API key" in one_line(ran.stderr)
    assert "API key:" not in ran.stdout


def test_vault_down_through_the_cli_exits_5_naming_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", "whatever-token")
    address = f"http://127.0.0.1:{closed_port()}"
    home = write_workspace(
        tmp_path / "v",
        f"exchanges:\n  kraken: {{secrets: vault}}\nsecrets:\n  vault: {{address: '{address}'}}\n",
    )
    ran = vhc(["--home", str(home), "secrets", "check"])
    assert ran.code == 5
    assert "secret/exchanges/kraken" in one_line(ran.stderr) and address in one_line(ran.stderr)


def test_config_readable_by_others_is_refused(home):
    config = home / "config" / "trading_config.yaml"
    config.chmod(0o644)
    ran = vhc(["--home", str(home), "secrets", "check"])
    assert ran.code == 2 and f"chmod 600 {config}" in one_line(ran.stderr)


@pytest.fixture
def log_file(tmp_path: Path):
    """vhc's log file for the canary workspace, at DEBUG (the handler is removed afterwards)."""
    path = tmp_path / "canary" / "logs" / "trading.log"
    before = list(log.handlers)
    setup_logging(path, "DEBUG")
    yield path
    for handler in [h for h in log.handlers if h not in before]:
        handler.close()
        log.removeHandler(handler)


def test_canary_secrets_never_appear(
    tmp_path, file_keyring, log_file, openbao: OpenBaoDevServer, monkeypatch
):
    """Distinctive values go through set, check, --json, config show and a bad-token error."""
    home = write_workspace(
        tmp_path / "canary",
        f"""
exchanges:
  kraken: {{secrets: keyring}}
  devex: {{id: kraken, secrets: env}}
  vaulted: {{id: kraken, secrets: vault}}
monitoring:
  alerts:
    email:
      host: 127.0.0.1
      sender: vhc@example.com
      recipients: [ops@example.com]
      password_secret: smtp_password
secrets:
  vault: {{address: '{openbao.address}'}}
""",
    )
    monkeypatch.setenv("DEVEX_API_KEY", CANARY_ENV + "-k")
    monkeypatch.setenv("DEVEX_API_SECRET", CANARY_ENV)
    monkeypatch.setenv("VAULT_TOKEN", CANARY_TOKEN)  # not a valid token: the check fails
    runs = [
        vhc(
            ["--home", str(home), "secrets", "set", "kraken"],
            input=f"{CANARY_KEY}\n{CANARY_SECRET}\n{CANARY_PASS}\n",
        ),
        vhc(
            ["--home", str(home), "secrets", "set", "smtp_password"],
            input=f"{CANARY_SMTP}\n",
        ),
        vhc(["--home", str(home), "secrets", "check"]),
        vhc(["--home", str(home), "--json", "secrets", "check"]),
        vhc(["--home", str(home), "-v", "secrets", "check", "vaulted"]),
        vhc(["--home", str(home), "config", "show"]),
        vhc(["--home", str(home), "--json", "config", "show"]),
    ]
    assert [r.code for r in runs[:2]] == [0, 0], [r.stderr for r in runs]
    assert runs[2].code == 5 and runs[4].code == 5  # the Vault account fails, by design
    assert "secret/exchanges/vaulted" in one_line(runs[4].stderr)
    assert "devex" in one_line(runs[2].stderr) and "environment" in one_line(runs[2].stderr)
    rows = {r["name"]: r["status"] for r in json.loads(runs[3].stdout)["rows"]}
    assert rows == {
        "kraken": "ok",
        "devex": "ok",
        "vaulted": "unavailable",
        "smtp_password": "ok",
    }
    log.info("flush marker")  # the log file was written to
    assert "flush marker" in log_file.read_text()

    from ccxtkit.ledger.store import open_ledger

    with open_ledger(home / "ledger" / "vhc.duckdb") as ledger:
        events = ledger.rows("SELECT kind, subject, details FROM control_events")
    assert [e["subject"] for e in events if e["kind"] == "secret.set"] == [
        "kraken",
        "smtp_password",
    ]
    texts = [r.stdout + r.stderr for r in runs] + [repr(events)]
    files = [p for p in home.rglob("*") if p.is_file()] + [log_file]
    assert any(p.suffix == ".duckdb" for p in files)
    for canary in CANARIES:
        for i, text in enumerate(texts):
            assert canary not in text, f"{canary} in the output of run {i}"
        for path in files:
            assert canary.encode() not in path.read_bytes(), f"{canary} in {path}"
