"""How far `sidebyside run` and this suite agree on a step's median, measured, at every size's protocol.

    pytest benchmarks/test_protocol.py --benchmark-only --targets -s

Both ways build the case, time the first step and burn in with the same
code, and time the same steps with the same clock (a unit test,
tests/test_benchmark_suite.py, shows that without a clock): at the
tutorial size the run's 489 steps after the first and the burn-in, at a
sweep size (protocol.SWEEP_SIZE) as many as the run's budget holds. What is
left between them is the harness around the steps: pytest and its plug-ins
in one process, a worker per case in the other. This measures it: each way
runs in fresh processes, alternating, ATTEMPTS times, and the best median of
each counts (a shared machine can run a whole process 1.5x slow). The
ratio of every implementation at every size is printed and kept in
extra_info; above RATIO_LIMIT it fails.
"""

import protocol  # beside this file: pytest puts the folder of a test outside any package on the path
from sidebyside import implementations

ATTEMPTS = 3
RATIO_LIMIT = 1.25  # the README's "agree within 1.25x"
NAMES = ("numpy_manual", "torch_manual")
SWEEP = (protocol.SWEEP_SIZE,)


def compare(tmp_path, names, threads):
    best_suite, best_run = {}, {}
    for attempt in range(ATTEMPTS):
        ways = [("suite", lambda: protocol.suite_entries(tmp_path, names, threads, SWEEP)),
                ("run", lambda: protocol.run_entries(tmp_path, names, f"run-{attempt}", threads, SWEEP))]
        for way, entries in ways if attempt % 2 == 0 else reversed(ways):
            best = best_suite if way == "suite" else best_run
            for case, entry in entries().items():
                median = entry["stats"]["median"] if way == "suite" else entry["step_time"]["median"]
                best[case] = min(median, best.get(case, median))
    return {case: {"suite_s": best_suite[case], "run_s": best_run[case],
                   "ratio": max(best_suite[case], best_run[case]) / min(best_suite[case], best_run[case])}
            for case in best_suite}


def test_protocol(benchmark, threads, tmp_path):
    names = [name for name in NAMES if implementations.missing(name) is None]
    benchmark.group = "protocol"
    # The benchmark's one round is the whole comparison (all its processes).
    agreement = benchmark.pedantic(compare, args=(tmp_path, names, threads), rounds=1, iterations=1)
    for (name, size), item in agreement.items():
        label = protocol.size_label(size)
        print(f"{name} {label}: suite {item['suite_s'] * 1e6:.0f} µs, run {item['run_s'] * 1e6:.0f} µs per step, "
              f"{item['ratio']:.2f}x apart (limit {RATIO_LIMIT}x, best of {ATTEMPTS} each, {threads} threads)")
        benchmark.extra_info[f"ratio_{name}_{label}"] = item["ratio"]
    assert agreement and max(item["ratio"] for item in agreement.values()) <= RATIO_LIMIT, agreement
