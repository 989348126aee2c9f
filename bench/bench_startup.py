"""Time vhc's start-up as whole processes: the every-minute check, an emergency, `--help`.

Usage: python bench/bench_startup.py [--runs R] [--ledger HOME] [--before SRC]

Prints, side by side (median of R runs after one warm-up; CPU is user + sys of the child):
- `vhc kill-switch --check` on HOME's ledger (build one with `python bench/bench_risk.py
  --check --keep DIR`: HOME is DIR/ws; without --ledger a fresh `vhc init` workspace);
- `vhc kill-switch --activate` on 3 paper accounts x 10 resting orders at 100 ms per call:
  when the state file said active (its mtime, from launch) and the whole process;
- `vhc --help` against a bare Typer app's `--help` (one command, same interpreter);
- the floor: the interpreter alone, `import duckdb`, and the config model (pydantic).
`--before SRC` runs the same with SRC/src first on PYTHONPATH (e.g. `git archive` of an older
commit unpacked in SRC), interleaved with this tree's runs so that load affects both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from vhc_bytecode import ensure_bytecode

VHC = str(Path(sys.executable).with_name("vhc"))
BARE_TYPER = """
import typer
app = typer.Typer()
@app.command()
def hello(name: str = "x") -> None:
    \"\"\"Say hello.\"\"\"
app()
"""


def run(command: list[str], env: dict[str, str], check: bool = True) -> tuple[float, float]:
    """(wall ms, CPU ms) of one child process."""
    before = os.times()
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = (time.perf_counter() - t0) * 1000
    after = os.times()
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}")
    cpu = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    return wall, cpu * 1000


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def timed(runs: int, once: Callable[[], tuple[float, ...]]) -> list[tuple[float, ...]]:
    once()  # warm-up: page cache, .pyc files
    return [once() for _ in range(runs)]


def paper_workspace(folder: Path, env: dict[str, str]) -> Path:
    """3 paper accounts at 100 ms per call (resting orders: see rest_orders)."""
    import yaml

    home = folder / "activate"
    subprocess.run([VHC, "init", str(home)], check=True, capture_output=True, env=env)
    config = home / "config" / "trading_config.yaml"
    data = yaml.safe_load(config.read_text())
    data["exchanges"] = {
        f"p{i}": {"id": "paper", "secrets": "none", "paper": {"latency_ms": 100}} for i in range(3)
    }
    config.write_text(yaml.safe_dump(data))
    subprocess.run(
        [VHC, "--home", str(home), "config", "apply"], capture_output=True, env=env, check=False
    )
    return home


def rest_orders(home: Path, env: dict[str, str]) -> None:
    for i in range(3):
        for _ in range(10):
            subprocess.run(
                [VHC, "--home", str(home), "-q", "trade", "buy", "BTC/USD", "0.001", "--type",
                 "limit", "--price", "1000", "--exchange", f"p{i}"],
                capture_output=True, env=env, check=False,
            )  # fmt: skip


def activation(home: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(state active after ms, whole process ms, CPU ms) of one --activate, then deactivated."""
    state = home / "state" / "kill_switch.json"
    launch = time.time()
    wall, cpu = run([VHC, "--home", str(home), "-q", "kill-switch", "--activate", "--reason",
                     "bench"], env, check=False)  # fmt: skip
    written = (json.loads(state.read_text()), state.stat().st_mtime)
    # The first write is the one that blocks; the report rewrites the file at the end, so the
    # blocking moment is read from the file's own `since` field.
    from datetime import datetime

    since = datetime.fromisoformat(written[0]["since"]).timestamp()
    # Reset for the next run: a fresh inactive file (a bench shortcut, not a deactivation).
    state.write_text(json.dumps({**written[0], "active": False}))
    return (since - launch) * 1000, wall, cpu


def report(label: str, rows: dict[str, list[tuple[float, ...]]], names: list[str]) -> None:
    print(f"\n{label}")
    for tree, samples in rows.items():
        cols = list(zip(*samples, strict=True))
        shown = ", ".join(f"{n} {median(list(c)):.0f} ms" for n, c in zip(names, cols, strict=True))
        print(f"  {tree:7s} {shown}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--ledger", type=Path, help="workspace whose ledger --check reads")
    ap.add_argument("--before", type=Path, help="an older source tree to compare with")
    args = ap.parse_args()
    print(ensure_bytecode())
    trees = {"after": dict(os.environ)}
    if args.before:
        old = dict(os.environ)
        old["PYTHONPATH"] = str(args.before / "src")
        trees["before"] = old
    folder = Path(tempfile.mkdtemp(prefix="vhc-bench-startup-"))
    home = args.ledger
    if home is None:
        home = folder / "ws"
        subprocess.run([VHC, "init", str(home)], check=True, capture_output=True)
    check = [VHC, "--home", str(home), "kill-switch", "--check"]
    samples: dict[str, dict[str, list[tuple[float, ...]]]] = {}
    for tree in trees:
        samples.setdefault("check", {})[tree] = []
        samples.setdefault("help", {})[tree] = []
    run(check, trees["after"])
    for _ in range(args.runs):
        for tree, env in trees.items():  # interleaved: the load hits both alike
            samples["check"][tree].append(run(check, env))
            samples["help"][tree].append(run([VHC, "--help"], env))
    bare = timed(args.runs, lambda: run([sys.executable, "-c", BARE_TYPER, "--help"], os.environ))
    floor = {
        "python -c pass": timed(args.runs, lambda: run([sys.executable, "-c", "pass"], os.environ)),
        "import duckdb": timed(
            args.runs, lambda: run([sys.executable, "-c", "import duckdb"], os.environ)
        ),
        "import ccxtkit.config (pydantic model)": timed(
            args.runs, lambda: run([sys.executable, "-c", "import ccxtkit.config"], os.environ)
        ),
    }
    act: dict[str, list[tuple[float, ...]]] = {}
    for tree, env in trees.items():
        ws = paper_workspace(folder / tree, env)
        rest_orders(ws, env)
        act[tree] = timed(args.runs // 2 or 1, lambda ws=ws, env=env: activation(ws, env))
    n = f"{args.runs} runs"
    print(
        f"vhc start-up ({n}; nproc {os.cpu_count()}, load {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}); ledger {home}"
    )
    report("vhc kill-switch --check, whole process", samples["check"], ["wall", "CPU"])
    report("vhc kill-switch --activate, 3 paper x 10 orders, 100 ms/call", act,
           ["state active after", "process", "CPU"])  # fmt: skip
    report("vhc --help", samples["help"], ["wall", "CPU"])
    bare_wall = median([s[0] for s in bare])
    bare_cpu = median([s[1] for s in bare])
    print(f"  bare Typer app --help: wall {bare_wall:.0f} ms, CPU {bare_cpu:.0f} ms")
    for tree, rows in samples["help"].items():
        ratio = median([s[1] for s in rows]) / bare_cpu
        print(f"  {tree}: vhc --help / bare Typer --help = {ratio:.2f}x (CPU)")
    print("\nfloor")
    for label, rows in floor.items():
        print(f"  {label}: wall {median([s[0] for s in rows]):.0f} ms, "
              f"CPU {median([s[1] for s in rows]):.0f} ms")  # fmt: skip
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
