"""Timing helper shared by the benchmarks (run from bench/, which is on sys.path)."""

import statistics
import time


def min_and_median(f, runs: int = 3):
    """(least, median) wall seconds of `runs` calls of `f`."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)
