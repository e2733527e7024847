"""Timing two implementations fairly on a shared machine, for the tutorials' side-by-side checks."""
import math
import time


def best_times(*fns, repeat=5):
    """Best time of each function over `repeat` rounds, after a warm-up. The functions take turns
    within each round, so that all of them see the same machine load."""
    for fn in fns:
        fn()
    best = [math.inf] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best
