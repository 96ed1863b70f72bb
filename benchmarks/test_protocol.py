"""How far `sidebyside run` and this suite agree on a step's median, measured.

    pytest benchmarks/test_protocol.py --benchmark-only --targets -s

Both ways build the case, time the first step and burn in with the same
code, and time the same 489 steps with the same clock (a unit test,
tests/test_benchmark_suite.py, shows that without a clock). What is left
between them is the harness around the steps: pytest and its plug-ins in
one process, a worker per case in the other. This measures it: each way
runs in fresh processes, alternating, ATTEMPTS times, and the best median of
each counts (a shared machine can run a whole process 1.5x slow). The
ratio is printed and kept in extra_info; above RATIO_LIMIT it fails.
"""

from benchmarks import protocol
from sidebyside import implementations

ATTEMPTS = 3
RATIO_LIMIT = 1.25  # the README's "agree within 1.25x"
NAMES = ("numpy_manual", "torch_manual")


def compare(tmp_path, names, threads):
    best_suite, best_run = {}, {}
    for attempt in range(ATTEMPTS):
        ways = [("suite", lambda: protocol.suite_entries(tmp_path, names, threads)),
                ("run", lambda: protocol.run_entries(tmp_path, names, f"run-{attempt}", threads))]
        for way, entries in ways if attempt % 2 == 0 else reversed(ways):
            best = best_suite if way == "suite" else best_run
            for name, entry in entries().items():
                median = entry["stats"]["median"] if way == "suite" else entry["step_time"]["median"]
                best[name] = min(median, best.get(name, median))
    return {name: {"suite_s": best_suite[name], "run_s": best_run[name],
                   "ratio": max(best_suite[name], best_run[name]) / min(best_suite[name], best_run[name])}
            for name in names}


def test_protocol(benchmark, threads, tmp_path):
    names = [name for name in NAMES if implementations.missing(name) is None]
    benchmark.group = "protocol"
    # The benchmark's one round is the whole comparison (all its processes).
    agreement = benchmark.pedantic(compare, args=(tmp_path, names, threads), rounds=1, iterations=1)
    for name, item in agreement.items():
        print(f"{name}: suite {item['suite_s'] * 1e6:.0f} µs, run {item['run_s'] * 1e6:.0f} µs per step, "
              f"{item['ratio']:.2f}x apart (limit {RATIO_LIMIT}x, best of {ATTEMPTS} each, {threads} threads)")
        benchmark.extra_info[f"ratio_{name}"] = item["ratio"]
    assert agreement and max(item["ratio"] for item in agreement.values()) <= RATIO_LIMIT, agreement
