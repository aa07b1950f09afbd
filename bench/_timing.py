"""Timing rules shared by bench/envelopes.py and bench/didcomm_peer.py.

Both sides import this file (stdlib only, so it also works inside the separate
didcomm venv), which is what makes their figures comparable: same clock, same pass
structure, same median, same garbage-collector and CPU-affinity policy.
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable

PASSES = 3


def pin_single_core() -> str:
    """Pin this process (and the children it starts later) to one CPU, so 'single
    core' is a fact rather than a hope. Returns a note for the report."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {allowed[-1]})
        return f"pinned to CPU {allowed[-1]}"
    except (AttributeError, OSError) as exc:  # not Linux, or not permitted
        return f"not pinned ({exc.__class__.__name__})"


def timed(fn: Callable[[], object], *, collect: bool = True) -> tuple[int, object]:
    """Run `fn` once with the GC off (as timeit does: a collection landing in one
    pass but not another is noise, not cost) and return (elapsed ns, result).
    `collect` first empties the GC's generations, outside the timed region."""
    if collect:
        gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        result = fn()
        elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed, result


def median_us(per_pass_ns: list[int], n: int) -> float:
    """Median over passes, in microseconds per operation."""
    return statistics.median(per_pass_ns) / n / 1000.0
