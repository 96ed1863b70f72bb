"""The drift canary: a fixed reference workload timed beside every block of a run.

A shared machine changes speed from one minute to the next (a neighbour's
load, the host's frequency), and a run measured another day met another
machine. So `sidebyside run` keeps, for every round of every case, the time
of one fixed computation taken right beside that case's block: a numpy
forward and backward pass of the tutorial's two-layer net (float32, fixed
data, no update, so every repetition does the same work), the median of its
repetitions over CANARY_S. The case's round median over its canary's
(sidebyside/rounds.py `normalized`) is what the machine did not change.

It runs in a process of its own, pinned to the run's CPUs with the run's
thread count, started with the workers: the measured processes are never
touched by it, and its time does not depend on which implementation ran
before. It is timed between one implementation's process and the next, and
then waits for OpenBLAS's pool to stop spinning (sidebyside.peak.settle_s),
so that its threads take no time from the process that follows.

Run as `python -m sidebyside.canary THREADS [SECONDS]`: prints {"ready": true},
then answers every line on stdin with {"seconds": median per repetition,
"repetitions": n}.
"""

import json
import sys
import time

from sidebyside import fairness, peak
from sidebyside.processes import die_with_parent

CANARY_S = 0.04  # timed per block: about 150 repetitions of a 0.25 ms pass on 2 cores
SIZE = (64, 1000, 100, 10)  # the tutorial's: the work every two-layer step does
WARM = 3  # untimed repetitions first: the pool wakes up


def workload(seed=1234):
    """The canary's one repetition, as a function of nothing: forward and backward, no update."""
    import numpy as np

    N, D_in, H, D_out = SIZE
    generator = np.random.default_rng(seed)
    x, y = (generator.standard_normal(shape, dtype=np.float32) for shape in ((N, D_in), (N, D_out)))
    w1, w2 = (generator.standard_normal(shape, dtype=np.float32) for shape in ((D_in, H), (H, D_out)))

    def once():
        h = x @ w1
        h_relu = np.maximum(h, 0)
        grad_y_pred = 2.0 * (h_relu @ w2 - y)
        grad_h = grad_y_pred @ w2.T
        grad_h[h < 0] = 0
        return x.T @ grad_h, h_relu.T @ grad_y_pred

    return once


def measure(once, seconds=CANARY_S):
    """{"seconds": the median of the repetitions, "repetitions": n} over about `seconds`."""
    import statistics

    for _ in range(WARM):
        once()
    durations = []
    clock = time.perf_counter
    deadline = clock() + seconds
    while clock() < deadline or len(durations) < 5:
        begin = clock()
        once()
        durations.append(clock() - begin)
    return {"seconds": statistics.median(durations), "repetitions": len(durations)}


def serve(threads, seconds):
    """Pin, size the pools, then time the canary for each line that arrives."""
    die_with_parent()
    fairness.set_environment(threads)  # the same CPUs and pool sizes as every worker
    once = workload()
    answer = sys.stdout
    answer.write(json.dumps({"ready": True}) + "\n")
    answer.flush()
    for _ in sys.stdin:
        result = measure(once, seconds)
        time.sleep(peak.settle_s("numpy"))  # OpenBLAS's threads stop spinning before the next process runs
        answer.write(json.dumps(result) + "\n")
        answer.flush()


if __name__ == "__main__":
    try:
        threads = int(sys.argv[1])
        seconds = float(sys.argv[2]) if len(sys.argv) > 2 else CANARY_S
    except (IndexError, ValueError):
        sys.exit("usage: python -m sidebyside.canary THREADS [SECONDS]")
    try:
        serve(threads, seconds)
    except KeyboardInterrupt:
        pass
