"""The digits measurement: a complete results entry, honest about what it measured."""

import gzip
import json
import struct

import numpy as np
import pytest

from sidebyside.workloads import digits as digits_benchmark
from sidebyside.workloads.digits import measure_digits, reference_record, size_for, time_to_target
from sidebyside.implementations.digits import numpy_manual
from sidebyside.implementations.digits.data import DataError, read_bundled
from sidebyside.implementations.digits.demo import demo
from sidebyside.implementations.digits.problem import DigitsProblem
from sidebyside.implementations.digits.reference import relative_difference

ENTRY_KEYS = {
    "workload", "implementation", "environment", "framework", "backend", "device", "dtype", "threads", "size",
    "status", "reason",
    "cpu_utilization",  # CPU seconds over wall seconds of the epochs the step statistics come from
    "diverged_at", "losses", "step_time", "unstable", "first_step_s", "loop_time_s", "loop_steps", "flops_per_step",
    "gflops", "peak_fraction", "peak_memory_bytes", "agreement", "agreement_tolerance", "agrees", "extra",
    "epochs", "test_accuracy", "target_accuracy", "time_to_target_s", "first_epoch_s",
    "samples",  # the timed epochs' mean steps, for the runner (results.json keeps them as step_time.samples)
}


def check_entry(entry, epochs, steps_per_epoch):
    assert set(entry) == ENTRY_KEYS
    json.dumps(entry, allow_nan=False)  # results.json refuses NaN and inf
    # The step statistics: each epoch's mean step, the epochs after the first, or the only one after its first step.
    counts = [steps_per_epoch] * (epochs - 1) if epochs > 1 else [steps_per_epoch - 1]
    timed = [record["time_s"] / count for record, count in zip(entry["epochs"][1:] or entry["epochs"], counts)]
    assert entry["samples"] == pytest.approx(timed) and entry["step_time"]["median"] == pytest.approx(np.median(timed))
    assert 0 < entry["cpu_utilization"] < 8
    assert entry["workload"] == "digits" and entry["status"] == "ok"
    assert len(entry["losses"]) == epochs * steps_per_epoch == entry["extra"]["steps_per_epoch"] * epochs
    assert [record["epoch"] for record in entry["epochs"]] == list(range(1, epochs + 1))
    times = [record["time_s"] for record in entry["epochs"]]
    assert all(time > 0 for time in times)
    # The start (the first step) is timed apart: the first epoch as it ran is the start and the rest of it.
    assert entry["first_step_s"] > 0 and entry["first_epoch_s"] == pytest.approx(entry["first_step_s"] + times[0])
    assert entry["test_accuracy"] == entry["epochs"][-1]["test_accuracy"]
    # Time to target: the training time up to the first epoch at or above the one shared target.
    assert entry["target_accuracy"] == DigitsProblem.target_accuracy
    reached = [i for i, r in enumerate(entry["epochs"]) if r["test_accuracy"] >= entry["target_accuracy"]]
    if reached:
        assert entry["time_to_target_s"] == pytest.approx(sum(times[: reached[0] + 1]))
        assert entry["time_to_target_s"] <= sum(times) * (1 + 1e-12)
    else:
        assert entry["time_to_target_s"] is None
    assert entry["extra"]["conversion_s"] > 0  # the data was converted, outside every epoch's clock
    counted = times[1:] or times
    assert entry["step_time"]["rounds"] == len(counted)
    assert entry["loop_time_s"] == pytest.approx(sum(counted)) and entry["loop_steps"] == sum(counts)
    assert entry["agrees"] is True and entry["agreement"] <= entry["agreement_tolerance"]
    assert entry["peak_memory_bytes"] >= 0


def test_numpy_entry_on_the_bundled_digits():
    entry = measure_digits("numpy_manual", dtype="float64", threads=1)
    check_entry(entry, 5, 45)
    assert entry["size"] == {"N": 32, "D_in": 64, "H": 50, "D_out": 10}
    # Judged against the independent reference like everyone else: a real rounding difference.
    assert 0 < entry["agreement"] <= entry["agreement_tolerance"]
    assert entry["time_to_target_s"] < sum(record["time_s"] for record in entry["epochs"])  # reached before epoch 5
    assert entry["test_accuracy"] >= 0.85
    assert entry["extra"]["data"] == "sklearn digits" and entry["extra"]["adam"] == "pytorch"
    assert entry["flops_per_step"] == 2 * (2 * 32 * 64 * 50) + 3 * (2 * 32 * 50 * 10)  # no gradient for x
    reference = reference_record()
    assert reference["workload"] == "digits" and reference["losses"] != entry["losses"]
    assert relative_difference(entry["losses"], reference["losses"]) == entry["agreement"]


def test_quick_torch_entry_is_one_epoch():
    pytest.importorskip("torch", reason="n/a: torch not installed")
    entry = measure_digits("torch_nn", quick=True, threads=1)
    check_entry(entry, 1, 45)
    assert entry["extra"]["step_time_from"] == "the only epoch, after its first step"
    # One epoch reaches about 55 %, short of the shared target: no time to target.
    assert entry["test_accuracy"] < entry["target_accuracy"] and entry["time_to_target_s"] is None


def test_time_to_target_counts_epochs_up_to_the_first_at_the_target():
    records = [{"test_accuracy": a, "time_s": t} for a, t in ((0.5, 3.0), (0.85, 1.0), (0.8, 1.5), (0.9, 1.0))]
    assert time_to_target(records, 0.85) == 4.0  # reached (>=) at epoch 2, a later dip does not count
    assert time_to_target(records, 0.9) == 6.5
    assert time_to_target(records, 0.3) == 3.0
    assert time_to_target(records, 0.95) is None
    assert time_to_target([], 0.85) is None


def test_unreachable_target_gives_no_time(monkeypatch):
    problem_for = digits_benchmark.problem_for
    monkeypatch.setattr(digits_benchmark, "problem_for", lambda *a, **k: problem_for(*a, **k).with_(target_accuracy=1.0))
    entry = measure_digits("numpy_manual", epochs=2, threads=1)
    assert entry["target_accuracy"] == 1.0 and entry["time_to_target_s"] is None
    assert entry["status"] == "ok" and entry["test_accuracy"] < 1.0


def test_user_data_by_path(tmp_path):
    x, y = read_bundled()
    images = np.round(x * 255).astype(np.uint8).reshape(-1, 8, 8)
    for kind, array in (("images-idx3", images), ("labels-idx1", y.astype(np.uint8))):
        header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
        (tmp_path / f"train-{kind}-ubyte.gz").write_bytes(gzip.compress(header + array.tobytes()))
    entry = measure_digits("numpy_manual", epochs=2, data=tmp_path, threads=1)
    check_entry(entry, 2, 45)
    assert entry["extra"]["data"] == str(tmp_path)
    assert size_for(tmp_path) == entry["size"] == size_for()
    with pytest.raises(DataError, match="no such file"):
        measure_digits("numpy_manual", data=tmp_path / "absent")


def test_divergence_is_marked_and_json_safe(monkeypatch):
    fit_epoch = numpy_manual.Net.fit_epoch

    def breaking(self, x, y, batches):
        losses = fit_epoch(self, x, y, batches)
        if self.t > 45:
            losses[3] = np.nan
        return losses

    monkeypatch.setattr(numpy_manual.Net, "fit_epoch", breaking)
    entry = measure_digits("numpy_manual", epochs=2, threads=1)
    json.dumps(entry, allow_nan=False)
    assert entry["status"] == "diverged" and entry["diverged_at"] == 48
    assert entry["losses"][48] is None and entry["epochs"][1]["train_loss"] is None
    assert entry["agreement"] is None and entry["agrees"] is False


def test_unknown_implementation():
    with pytest.raises(ValueError, match="valid names"):
        measure_digits("numpy_magic")


def test_module_demo_prints_every_epoch(capsys):
    demo(numpy_manual.Net)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("sklearn digits: 1437 training and 360 test images")
    assert [line.split(":")[0] for line in lines[1:]] == [f"epoch {n}" for n in range(1, 6)]
    assert "test accuracy" in lines[-1]
