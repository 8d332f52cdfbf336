"""Timing shared by the benchmarks that compare two implementations in one run."""

from __future__ import annotations

import time
from collections.abc import Callable


def interleaved_best(a: Callable[[], object], b: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Best-of timings of `a` and `b` in seconds, alternating the two so that a busy machine slows
    both alike."""
    best_a = best_b = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        a()
        t1 = time.perf_counter()
        b()
        t2 = time.perf_counter()
        best_a, best_b = min(best_a, t1 - t0), min(best_b, t2 - t1)
    return best_a, best_b


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """The shortest of `repeat` timings of `fn`, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
