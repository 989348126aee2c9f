"""`vhc serve` keeps the ledger open between its visits; other vhc processes still get it.

The keeper (ledger/keeper.py) holds the lock file and the DuckDB connection from one visit to
the next. These tests check, with real processes, that the lock's guarantees hold: another
process waiting for the ledger gets it promptly (the keeper lets go), sees every committed row,
and the keeper then reopens the file, with the chain intact.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ccxtkit.ledger import keeper
from ccxtkit.ledger.store import open_ledger
from ccxtkit.ledger.verify import verify_chain
from ccxtkit.workspace import init_workspace
from tests import signals_kit as kit
from tests.serve_process import ServeProcess
from tests.test_serve_webhooks import WEBHOOK, home_with

WRITER = """
import sys
from pathlib import Path
from ccxtkit.ledger.store import open_ledger
with open_ledger(Path(sys.argv[1]), 10) as ledger:
    ledger.record_event("test.other_process", {"n": 1})
print("written", flush=True)
"""


def lock_is_held(path: Path) -> bool:
    """Whether some process holds the ledger's lock file right now."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@pytest.fixture
def kept(tmp_path: Path):  # type: ignore[no-untyped-def]
    home = tmp_path / "ws"
    init_workspace(home)
    path = home / "ledger" / "vhc.duckdb"
    keeper.keep(path)
    yield path
    keeper.release(path)


def test_visits_reuse_one_open_file_and_another_process_still_gets_it(kept: Path) -> None:
    for i in range(3):
        with open_ledger(kept, 5) as ledger:
            ledger.record_event("test.kept", {"i": i})
    assert keeper.opens(kept) == 1  # three visits, one open
    assert lock_is_held(kept)  # held between visits

    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", WRITER, str(kept)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "written" in out.stdout
    # The writer waited for the keeper, not for its lock timeout (10 s) to run out.
    assert time.monotonic() - started < 8

    with open_ledger(kept, 5) as ledger:
        kinds = [r[0] for r in ledger.query("SELECT kind FROM control_events ORDER BY seq")]
        ledger.record_event("test.kept", {"i": 3})  # chained onto the other process's row
    assert keeper.opens(kept) == 2  # reopened after letting go
    assert kinds[-4:] == ["test.kept", "test.kept", "test.kept", "test.other_process"]
    keeper.release(kept)
    assert not lock_is_held(kept)
    with open_ledger(kept, 5, read_only=True) as ledger:
        assert verify_chain(ledger).ok


def test_a_failed_visit_closes_the_file_and_nothing_of_it_stays(kept: Path) -> None:
    with open_ledger(kept, 5) as ledger:
        ledger.record_event("test.kept", {"i": 0})
    with pytest.raises(RuntimeError), open_ledger(kept, 5) as ledger, ledger.transaction():
        ledger.record_event("test.rolled_back", {})
        raise RuntimeError("boom")
    assert not lock_is_held(kept)  # a visit that raised closed the file
    with open_ledger(kept, 5) as ledger:
        kinds = {r[0] for r in ledger.query("SELECT kind FROM control_events")}
        ledger.record_event("test.kept", {"i": 1})
    assert "test.rolled_back" not in kinds
    assert keeper.opens(kept) == 2
    keeper.release(kept)
    with open_ledger(kept, 5, read_only=True) as ledger:
        assert verify_chain(ledger).ok


def test_an_idle_keeper_lets_go(kept: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keeper, "IDLE_SECONDS", 0.2)
    with open_ledger(kept, 5) as ledger:
        ledger.record_event("test.kept", {})
    assert lock_is_held(kept)
    deadline = time.monotonic() + 10
    while lock_is_held(kept) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lock_is_held(kept)


def test_vhc_commands_work_while_serve_keeps_the_ledger(tmp_path, monkeypatch) -> None:
    home = home_with(tmp_path, monkeypatch)
    ledger = home / "ledger" / "vhc.duckdb"
    vhc = str(Path(sys.executable).with_name("vhc"))
    env = {**os.environ}
    with ServeProcess(home) as srv:
        for n in range(3):
            body = kit.sheets_body(f"kept-{n}")
            got = srv.call(
                "POST", WEBHOOK.format("sheets"), raw=body, headers=kit.sheets_headers(body)
            )
            assert got.status == 202, got
            assert lock_is_held(ledger)  # the server kept it after the commit
            # A vhc command in another process gets the ledger and sees what was accepted.
            out = subprocess.run(
                [vhc, "--home", str(home), "--json", "signals", "list"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            listed = {s["external_id"] for s in json.loads(out.stdout)}
            assert {f"kept-{i}" for i in range(n + 1)} <= listed
        assert srv.stop() == 0
    verify = subprocess.run(
        [vhc, "--home", str(home), "ledger", "verify"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stderr


def test_a_kill_switch_thrown_elsewhere_reaches_the_kept_ledger(tmp_path, monkeypatch) -> None:
    """`vhc kill-switch --activate` waits at most half a second for the ledger: serve lets go
    in time, so the activation is chained at once (not left in the outbox), and intake refuses."""
    from ccxtkit.ledger.outbox import outbox_path

    home = home_with(tmp_path, monkeypatch)
    ledger = home / "ledger" / "vhc.duckdb"
    vhc = str(Path(sys.executable).with_name("vhc"))
    with ServeProcess(home) as srv:
        body = kit.sheets_body("before-halt")
        got = srv.call("POST", WEBHOOK.format("sheets"), raw=body, headers=kit.sheets_headers(body))
        assert got.status == 202, got
        assert lock_is_held(ledger)
        out = subprocess.run(
            [vhc, "--home", str(home), "kill-switch", "--activate", "--reason", "drill"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        # Written to the ledger by the command itself: nothing waits in the outbox (serve has
        # had no visit since, so it could not have drained one).
        waiting = outbox_path(ledger)
        assert not waiting.exists() or waiting.read_text().strip() == ""
        body = kit.sheets_body("after-halt")
        got = srv.call("POST", WEBHOOK.format("sheets"), raw=body, headers=kit.sheets_headers(body))
        assert got.status == 503, got
        kinds = [r[0] for r in kit.rows(home, "SELECT kind FROM control_events ORDER BY seq")]
        assert "kill_switch.activate" in kinds
        assert srv.stop() == 0
