"""Timing shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(repeats: int, func: Callable[[], object], *, warmup: bool = False) -> float:
    """Best wall time of ``repeats`` calls of ``func``, in seconds.

    The minimum is the least noisy statistic on a shared machine. With ``warmup`` one
    untimed call comes first (tracing, caches).
    """
    if warmup:
        func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)
