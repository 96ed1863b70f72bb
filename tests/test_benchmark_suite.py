"""The pytest-benchmark suite runs, groups, and records what a report needs."""

import json
import math
import os
import re
import subprocess
import sys

from benchmarks import protocol
from tests.conftest import ROOT


def test_benchmarks_record_machine_and_extra_info(tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "-q", "-p", "no:cacheprovider",
         "--impl", "numpy_manual", "--impl", "torch_manual", "--device", "all", "--no-sweep",
         "--threads", "1", "--benchmark-max-time", "0.05", "--benchmark-json", str(output)],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads(output.read_text())
    machine = document["machine_info"]
    for key in ("frameworks", "blas", "peak_gflops", "threads", "env", "tf32"):
        assert key in machine
    assert machine["peak_gflops"]["cpu"]["float32"] > machine["peak_gflops"]["cpu"]["float64"] > 0
    assert machine["threads"]["requested"] == 1
    groups = {benchmark["group"] for benchmark in document["benchmarks"]}
    assert groups == {"cpu 64,1000,100,10 step", "cpu 64,1000,100,10 loop of 50"}
    steps = {benchmark["name"]: benchmark["stats"]["rounds"] for benchmark in document["benchmarks"]
             if benchmark["group"].endswith("step")}
    assert set(steps.values()) == {489}, "as many timed steps as sidebyside run counts: 500 - 1 - 10 burn-in"
    for benchmark in document["benchmarks"]:
        info = benchmark["extra_info"]
        assert info["threads"] == 1 and info["device"] == "cpu"
        assert info["first_step_s"] > 0 and info["gflops"] > 0 and info["flops_per_step"] > 0
        assert {"implementation", "framework", "backend", "dtype", "kernels", "N", "D_in", "H", "D_out"} <= set(info)
    cuda_skips = re.findall(r"n/a: no CUDA device", result.stdout)
    assert cuda_skips, "without a GPU the CUDA cases skip and say why"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2, "the quick start has exactly two commands"
    assert commands[0].endswith("sidebyside run")
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_run_and_the_pytest_benchmark_suite_time_the_same_steps(tmp_path):
    """One protocol, shown without a clock: both ways time the same steps.

    The suite's net, after its timed rounds, has trained exactly as many
    steps as `sidebyside run` does, and stands at the same loss: the last of
    the run's trajectory (same data, weights, steps; one thread, so the
    same sums). One step more or less moves this loss by about 1 %. Both
    time each step with the same clock. How far the two ways' medians agree
    is a measurement, not a unit test: benchmarks/test_protocol.py prints it.
    """
    from sidebyside import timing
    from tests.test_cli import available

    names = available("numpy_manual", "torch_manual")
    suite = protocol.suite_entries(tmp_path, names)
    run = protocol.run_entries(tmp_path, names, "run")
    assert set(suite) == set(run) == set(names)
    for name in names:
        timed, entry = suite[name], run[name]
        assert timed["stats"]["rounds"] == entry["step_time"]["rounds"]
        assert timed["extra_info"]["steps_trained"] == len(entry["losses"]) == 500
        assert math.isclose(timed["extra_info"]["last_loss"], entry["losses"][-1], rel_tol=1e-5), name
        assert not math.isclose(entry["losses"][-2], entry["losses"][-1], rel_tol=1e-5), "a step moves the loss"
    assert protocol.suite_timer(tmp_path) == timing.CLOCK.__name__ == "perf_counter"
