"""One writer at a time, across real processes: wait, then exit 7; nothing lost or doubled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccxtkit.ledger.outbox import outbox_path, queue_event
from ccxtkit.ledger.store import open_ledger
from ccxtkit.ledger.verify import verify_chain
from ccxtkit.workspace import init_workspace

VHC = [sys.executable, "-m", "ccxtkit"]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    init_workspace(home)
    return home


def ledger_path(home: Path) -> Path:
    return home / "ledger" / "vhc.duckdb"


def config_with_wait(home: Path, seconds: str, name: str) -> Path:
    """A copy of the workspace config with another ledger.lock_wait_seconds."""
    text = (home / "config" / "trading_config.yaml").read_text()
    assert "lock_wait_seconds: 30" in text
    path = home / "config" / name
    path.write_text(text.replace("lock_wait_seconds: 30", f"lock_wait_seconds: {seconds}"))
    os.chmod(path, 0o600)
    return path


HOLDER = """
import sys, time
from pathlib import Path
from ccxtkit.ledger.store import open_ledger
with open_ledger(Path(sys.argv[1]), 5) as ledger:
    ledger.record_event("test.holder", {"held": True})
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture
def hold() -> Iterator[object]:
    """Start a process that holds the ledger for N seconds; always stopped at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(path: Path, seconds: float) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_second_process_waits_then_exits_7(ws: Path, hold: object) -> None:
    short = config_with_wait(ws, "1", "short.yaml")
    long = config_with_wait(ws, "20", "long.yaml")
    # 8 s: long enough that a loaded machine's slow start-up still finds the holder there.
    holder = hold(ledger_path(ws), 8.0)  # type: ignore[operator]
    t0 = time.monotonic()
    busy = subprocess.Popen(
        [*VHC, "--home", str(ws), "--config", str(short), "ledger", "verify"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    patient = subprocess.Popen(
        [*VHC, "--home", str(ws), "--config", str(long), "--json", "ledger", "verify"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = busy.communicate(timeout=30)
    busy_elapsed = time.monotonic() - t0
    assert busy.returncode == 7, err
    assert 1.0 <= busy_elapsed < 7.5, busy_elapsed  # gave up after its 1 s, holder still there
    assert holder.poll() is None
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "in use by another vhc process" in lines[0] and "lock_wait_seconds" in lines[0]
    out, err = patient.communicate(timeout=30)
    patient_elapsed = time.monotonic() - t0
    assert patient.returncode == 0, err
    assert patient_elapsed >= 6.5  # it waited for the holder to finish
    assert json.loads(out)["ok"] is True
    holder.wait(timeout=10)
    with open_ledger(ledger_path(ws), 5) as ledger:
        kinds = [r[0] for r in ledger.query("SELECT kind FROM control_events ORDER BY seq")]
        assert verify_chain(ledger).ok
    # The busy process recorded nothing; the patient one verified and recorded nothing either.
    from ccxtkit.ledger.schema import MIGRATIONS

    migrations = ["ledger.migration"] * len(MIGRATIONS)
    assert kinds == [*migrations, "workspace.init", "policy.recorded", "test.holder"]


WRITER = """
import sys
from pathlib import Path
from ccxtkit.ledger.store import open_ledger
path, who = Path(sys.argv[1]), sys.argv[2]
for batch in range(10):
    with open_ledger(path, 60) as ledger:
        for i in range(5):
            ledger.record_event("test.concurrent", {"who": who, "n": batch * 5 + i}, actor=who)
"""


def test_concurrent_writers_lose_and_double_nothing(ws: Path) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(ledger_path(ws)), f"w{p}"])
        for p in range(4)
    ]
    try:
        for proc in procs:
            assert proc.wait(timeout=60) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    with open_ledger(ledger_path(ws), 5) as ledger:
        rows = ledger.query(
            "SELECT actor, details FROM control_events WHERE kind = 'test.concurrent'"
        )
        result = verify_chain(ledger)
    assert result.ok, result.problem
    from ccxtkit.ledger.schema import MIGRATIONS

    # The migrations, init, policy, paper opening balance, 4 x 50.
    assert result.rows == len(MIGRATIONS) + 203
    seen = sorted((actor, json.loads(details)["n"]) for actor, details in rows)
    assert seen == sorted((f"w{p}", n) for p in range(4) for n in range(50))


def test_outbox_event_recorded_exactly_once(ws: Path, hold: object, tmp_path: Path) -> None:
    path = ledger_path(ws)
    holder = hold(path, 1.5)  # type: ignore[operator]
    t0 = time.monotonic()
    entry = queue_event(path, "kill_switch.activate", {"reason": "test"}, actor="ops")
    assert time.monotonic() - t0 < 0.5  # never waits on the ledger lock
    assert holder.poll() is None
    holder.wait(timeout=10)
    backup = tmp_path / "outbox.backup"
    shutil.copy(outbox_path(path), backup)

    def recorded() -> list[str]:
        with open_ledger(path, 5) as ledger:
            assert verify_chain(ledger).ok
            return [
                r[0]
                for r in ledger.query(
                    "SELECT details FROM control_events WHERE kind = 'kill_switch.activate'"
                )
            ]

    first = recorded()
    assert len(first) == 1 and json.loads(first[0])["outbox_id"] == entry
    assert outbox_path(path).stat().st_size == 0
    # A crash after the ledger commit but before the file was emptied: the event is still queued.
    shutil.copy(backup, outbox_path(path))
    assert recorded() == first
    assert outbox_path(path).stat().st_size == 0
    # A later event still goes through.
    queue_event(path, "kill_switch.activate", {"reason": "again"}, actor="ops")
    assert len(recorded()) == 2


def test_lock_file_is_private(ws: Path) -> None:
    lock = ledger_path(ws).with_name("vhc.duckdb.lock")
    assert lock.exists() and lock.stat().st_mode & 0o077 == 0
    assert ledger_path(ws).stat().st_mode & 0o777 == 0o600
