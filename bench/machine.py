"""How fast this machine is just now: a figure to read every other figure against.

The machines these benchmarks run on are shared: the same pure-Python loop takes 0.87 s on one
run and 1.6 s on the next (seen 7 December 2026). Each benchmark that compares with a target
prints this reference beside its figures, so two days' figures can be compared fairly.
"""

from __future__ import annotations

import time


def reference_seconds(runs: int = 3) -> float:
    """The best of `runs` timings of ten million integer additions in a Python loop."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return best


def describe() -> str:
    """One line: the reference loop's time (lower is a faster machine)."""
    return f"machine reference: 10M-add Python loop best of 3 {reference_seconds():.2f} s"


if __name__ == "__main__":
    print(describe())
