"""The pytest-benchmark suite runs, groups, and records what a report needs."""

import json
import math
import os
import re
import subprocess
import sys

import pytest

from benchmarks import protocol
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e  # the pytest-benchmark suite and sidebyside run, in processes of their own


def test_benchmarks_record_machine_and_extra_info(tmp_path):
    from tests.test_cli import available

    output = tmp_path / "bench.json"
    ranked = available("torch_ddp")  # 2 ranks on 1 thread: left out, as `sidebyside run` leaves it out
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "-q", "-rs", "-p", "no:cacheprovider",
         "--impl", "numpy_manual", "--impl", "torch_manual", *[f"--impl={name}" for name in ranked],
         "--device", "all", "--no-sweep",
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
    if ranked:
        assert "n/a: 2 ranks need at least 2 threads (--threads 1)" in result.stdout


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2, "the quick start has exactly two commands"
    assert commands[0].endswith("sidebyside run")
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


def test_run_and_the_pytest_benchmark_suite_time_the_same_steps(tmp_path):
    """One protocol at every size, shown without a clock: both ways time the same steps.

    At the tutorial size the suite's net, after its timed rounds, has
    trained exactly as many steps as `sidebyside run` does, and stands at
    the same loss: the last of the run's trajectory (same data, weights,
    steps; one thread, so the same sums). One step more or less moves this
    loss by about 1 %. At a sweep size the run times steps until they have
    spent its budget, so the two counts differ by a few; both burn in alike,
    the suite counts its steps from the run's own budget and fewest steps
    (`tasks.budget_steps`), and stands at the float64 reference's loss for
    the steps it says it trained. Both time each step with the same clock.
    How far the two ways' medians agree is a measurement, not a unit test:
    benchmarks/test_protocol.py prints it.
    """
    from sidebyside import timing
    from sidebyside.workloads.two_layer.tasks import TUTORIAL_SIZE, sweep_learning_rate
    from sidebyside.implementations.two_layer.problem import Problem, make_data
    from sidebyside.workloads.two_layer import agreement, tasks
    from tests.test_cli import available

    names = available("numpy_manual", "torch_manual")
    sweep = protocol.SWEEP_SIZE
    suite = protocol.suite_entries(tmp_path, names, sweep=[sweep])
    run = protocol.run_entries(tmp_path, names, "run", sweep=[sweep])
    assert set(suite) == set(run) == {(name, size) for name in names for size in (TUTORIAL_SIZE, sweep)}
    for name in names:
        timed, entry = suite[name, TUTORIAL_SIZE], run[name, TUTORIAL_SIZE]
        assert timed["stats"]["rounds"] == entry["step_time"]["rounds"]
        assert timed["extra_info"]["steps_trained"] == len(entry["losses"]) == 500
        assert math.isclose(timed["extra_info"]["last_loss"], entry["losses"][-1], rel_tol=1e-5), name
        assert not math.isclose(entry["losses"][-2], entry["losses"][-1], rel_tol=1e-5), "a step moves the loss"

    config = json.loads((tmp_path / "run" / "results.json").read_text())["config"]
    problem = Problem(*sweep, learning_rate=sweep_learning_rate(config["options"]["learning_rate"], sweep),
                      steps=max(suite[name, sweep]["extra_info"]["steps_trained"] for name in names) + 1,
                      seed=config["seed"], dtype="float64")
    x, y, w1, w2 = make_data(problem)
    reference = agreement.reference_losses(x, y, w1, w2, problem.learning_rate, problem.steps)
    for name in names:
        timed, entry = suite[name, sweep], run[name, sweep]
        info, rounds = timed["extra_info"], timed["stats"]["rounds"]
        burn_in = len(entry["losses"]) - 1 - entry["step_time"]["rounds"]
        assert info["steps_trained"] - 1 - rounds == burn_in, "the run's burn-in"
        planned = {"steps": config["steps"], "warmup": burn_in, "budget_s": config["sweep_budget_s"],
                   "min_steps": config["min_timed_steps"]}
        assert rounds == tasks.budget_steps(planned, info["burn_in_step_s"]), "the run's budget, counted in advance"
        assert config["min_timed_steps"] <= rounds <= config["steps"] - 1 - burn_in
        trained = info["steps_trained"]
        assert math.isclose(info["last_loss"], reference[trained - 1], rel_tol=1e-4), name
        assert not math.isclose(info["last_loss"], reference[trained], rel_tol=1e-4), "a step moves the loss"
    assert protocol.suite_timer(tmp_path) == timing.CLOCK.__name__ == "perf_counter"
