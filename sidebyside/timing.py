"""Timing one implementation: first step, steady state, and a synced loop.

The protocol, the same for every framework and for both ways of running
the suite (`sidebyside run` and `pytest benchmarks/ --benchmark-only`, which
both call `start` and `time_loop` from here):

1. Data goes to the device (`net.prepare`) before any clock starts.
2. `start`: the first step is timed alone: it pays tracing, compilation,
   CUDA start-up and allocator warm-up (`first_step_s`). `warmup` burn-in
   steps follow, not counted.
3. Every later step is timed on its own, including the copy of its loss to
   the host. That copy waits for the device, so no GPU work escapes the
   clock. The durations feed pytest-benchmark's `Stats` (median, IQR, ...).
   The CPU time of the process and its children over the same span gives
   `cpu_utilization`: how many cores the steps really kept busy.
4. `time_loop`: `net.train` runs a loop that syncs only once, at the end:
   what a training loop that does not log every step pays. One untimed
   loop of the same length runs first, so the timed one finds every
   compiled program and buffer it needs already made.

Memory: `PeakMemory` resets the kernel's high-water mark of resident memory
(`/proc/self/clear_refs`) when a case starts, so the growth it reports
belongs to that case alone, not to whatever ran earlier in the process.
"""

import math
import os
import time

import psutil
from pytest_benchmark.stats import Stats

from sidebyside.results import UNSTABLE_IQR, gflops, is_unstable  # noqa: F401  (UNSTABLE_IQR re-exported: one definition, in results.py)

CLOCK = time.perf_counter  # every duration here; pytest-benchmark times with the same clock

STAT_FIELDS = ("median", "iqr", "min", "max", "mean", "stddev", "rounds")


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


def record_steps(entry, durations, flops_per_step):
    """An entry's figures from its timed steps: the summary, the samples (for the runner), GFLOP/s."""
    entry["step_time"] = summarize(durations)
    entry["samples"] = durations  # the runner pools the rounds' samples; not saved as they are
    entry["unstable"] = is_unstable(entry["step_time"])
    entry["flops_per_step"] = flops_per_step
    if entry["step_time"]:
        entry["gflops"] = gflops(flops_per_step, entry["step_time"]["median"])


def cpu_seconds():
    """CPU time (user + system) of this process and of the children alive now.

    Children matter for torch_ddp, whose ranks do the arithmetic; the
    threads of this process are all counted by its own times.
    """
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:  # exited in between
            continue
    return total


class Clock:
    """Wall and CPU time over a span of timed steps."""

    def __init__(self):
        self.wall = time.perf_counter()
        self.cpu = cpu_seconds()

    def utilization(self):
        wall = time.perf_counter() - self.wall
        return (cpu_seconds() - self.cpu) / wall if wall > 0 else None


def start(net, x, y, warmup):
    """The first step, timed alone, then `warmup` untimed steps.

    Returns (losses, first_step_s, diverged_at).
    """
    begin = CLOCK()
    loss = net.step(x, y)
    first_step_s = CLOCK() - begin
    losses = [loss]
    if not math.isfinite(loss):
        return losses, first_step_s, 0
    for t in range(1, warmup + 1):
        losses.append(net.step(x, y))
        if not math.isfinite(losses[-1]):
            return losses, first_step_s, t
    return losses, first_step_s, None


def timed_steps(net, x, y, steps, budget_s=None, min_rounds=20, first_index=0):
    """Up to `steps` steps, each timed; stops early on inf/NaN.

    With `budget_s`, stops once the timed steps have taken that long and at
    least `min_rounds` were timed. Returns (losses, durations, diverged_at,
    cpu_utilization); diverged_at counts from `first_index`.
    """
    losses, durations = [], []
    clock = CLOCK
    spent = 0.0
    span = Clock()
    for t in range(steps):
        begin = clock()
        loss = net.step(x, y)
        duration = clock() - begin
        losses.append(loss)
        durations.append(duration)
        if not math.isfinite(loss):
            return losses, durations, first_index + t, span.utilization()
        spent += duration
        if budget_s is not None and spent >= budget_s and t + 1 >= min_rounds:
            break
    return losses, durations, None, span.utilization()


def time_loop(net, x, y, steps):
    """Seconds for `steps` steps that sync only when the losses come back.

    One untimed loop of the same length runs first (warm-up), then the
    timed one. Returns (seconds, losses of the timed loop).
    """
    net.train(x, y, steps)
    begin = CLOCK()
    losses = net.train(x, y, steps)
    return CLOCK() - begin, losses


class PeakMemory:
    """Peak resident-memory growth of one case, in bytes.

    Linux keeps a high-water mark of resident memory per process (VmHWM);
    writing "5" to /proc/self/clear_refs resets it to the current size. So
    the mark is reset when the case starts and read when it ends. Child
    processes the case started (torch_ddp's ranks) are counted with their
    own high-water marks: they exist for the case alone. Where the reset is
    not possible the growth is sampled instead (`method` says which).
    """

    def __init__(self):
        self.baseline = psutil.Process().memory_info().rss
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
            self.method = "VmHWM reset per case"
        except OSError:
            self.method = "resident memory sampled at the end"

    def growth(self):
        """Peak growth since the start, with the children's peaks added."""
        me = psutil.Process()
        peak = high_water_mark(me.pid) if self.method.startswith("VmHWM") else None
        peak = peak if peak is not None else me.memory_info().rss
        children = 0
        for child in me.children(recursive=True):
            children += high_water_mark(child.pid) or 0
        return max(peak - self.baseline, 0) + children


def high_water_mark(pid):
    """VmHWM of a process in bytes, or None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None

