"""A third workload, defined in this file alone: planned, measured, saved, validated and rendered.

The workload fits a line by gradient descent (two implementations: a
vectorized step and a loop over the samples, the same maths), judged
against its own float64 reference. Nothing in
sidebyside/ knows it: `sidebyside run` finds it because the environment
variable SIDEBYSIDE_WORKLOADS names this module, which the runner and every
worker it forks import (sidebyside/workloads/__init__.py). The test then
reads what a user would: results.json (validated by the loader), the console
summary, and the report, where the workload has a section of its own and
none of its rows are poured into the two-layer tables.
"""

import csv
import json
import time

import numpy as np
import pytest

from sidebyside import timing, workloads
from sidebyside.config import RunConfig
from sidebyside.implementations import Implementation
from sidebyside.implementations.devices import DeviceUnavailable

pytestmark = pytest.mark.e2e  # a real run of a plug-in workload

NAME = "line_fit"
PLUGIN = {"SIDEBYSIDE_WORKLOADS": __name__}
SAMPLES, STEPS, LEARNING_RATE = 32, 40, 0.05


def make_data(dtype):
    generator = np.random.default_rng(0)
    x = generator.standard_normal(SAMPLES).astype(dtype)
    y = (3.0 * x + 1.0 + 0.1 * generator.standard_normal(SAMPLES)).astype(dtype)
    return x, y


class VectorNet:
    """One step of least squares for y ≈ a·x + b, on the whole batch at once."""

    def __init__(self, dtype):
        self.a, self.b = np.zeros((), dtype), np.zeros((), dtype)

    def step(self, x, y):
        error = self.a * x + self.b - y
        loss = float(np.mean(error**2))
        self.a = self.a - LEARNING_RATE * 2 * np.mean(error * x)
        self.b = self.b - LEARNING_RATE * 2 * np.mean(error)
        return loss


class LoopNet(VectorNet):
    """The same step, sample by sample in Python floats: the same numbers, another way."""

    def step(self, x, y):
        total = grad_a = grad_b = 0.0
        for xi, yi in zip(x.tolist(), y.tolist()):
            error = float(self.a) * xi + float(self.b) - yi
            total, grad_a, grad_b = total + error * error, grad_a + error * xi, grad_b + error
        n = len(x)
        self.a = (self.a - LEARNING_RATE * 2 * grad_a / n).astype(x.dtype)
        self.b = (self.b - LEARNING_RATE * 2 * grad_b / n).astype(x.dtype)
        return total / n


NETS = {"fit_vector": VectorNet, "fit_loop": LoopNet}


class Registry:
    """The workload's own registry: entries of the one Implementation type."""

    REGISTRY = {name: Implementation(name=name, module=__name__, framework="numpy", requires=("numpy",),
                                     extra="numpy", workloads=(NAME,)) for name in NETS}

    def names(self):
        return list(self.REGISTRY)

    def spec(self, name):
        if name not in self.REGISTRY:
            raise ValueError(f"unknown {NAME} implementation {name!r}")
        return self.REGISTRY[name]

    def load(self, name):
        return NETS[self.spec(name).name]


class LineFit(workloads.Workload):
    name = NAME
    title = "Line fit (a test's own workload)"

    def registry(self):
        return Registry()

    def tasks(self, config, spec, device):
        return [{"workload": self.name, "device": device, "dtype": dtype, "size": {"N": SAMPLES}}
                for dtype in config.dtypes]

    def measure(self, spec, task, entry, threads):
        if task["device"] != "cpu":
            raise DeviceUnavailable("no GPU code in this workload")
        x, y = make_data(task["dtype"])
        net = self.registry().load(spec.name)(task["dtype"])
        losses, durations = [], []
        for _ in range(STEPS):
            start = time.perf_counter()
            losses.append(net.step(x, y))
            durations.append(time.perf_counter() - start)
        entry["losses"] = losses
        timing.record_steps(entry, durations, 8 * SAMPLES)

    def judge(self, entry, task, references):
        def reference():
            net = VectorNet("float64")
            losses = [net.step(*make_data("float64")) for _ in range(STEPS)]
            return losses, {"workload": self.name, "size": task["size"], "dtype": "float64", "losses": losses}

        losses, _ = references.once((self.name,), reference)
        difference = max(abs(a - b) / abs(b) for a, b in zip(entry["losses"], losses))
        tolerance = 1e-5 if entry["dtype"] == "float32" else 1e-12
        entry.update(agreement=difference, agreement_tolerance=tolerance, agrees=difference <= tolerance)


WORKLOAD = LineFit()


def test_registered_in_process_it_is_planned():
    workloads.register(WORKLOAD)
    try:
        from sidebyside.plan import plan

        runs = plan(RunConfig(workloads=(NAME,), devices=("cpu",), dtypes=("float32", "float64")))
        assert [(run["workload"], run["implementation"], len(run["tasks"])) for run in runs] == [
            (NAME, "fit_vector", 2), (NAME, "fit_loop", 2)]
    finally:
        workloads._registered.pop(NAME)


def test_a_third_workload_runs_end_to_end_without_a_harness_change(tmp_path):
    import jsonschema

    from sidebyside.results import json_schema, load_results
    from tests.test_cli import sidebyside

    listed = sidebyside("list", env={**PLUGIN, "COLUMNS": "200"})
    assert listed.returncode == 0 and "fit_vector" in listed.stdout and "fit_loop" in listed.stdout

    out = tmp_path / "run"
    result = sidebyside("run", "--workload", NAME, "--quick", "--dtype", "float64", "--out", str(out),
                        "--threads", "1", env=PLUGIN, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    # The console summary has its table, titled with the workload.
    assert f"{NAME} · cpu · float64" in result.stdout

    raw = json.loads((out / "results.json").read_text())
    jsonschema.validate(raw, json_schema(), cls=jsonschema.Draft202012Validator)  # the published schema
    document = load_results(out / "results.json")  # and the loader, which validates every field
    entries = {(entry["implementation"], entry["device"]): entry for entry in document["results"]}
    assert set(entries) == {(name, device) for name in NETS for device in ("cpu", "cuda")}
    for name in NETS:
        cpu = entries[(name, "cpu")]
        assert cpu["workload"] == NAME and cpu["status"] == "ok", cpu
        assert len(cpu["losses"]) == STEPS and cpu["agrees"] is True and cpu["agreement"] < 1e-12
        assert cpu["step_time"]["median"] > 0 and cpu["flops_per_step"] == 8 * SAMPLES
        cuda = entries[(name, "cuda")]
        assert cuda["status"] == "n/a" and "numpy runs on the CPU only" in cuda["reason"]  # its adapter's reason
    assert [reference["workload"] for reference in raw["references"]] == [NAME]
    assert raw["config"]["workloads"] == [NAME]

    # Its own section in the page, and not a row of the two-layer tables.
    page = (out / "index.html").read_text(encoding="utf-8")
    start = page.index(f'id="workload-{NAME}"')
    section = page[start:page.index("</section>", start)]
    assert LineFit.title.replace("'", "&#39;") in section
    assert "fit_vector" in section and "fit_loop" in section
    with open(out / "summary.csv", newline="") as stream:
        assert not [row for row in csv.DictReader(stream) if row["workload"] == NAME]
    with open(out / f"workload_{NAME}.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert {row["implementation"] for row in rows} == set(NETS)
