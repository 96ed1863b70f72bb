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
   `cpu_utilization`: how many cores the steps really kept busy. Pinned to
   T CPUs, a process cannot keep more than T busy, however many threads it
   runs, so a thread `Runnable` counts its threads waiting for a CPU
   meanwhile (oversubscription shows there, not in `cpu_utilization`).
4. `time_loop`: `net.train` runs a loop that syncs only once, at the end:
   what a training loop that does not log every step pays. One untimed
   loop of the same length runs first, so the timed one finds every
   compiled program and buffer it needs already made.

Memory (`case_memory`) has one meaning: the most bytes a case adds above
what its process held at the case's start. On the CPU that is resident
memory (`PeakMemory`: the kernel's high-water mark, reset when the case
starts), on a GPU the framework's allocated device memory (`GpuPeak`); None
("n/a") where the peak cannot be reset. The cases of one implementation
share a process, largest first (the workloads' `tasks`), so a reset that
did nothing would show: a smaller case would inherit the larger's peak.
"""

import ctypes
import gc
import math
import os
import statistics
import threading
import time

import psutil
from pytest_benchmark.stats import Stats

from sidebyside.fairness import default_threads
from sidebyside.frameworks import adapter, gpu_peak_bytes
from sidebyside.implementations import one_line
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


SAMPLE_EVERY_S = 0.02  # the runnable-thread sampler's period


def runnable_threads(skip=None):
    """How many threads of this process are runnable now (state R: on a CPU or waiting for one); None without /proc.

    psutil reports no thread's state, so each thread's /proc stat is read
    (raw bytes, no file objects: the reads run beside the timed steps).
    `skip` is a thread id to leave out (the sampler's own).
    """
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:  # not Linux
        return None
    count = 0
    for task in tasks:
        if task == skip:
            continue
        try:
            fd = os.open(f"/proc/self/task/{task}/stat", os.O_RDONLY)
            try:
                stat = os.read(fd, 1024)
            finally:
                os.close(fd)
        except OSError:  # the thread ended in between
            continue
        count += stat[stat.rfind(b")") + 2:][:1] == b"R"  # the state follows the name, which may hold spaces
    return count


class Runnable:
    """This process's runnable threads, sampled by a thread of its own every SAMPLE_EVERY_S while `with` lasts.

    More runnable threads than CPUs in the affinity mask is oversubscription:
    threads wait for a CPU in the middle of a step. `cpu_utilization` cannot
    show it under pinning (T CPUs never give more than T CPU seconds a
    second); this count can. The sampler sleeps between samples, leaves
    itself out, and is stopped and joined when the block ends.
    """

    def __enter__(self):
        self.counts = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, name="sidebyside-runnable", daemon=True)
        self.thread.start()
        return self

    def sample(self):
        me = str(threading.get_native_id())
        while True:
            count = runnable_threads(skip=me)
            if count is None:
                return
            self.counts.append(count)
            if self.done.wait(SAMPLE_EVERY_S):
                return

    def __exit__(self, *exc_info):
        self.done.set()
        self.thread.join()

    def summary(self):
        """{"median", "max", "samples", "cpus"}: the counts against the CPUs in the mask; None without a sample."""
        if not self.counts:
            return None
        return {"median": float(statistics.median(self.counts)), "max": max(self.counts),
                "samples": len(self.counts), "cpus": default_threads()}


def timed_steps(net, x, y, steps, budget_s=None, min_rounds=20, first_index=0, extra=None):
    """Up to `steps` steps, each timed; stops early on inf/NaN.

    With `budget_s`, stops once the timed steps have taken that long and at
    least `min_rounds` were timed. Returns (losses, durations, diverged_at,
    cpu_utilization); diverged_at counts from `first_index`. The runnable
    threads are sampled throughout (`Runnable`), so every round runs beside
    the same sampler; with `extra` (an entry's) their summary is recorded
    there as `runnable_threads`.
    """
    losses, durations = [], []
    clock = CLOCK
    spent = 0.0
    diverged_at = None
    with Runnable() as runnable:
        span = Clock()
        for t in range(steps):
            begin = clock()
            loss = net.step(x, y)
            duration = clock() - begin
            losses.append(loss)
            durations.append(duration)
            if not math.isfinite(loss):
                diverged_at = first_index + t
                break
            spent += duration
            if budget_s is not None and spent >= budget_s and t + 1 >= min_rounds:
                break
        utilization = span.utilization()
    sample = runnable.summary()
    if extra is not None and sample:
        extra["runnable_threads"] = sample
    return losses, durations, diverged_at, utilization


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
    """The most resident memory one case adds above its process's at the case's start, in bytes.

    Linux keeps a high-water mark of resident memory per process (VmHWM);
    writing "5" to /proc/self/clear_refs resets it to the current size. At
    the case's start, garbage is collected and the C heap's free pages go
    back to the kernel (`trim_heap`): memory an earlier case freed but malloc
    kept would otherwise be reused unseen, and the case would look smaller.
    Then the resident size is the baseline and the mark is reset; at the end
    the mark, less the baseline, is the figure. Where the mark cannot be
    reset the figure is None ("n/a"), and `method` says why: a peak reached
    before the case would be counted as the case's.
    """

    def __init__(self):
        gc.collect()
        trim_heap()
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
            self.method = RESIDENT
        except OSError:
            self.method = "n/a: the high-water mark of resident memory cannot be reset here (/proc/self/clear_refs)"
        self.baseline = psutil.Process().memory_info().rss

    def growth(self):
        peak = high_water_mark(os.getpid()) if self.method == RESIDENT else None
        return None if peak is None else max(peak - self.baseline, 0)


RESIDENT = "resident memory above the case's start (VmHWM reset per case)"


class GpuPeak:
    """The most device memory one case allocates above what was allocated at its start, in bytes.

    The framework's own peak (torch.cuda.max_memory_allocated, TensorFlow's
    memory info) is reset when the case starts and what is allocated then is
    the baseline. JAX keeps one peak over the process's life, which no case
    can reset: its figure is None ("n/a"), and `method` says why.
    """

    def __init__(self, framework):
        self.framework = framework
        try:
            self.baseline = adapter(framework).reset_peak("cuda")
            self.method = f"device memory allocated above the case's start ({framework}'s peak, reset per case)"
        except Exception as error:  # no reset, no device, no adapter
            self.baseline, self.method = None, f"n/a: {one_line(error)}"

    def growth(self):
        peak = gpu_peak_bytes(self.framework) if self.baseline is not None else None
        return None if peak is None else max(peak - self.baseline, 0)


def case_memory(framework, device):
    """Start counting one case's memory: on the GPU the framework's own count, else resident memory."""
    return GpuPeak(framework) if device == "cuda" else PeakMemory()


def trim_heap():
    """Hand the C heap's free pages back to the kernel (glibc's malloc_trim); nothing elsewhere."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


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

