"""What `sidebyside run` does with processes, threads and memory, measured.

Each claim is checked by its effect, not by the setting: threads by the CPU
time over the wall time of the timed steps, memory by figures that grow
with the problem, fresh processes by their process ids, and the stop on
SIGTERM or on the runner's death by looking for the processes afterwards.
"""

import json
import os
import signal
import statistics
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

from sidebyside.results import load_results
from tests.conftest import ROOT
from tests.test_cli import available, sidebyside

pytestmark = pytest.mark.e2e

BASE = ["run", "--workload", "two_layer", "--device", "cpu", "--no-report", "--no-sweep", "--dtype", "float32"]
QUICK = [*BASE, "--quick"]  # a short peak measurement; steps and rounds are set by each test


def entries(out):
    return json.loads((out / "results.json").read_text())["results"]


def arguments_for(names):
    return [argument for name in names for argument in ("--impl", name)]


def test_threads_are_enforced_and_measured(tmp_path):
    """--threads 1: every framework, XLA included, keeps at most about one core busy."""
    names = available("numpy_manual", "torch_manual", "jax_jit", "tf_function_xla")
    out = tmp_path / "one"
    result = sidebyside(*QUICK, *arguments_for(names), "--threads", "1", "--size", "256,2000,1000,10",
                        "--steps", "40", "--learning-rate", "1e-9", "--rounds", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    for entry in entries(out):
        assert entry["status"] == "ok", entry
        assert entry["extra"]["threads_cpus"] == "0" or len(entry["extra"]["threads_cpus"].split(",")) == 1
        assert 0 < entry["cpu_utilization"] <= 1.2, (entry["implementation"], entry["cpu_utilization"])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to tell one thread from two")
def test_two_threads_do_use_two_cores(tmp_path):
    """The measure can tell: with two threads, a large product keeps more than one core busy."""
    busy = psutil.cpu_percent(interval=1.0)  # every CPU, over one second, before we start anything
    if busy > 25:
        pytest.skip(f"machine busy ({busy:.0f} % of its CPUs used by other work): the second core is not ours")
    names = available("numpy_manual", "torch_manual")
    out = tmp_path / "two"
    result = sidebyside(*QUICK, *arguments_for(names), "--threads", "2", "--size", "512,2000,2000,10",
                        "--steps", "30", "--learning-rate", "1e-9", "--rounds", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    utilization = {entry["implementation"]: entry["cpu_utilization"] for entry in entries(out)}
    assert max(utilization.values()) > 1.2, utilization


def test_memory_is_per_case_and_grows_with_the_problem(tmp_path):
    """Two sizes in one process each, the larger first: each case's memory is what it adds.

    The oracle is the problem's own count of its arrays (Problem.bytes_needed:
    the float64 draws, the data, weights, gradients and activations). The
    larger case runs first, so a high-water mark that was never reset would
    give the smaller case at least the larger one's peak.
    """
    from sidebyside.implementations.two_layer.problem import Problem

    names = available("numpy_manual", "torch_manual", "torch_nn", "jax_jit")
    out = tmp_path / "memory"
    result = sidebyside(*QUICK, *arguments_for(names), "--threads", "1", "--size", "64,1000,100,10",
                        "--size", "4096,1000,100,10", "--steps", "20", "--learning-rate", "1e-9", "--rounds", "1",
                        "--out", str(out))
    assert result.returncode == 0, result.stderr
    by_case = {(entry["implementation"], entry["size"]["N"]): entry["peak_memory_bytes"] for entry in entries(out)}
    small, large = (Problem(N=N, D_in=1000, H=100, D_out=10).bytes_needed() for N in (64, 4096))
    for name in names:
        assert 0.6 * large < by_case[name, 4096] < 2 * large, (name, by_case[name, 4096], large)
        assert by_case[name, 64] < by_case[name, 4096] / 2, (name, by_case)
    assert by_case["numpy_manual", 64] < 4 * small, "numpy at the tutorial size adds its arrays, not MBs more"


REGISTER_PID_NETS = """
from sidebyside import implementations
for name in ("numpy_pid_a", "numpy_pid_b"):
    implementations.REGISTRY[name] = implementations.Implementation(
        name, "tests.stubs.pid_net", "numpy", ("numpy",), "numpy")
"""


def test_every_implementation_runs_in_a_fresh_process_each_round(tmp_path):
    """Two implementations of two sizes, three rounds: six processes, each new.

    The nets write down their own process ids (tests/stubs/pid_net.py): one
    process per implementation per round, its cases the largest first (round
    1 starts with the warm-up's tiny net), and no process id seen twice.
    """
    site, out, log = tmp_path / "site", tmp_path / "rounds", tmp_path / "pids"
    site.mkdir()
    (site / "sitecustomize.py").write_text(REGISTER_PID_NETS)
    result = sidebyside(*QUICK, "--impl", "numpy_pid_a", "--impl", "numpy_pid_b", "--size", "64,1000,100,10",
                        "--size", "64,1000,400,10", "--learning-rate", "1e-8", "--threads", "1", "--steps", "60",
                        "--rounds", "3", "--out", str(out),
                        env={"PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "SIDEBYSIDE_PID_LOG": str(log)})
    assert result.returncode == 0, result.stderr
    processes = []  # [pid, [H of each net it built, in order]], one per run of lines from one process
    for pid, H in (map(int, line.split()) for line in log.read_text().splitlines()):
        if not processes or processes[-1][0] != pid:
            processes.append([pid, []])
        processes[-1][1].append(H)
    pids = [pid for pid, _ in processes]
    assert len(pids) == 6 and len(set(pids)) == 6 and os.getpid() not in pids, processes
    assert [cases for _, cases in processes] == [[4, 400, 100]] * 2 + [[400, 100]] * 4, processes
    document = json.loads((out / "results.json").read_text())
    assert len(document["rounds"]) == 3 and all(len(order) == 2 for order in document["rounds"])
    for entry in document["results"]:
        rounds = entry["step_time"]["round_medians"]
        assert len(rounds) == 3 and all(value > 0 for value in rounds)
        assert min(rounds) <= entry["step_time"]["median"] <= max(rounds) * 1.5
        # Every timed step of every round is kept (for later significance tests), rounded to 4 digits.
        samples = entry["step_time"]["samples"]
        assert len(samples) == entry["step_time"]["rounds"] and all(value > 0 for value in samples)
        # The entry's median is the median of its round medians: each round one vote, not each step.
        assert entry["step_time"]["median"] == statistics.median(rounds)
        assert len(entry["step_time"]["canary"]) == 3 and all(value > 0 for value in entry["step_time"]["canary"])


def descendants(process):
    return [child.pid for child in process.children(recursive=True)]


def still_running(pids):
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def start_long_run(out, names, extra=()):
    command = [sys.executable, "-m", "sidebyside.cli", *BASE, "--threads", "2", "--steps", "4000",
               "--rounds", "1", "--out", str(out), *arguments_for(names), *extra]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(condition, seconds, process):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"condition not reached within {seconds} s")


def has_entry(out):
    try:
        return bool(entries(out))
    except (OSError, ValueError):
        return False


def test_sigterm_stops_like_ctrl_c_and_leaves_nothing_behind(tmp_path):
    out = tmp_path / "terminated"
    names = available("numpy_manual", "torch_manual", "torch_nn")
    process = start_long_run(out, names)
    parent = psutil.Process(process.pid)
    wait_until(lambda: has_entry(out) and len(descendants(parent)) >= 2, 180, process)
    spawned = descendants(parent)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "terminated" in stderr and f"--resume {out}" in stderr
    load_results(out / "results.json")  # whole and valid
    time.sleep(5)
    assert still_running(spawned) == [], "no process of the run is left 5 s later"


def test_workers_and_ranks_exit_when_the_runner_is_killed(tmp_path):
    """SIGKILL gives the runner no chance to clean up: its workers (and DDP's ranks) must notice."""
    out = tmp_path / "killed"
    names = available("torch_ddp") or available("numpy_manual")
    process = start_long_run(out, names, ("--steps", "200000"))
    parent = psutil.Process(process.pid)
    least = 5 if names == ["torch_ddp"] else 2  # zygote, child (and torchrun with two ranks)
    wait_until(lambda: len(descendants(parent)) >= least, 180, process)
    time.sleep(1)
    spawned = descendants(parent)
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while still_running(spawned) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert still_running(spawned) == [], f"left running: {still_running(spawned)}"


REGISTER_WRONG = """
from sidebyside import implementations
implementations.REGISTRY["numpy_wrong"] = implementations.Implementation(
    "numpy_wrong", "tests.stubs.wrong_net", "numpy", ("numpy",), "numpy")
"""


def test_a_wrong_implementation_is_reported_disagrees_and_never_ranked(tmp_path):
    from sidebyside import ranking

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(REGISTER_WRONG)
    out = tmp_path / "wrong"
    result = sidebyside("run", "--workload", "two_layer", "--device", "cpu", "--no-sweep", "--threads", "1",
                        "--steps", "200", "--rounds", "2", "--impl", "numpy_manual", "--impl", "numpy_wrong", "--out", str(out),
                        env={"PYTHONPATH": f"{site}{os.pathsep}{ROOT}"})
    assert result.returncode == 0, result.stderr
    by_case = {(entry["implementation"], entry["dtype"]): entry for entry in entries(out)}
    for dtype in ("float32", "float64"):
        wrong, right = by_case["numpy_wrong", dtype], by_case["numpy_manual", dtype]
        assert right["status"] == "ok"
        assert wrong["status"] == "disagrees" and wrong["agrees"] is False
        assert "differs from the float64 reference" in wrong["reason"] and "tolerance" in wrong["reason"]
        # It skips the largest product, so it is usually faster; whether or
        # not this machine's noise shows that, as ten times faster it is
        # still never ranked (no clock is asserted on here).
        faster = {**wrong, "step_time": {**wrong["step_time"], "median": right["step_time"]["median"] / 10}}
        for candidate in (wrong, faster):
            assert not ranking.rankable(candidate) and ranking.rankable(right)
            assert [entry["implementation"] for entry in ranking.fastest([candidate, right])] == ["numpy_manual"]
    summary = [line for line in result.stdout.splitlines() if "numpy_wrong" in line and line.startswith("│")]
    assert summary and all("disagrees" in line for line in summary)
    report = sidebyside("report", str(out / "results.json"), "--out", str(tmp_path / "report"), "--format", "markdown")
    assert report.returncode == 0, report.stderr
    lines = [line for line in report.stdout.splitlines() if "numpy\\_wrong" in line or "numpy_wrong" in line]
    assert any("not ranked" in line for line in lines)
    assert not any("fastest" in line.replace("vs fastest", "") or "closest" in line for line in lines), lines
    # Without --strict the run above kept exit 0; with it, the same results
    # (finished, so resuming measures nothing) exit 1 naming each case.
    strict = sidebyside("run", "--resume", str(out), "--strict", "--no-report",
                        env={"PYTHONPATH": f"{site}{os.pathsep}{ROOT}"})
    assert strict.returncode == 1, strict.stderr
    named = [line for line in strict.stderr.splitlines() if line.startswith("strict: ")]
    assert len(named) == 2 and all("numpy_wrong" in line and ": disagrees: loss differs" in line for line in named), named
