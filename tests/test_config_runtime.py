"""Issue 17 through the CLI: schedule, reconcile age, daily logs and their chain, metrics serve."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from ccxtkit.cli.app import main
from ccxtkit.ledger.store import open_ledger
from ccxtkit.logs import DailyFileHandler, day_file, log
from ccxtkit.workspace import init_workspace, write_private

CONFIG = Path("config") / "trading_config.yaml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    init_workspace(path)
    return path


def edit(home: Path, change: object) -> None:
    data = yaml.safe_load((home / CONFIG).read_text(encoding="utf-8"))
    change(data)  # type: ignore[operator]
    write_private(home / CONFIG, yaml.safe_dump(data))


def doctor(capsys: pytest.CaptureFixture[str], home: Path) -> tuple[int, list[dict[str, str]]]:
    code, out, _ = run(capsys, "--home", str(home), "--json", "doctor")
    return code, json.loads(out)["checks"]


# -- reconciliation.frequency ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("frequency", "line"),
    [("daily", "30 0 * * *"), ("hourly", "5 * * * *"), ("manual", None)],
)
def test_deploy_schedule_follows_the_frequency(
    home: Path, capsys: pytest.CaptureFixture[str], frequency: str, line: str | None
) -> None:
    edit(home, lambda c: c["reconciliation"].update({"frequency": frequency}))
    code, out, err = run(capsys, "--home", str(home), "deploy", "schedule")
    assert code == 0, err
    assert f"VHC_HOME={home}" in out and "kill-switch --check" in out
    reconcile = [x for x in out.splitlines() if "reconcile --date" in x and not x.startswith("#")]
    if line is None:
        assert not reconcile and "frequency: manual" in out
    else:
        assert len(reconcile) == 1 and reconcile[0].startswith(line)
    code, out, _ = run(capsys, "--home", str(home), "deploy", "schedule", "--systemd")
    assert code == 0 and ("vhc-reconcile.timer" in out) == (line is not None)


def test_doctor_warns_when_the_last_reconcile_is_too_old(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def area(checks: list[dict[str, str]]) -> dict[str, str]:
        return next(c for c in checks if c["area"] == "reconcile")

    assert area(doctor(capsys, home)[1])["status"] == "warn"  # never reconciled
    with open_ledger(home / "ledger" / "vhc.duckdb") as ledger:
        ledger.record_event(
            "reconcile.completed", {"ok": True}, timestamp=datetime.now(UTC) - timedelta(hours=3)
        )
    found = area(doctor(capsys, home)[1])
    assert found["status"] == "ok", found  # daily: 3 h is fine
    edit(home, lambda c: c["reconciliation"].update({"frequency": "hourly"}))
    found = area(doctor(capsys, home)[1])
    assert found["status"] == "warn" and "hourly expected" in found["detail"]


# -- monitoring ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, deadline: float, want: str = "") -> str:
    """The exposition, once it contains `want` (retrying until the deadline)."""
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:  # noqa: S310
                text = str(r.read().decode())
            if want in text:
                return text
        except OSError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{want!r} never appeared")
        time.sleep(0.2)


def checked_at(text: str) -> float:
    for line in text.splitlines():
        if line.startswith('vhc_exchange_last_check_timestamp_seconds{exchange="paper"}'):
            return float(line.split()[-1])
    raise AssertionError("no check timestamp for paper:\n" + text)


@pytest.mark.parametrize("down", [False, True], ids=["up", "down"])
def test_metrics_serve_listens_on_prometheus_port_and_probes_exchanges(
    home: Path, down: bool
) -> None:
    port = free_port()

    def change(c: dict) -> None:  # type: ignore[type-arg]
        c["monitoring"].update({"prometheus_port": port, "healthcheck_interval": 1})
        c["exchanges"]["paper"].setdefault("paper", {})["fail_calls"] = down

    edit(home, change)
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "ccxtkit", "--home", str(home), "metrics", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        probed = 'vhc_exchange_last_check_timestamp_seconds{exchange="paper"}'
        first = scrape(port, time.monotonic() + 30, probed)
        time.sleep(2.5)
        second = scrape(port, time.monotonic() + 5)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert f'vhc_exchange_up{{exchange="paper"}} {0.0 if down else 1.0}' in second
    assert checked_at(second) > checked_at(first)  # probed again without any command run


def test_grafana_port_goes_into_the_grafana_provisioning(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(home, lambda c: c["monitoring"].update({"grafana_port": 3123}))
    out_dir = tmp_path / "grafana"
    code, _, err = run(capsys, "--home", str(home), "deploy", "grafana", "--output", str(out_dir))
    assert code == 0, err
    assert "http_port = 3123" in (out_dir / "grafana.ini").read_text()
    provider = yaml.safe_load((out_dir / "provisioning/dashboards/vhc.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"


# -- exchanges.*.ip_allowlist ----------------------------------------------------------------
def test_doctor_shows_the_ip_allowlist_and_says_it_cannot_check_it(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(home, lambda c: c["exchanges"]["paper"].update({"ip_allowlist": ["203.0.113.5"]}))
    _, checks = doctor(capsys, home)
    found = [c for c in checks if c["area"] == "ip allowlist"]
    assert len(found) == 1 and "203.0.113.5" in found[0]["detail"]
    assert "cannot check" in found[0]["detail"] and found[0]["status"] == "info"


# -- logging.retention_days / logging.immutable -------------------------------------------
def test_log_files_are_daily_and_pruned_after_retention_days(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(home, lambda c: c["logging"].update({"retention_days": 30, "immutable": False}))
    logs = home / "logs"
    today = datetime.now(UTC).date()
    old = day_file(logs / "trading.log", today - timedelta(days=31))
    kept = day_file(logs / "trading.log", today - timedelta(days=29))
    for path in (old, kept):
        path.write_text("x\n")
    assert run(capsys, "--home", str(home), "balances")[0] == 0
    assert not old.exists() and kept.exists()
    current = day_file(logs / "trading.log", today)
    assert "vhc --home" in current.read_text()
    assert (logs / "trading.log").resolve() == current.resolve()
    assert oct(current.stat().st_mode & 0o777) == "0o600"


def _handler() -> DailyFileHandler:
    return next(h for h in log.handlers if isinstance(h, DailyFileHandler))


def test_immutable_logs_are_chained_sealed_in_the_ledger_and_checked(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "--home", str(home), "balances")[0] == 0  # handler set up (immutable)
    for path in (home / "logs").iterdir():
        path.unlink()  # start the chain afresh: yesterday first, as a clock would have it
    yesterday = datetime.now(UTC) - timedelta(days=1)
    handler = _handler()
    handler.clock = lambda: yesterday
    try:
        for i in range(3):
            log.info("yesterday line %d", i)
    finally:
        handler.clock = lambda: datetime.now(UTC)
    assert run(capsys, "--home", str(home), "balances")[0] == 0  # seals yesterday afterwards
    with open_ledger(home / "ledger" / "vhc.duckdb") as ledger:
        seals = ledger.query("SELECT subject FROM control_events WHERE kind = 'log.day_sealed'")
    assert [s[0] for s in seals] == [yesterday.date().isoformat()]
    logs = next(c for c in doctor(capsys, home)[1] if c["area"] == "logs")
    assert logs["status"] == "ok", logs
    path = day_file(home / "logs" / "trading.log", yesterday.date())
    original = path.read_text()
    # An edited line breaks the chain.
    path.write_text(original.replace("yesterday line 1", "yesterday line X"))
    code, checks = doctor(capsys, home)
    bad = [c for c in checks if c["area"] == "logs"]
    assert code == 6 and "line 2" in bad[0]["detail"] and bad[0]["status"] == "fail"
    # Lines cut from the end of a sealed day are found too.
    path.write_text("".join(original.splitlines(keepends=True)[:-1]))
    bad = [c for c in doctor(capsys, home)[1] if c["area"] == "logs"]
    assert "does not end where the ledger sealed it" in bad[0]["detail"]
    # And a deleted day.
    os.remove(path)
    bad = [c for c in doctor(capsys, home)[1] if c["area"] == "logs"]
    assert any("file is gone" in c["detail"] for c in bad)


class _BinanceRestrictions:
    """Binance's GET /sapi/v1/account/apiRestrictions/ipRestriction, on 127.0.0.1."""

    def __init__(self, ips: list[str]) -> None:
        import http.server
        import threading

        answer = {"ipRestrict": "true" if ips else "false", "ipList": ips,
                  "updateTime": 1700000000000, "apiKey": "binance-test-key"}  # fmt: skip
        self.paths: list[str] = []
        paths = self.paths

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                paths.append(self.path)
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("on_key", "status", "words"),
    [
        (["203.0.113.5"], "ok", "restricted to 203.0.113.5"),
        (["198.51.100.7"], "warn", "restricted to 198.51.100.7, config lists 203.0.113.5"),
        ([], "warn", "ANY IP"),
    ],
)
def test_doctor_compares_the_ip_allowlist_with_binances_key_restrictions(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    on_key: list[str],
    status: str,
    words: str,
) -> None:
    server = _BinanceRestrictions(on_key)
    try:
        urls = {"api": {"sapi": f"{server.url}/sapi/v1"}}
        edit(home, lambda c: c["exchanges"].update({"binance": {
            "secrets": "env", "ip_allowlist": ["203.0.113.5"], "ccxt": {"urls": urls}}}))  # fmt: skip
        monkeypatch.setenv("BINANCE_API_KEY", "binance-test-key")
        monkeypatch.setenv("BINANCE_API_SECRET", "binance-test-secret")
        _, checks = doctor(capsys, home)
    finally:
        server.close()
    found = [c for c in checks if c["area"] == "ip allowlist"]
    assert len(found) == 1, checks
    assert found[0]["status"] == status and words in found[0]["detail"], found
    assert any(p.startswith("/sapi/v1/account/apiRestrictions/ipRestriction") for p in server.paths)
