"""The digits measured as the two-layer net is: process warm-up, the start apart, CPU use, timing rounds.

Each claim is checked by its effect: the start by a first step made slow on
purpose, which must show in `first_step_s` and the first epoch but not in the
time to target; CPU use by epochs that spin or sleep; the rounds by a real
run whose entries `sidebyside compare` gives verdicts for.
"""

import json
import time

import numpy as np
import pytest

from sidebyside import frameworks
from sidebyside.implementations import digits
from sidebyside.implementations.digits import numpy_manual
from sidebyside.implementations.digits.data import load_data
from sidebyside.implementations.digits.problem import DigitsProblem, batch_order, initial_weights
from sidebyside.report import compare
from sidebyside.workloads import digits as digits_workload
from sidebyside.workloads.digits import WORKLOAD, measure_digits, timed_epochs, train, utilization
from tests.test_cli import sidebyside

START_S = 0.5  # a first step made this slow outlasts the training to the target on the bundled digits
TASK = {"workload": "digits", "device": "cpu", "dtype": "float32", "size": {}, "epochs": 3, "data": None,
        "quick": False}


def test_the_start_is_timed_apart_and_left_out_of_the_time_to_target(monkeypatch):
    fit_epoch = numpy_manual.Net.fit_epoch
    calls = []

    def slow_start(self, x, y, batches):
        if self.t == 0:  # the net's first step: what tracing and compiling cost elsewhere
            time.sleep(START_S)
        calls.append(len(batches))
        return fit_epoch(self, x, y, batches)

    monkeypatch.setattr(numpy_manual.Net, "fit_epoch", slow_start)
    entry = measure_digits("numpy_manual", dtype="float64", threads=1)
    assert calls == [1, 44, 45, 45, 45, 45]  # the first step alone, then the rest of each epoch
    times = [record["time_s"] for record in entry["epochs"]]
    assert entry["first_step_s"] >= START_S
    assert entry["first_epoch_s"] == pytest.approx(entry["first_step_s"] + times[0])
    reached = next(i for i, record in enumerate(entry["epochs"]) if record["test_accuracy"] >= entry["target_accuracy"])
    assert entry["time_to_target_s"] == pytest.approx(sum(times[: reached + 1])) and entry["time_to_target_s"] < START_S
    # Split at its first step, the training is the same: the losses of one fit_epoch per epoch.
    problem, data = DigitsProblem(dtype="float64"), load_data(DigitsProblem())
    net = numpy_manual.Net(initial_weights(problem, data.D_in), problem)
    whole = [fit_epoch(net, data.x_train, data.y_train, b) for b in batch_order(problem, len(data.y_train))]
    assert entry["losses"] == np.concatenate(whole).tolist()


class Busy:
    """A net whose every step keeps the CPU busy (spin) or leaves it idle (sleep) for `step_s`.

    It keeps its own account of each call's CPU and wall seconds: the oracle of cpu_utilization.
    """

    def __init__(self, spin, step_s=0.002):
        self.spin, self.step_s, self.calls = spin, step_s, []

    def fit_epoch(self, x, y, batches):
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in batches:
            spin(self.step_s) if self.spin else time.sleep(self.step_s)
        self.calls.append((time.process_time() - cpu, time.perf_counter() - wall))
        return np.zeros(len(batches))


def spin(cpu_s):
    """Keep one core busy for `cpu_s` CPU seconds (longer in wall time where others share it)."""
    end = time.process_time() + cpu_s
    while time.process_time() < end:
        pass


def own_account(net, epochs):
    """CPU over wall of the calls the net made for `epochs` (indices into train's epochs; call 0 is the start)."""
    calls = [net.calls[index + 1] for index in epochs]
    return sum(cpu for cpu, _ in calls) / sum(wall for _, wall in calls)


ORDER = [[np.arange(2)] * 5] * 3  # three epochs of five steps


def test_cpu_utilization_is_cpu_over_wall_of_the_sampled_epochs():
    net = Busy(spin=True)
    _, epochs = train(net, None, None, ORDER)
    assert [len(losses) for losses, *_ in epochs] == [5, 5, 5] and len(timed_epochs(epochs, ORDER)) == 2
    measured = utilization(timed_epochs(epochs, ORDER))
    assert measured == pytest.approx(own_account(net, [1, 2]), rel=0.1) and measured > 0.1
    # Idle epochs, and an evaluation that spins between them outside the clocks: it is not counted.
    # (Against the net's own account, not against 0: the CPU time is the whole process's, and in
    # the test process other libraries' pools may still be spinning from earlier tests.)
    net = Busy(spin=False)
    _, epochs = train(net, None, None, ORDER, evaluate=lambda: spin(0.02))
    assert utilization(timed_epochs(epochs, ORDER)) == pytest.approx(own_account(net, [1, 2]), abs=0.05)


def test_a_later_round_times_the_epochs_of_round_one_as_mean_steps(monkeypatch):
    fit_epoch = numpy_manual.Net.fit_epoch

    def slow_steps(self, x, y, batches):  # every step at least 2 ms: the unit shows in the samples
        time.sleep(0.002 * len(batches))
        return fit_epoch(self, x, y, batches)

    monkeypatch.setattr(numpy_manual.Net, "fit_epoch", slow_steps)
    spec = digits.spec("numpy_manual")
    full = WORKLOAD.time_round(spec, {**TASK, "round_budget_s": 1e9}, 1)
    assert len(full["samples"]) == 2  # epochs 2 and 3, as round 1's step statistics
    assert all(0.002 <= sample < 0.01 for sample in full["samples"])  # a step's time, not an epoch's
    assert full["first_step_s"] > 0 and full["cpu_utilization"] > 0
    assert len(WORKLOAD.time_round(spec, {**TASK, "round_budget_s": 0.0}, 1)["samples"]) == 1  # one epoch at least
    quick = WORKLOAD.time_round(spec, {**TASK, "epochs": 1, "quick": True, "round_budget_s": 0.0}, 1)
    assert len(quick["samples"]) == 1  # the only epoch, after its first step


@pytest.mark.parametrize("name", ["numpy_manual", "torch_manual"])
def test_process_warm_up_trains_a_tiny_net_and_forgets_it(name, monkeypatch):
    spec = digits.spec(name)
    if digits.missing(name):
        pytest.skip(digits.missing(name))
    forgotten = []
    monkeypatch.setattr(digits_workload, "forget_compiled", forgotten.append)
    assert WORKLOAD.warm_up(spec, TASK, 1) > 0
    assert forgotten == [frameworks.compute_framework(spec)]
    assert WORKLOAD.warm_up(spec, {**TASK, "device": "gpu-that-is-not"}, 1) is None  # the case will say why


@pytest.mark.e2e
def test_a_digits_run_has_rounds_that_compare_gives_verdicts(tmp_path):
    out = tmp_path / "run"
    result = sidebyside("run", "--workload", "digits", "--impl", "numpy_manual", "--device", "cpu", "--threads", "1",
                        "--quick", "--rounds", str(compare.MIN_ROUNDS), "--no-report", "--out", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "results.json").read_text())
    (entry,) = document["results"]
    assert entry["status"] == "ok" and len(entry["step_time"]["round_medians"]) == compare.MIN_ROUNDS
    assert entry["extra"]["process_warm_up_s"] > 0 and entry["first_step_s"] > 0 and entry["cpu_utilization"] > 0
    assert compare.compare_files(out, out).frame["change"][0].verdict == compare.NOT_SIGNIFICANT
    # Every round ten times slower: told apart by the rounds.
    step_time = entry["step_time"]
    for key in ("median", "round_medians", "samples"):
        step_time[key] = np.multiply(step_time[key], 10).tolist()
    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps(document))
    change = compare.compare_files(out, slower).frame["change"][0]
    assert change.significant and change.verdict == "10× slower"
