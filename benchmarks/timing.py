"""Timing one implementation: first step, steady state, and a synced loop.

The protocol, the same for every framework:

1. Data goes to the device (`net.prepare`) before any clock starts.
2. The first step is timed alone: it pays tracing, compilation, CUDA
   start-up and allocator warm-up (`first_step_s`).
3. Every later step is timed on its own, including the copy of its loss to
   the host. That copy waits for the device, so no GPU work escapes the
   clock. The first `warmup` of them are burn-in and not counted; the rest
   feed pytest-benchmark's `Stats` (median, IQR, ...).
4. Then `net.train` runs a loop that syncs only once, at the end: what a
   training loop that does not log every step pays (`loop_time_s`).
"""

import math
import os
import resource
import time

from pytest_benchmark.stats import Stats

STAT_FIELDS = ("median", "iqr", "min", "max", "mean", "stddev", "rounds")
UNSTABLE_IQR = 0.10  # IQR above 10 % of the median flags the timing, as pyperf does


def rss_bytes():
    """Resident memory of this process now."""
    import psutil

    return psutil.Process(os.getpid()).memory_info().rss


def max_rss_bytes():
    """The highest resident memory this process has reached (Linux: KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def summarize(durations):
    """pytest-benchmark statistics of step durations, as results.json keeps them."""
    stats = Stats()
    for duration in durations:
        stats.update(duration)
    if not stats:
        return None
    summary = {field: float(getattr(stats, field)) for field in STAT_FIELDS}
    summary["rounds"] = int(summary["rounds"])
    if summary["rounds"] < 2:
        summary["stddev"] = 0.0
    return summary


def is_unstable(step_time):
    return bool(step_time and step_time["median"] > 0 and step_time["iqr"] > UNSTABLE_IQR * step_time["median"])


def run_steps(net, x, y, steps, warmup, budget_s=None, min_rounds=20):
    """Train step by step, timing each step. Stops early on inf/NaN.

    With `budget_s`, stops once the timed steps have taken that long and at
    least `min_rounds` steps were counted (sweep sizes need no full run).
    Returns (losses, durations, diverged_at).
    """
    losses, durations = [], []
    clock = time.perf_counter
    spent = 0.0
    for t in range(steps):
        start = clock()
        loss = net.step(x, y)
        duration = clock() - start
        losses.append(loss)
        durations.append(duration)
        if not math.isfinite(loss):
            return losses, durations, t
        if t > warmup:
            spent += duration
            if budget_s is not None and spent >= budget_s and t - warmup >= min_rounds:
                break
    return losses, durations, None


def time_loop(net, x, y, steps):
    """Seconds for `steps` steps that sync only when the losses come back."""
    start = time.perf_counter()
    losses = net.train(x, y, steps)
    return time.perf_counter() - start, losses
