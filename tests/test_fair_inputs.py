"""Fair inputs: `prepare` only converts dtype and moves to the device; every step reads the batch as all receive it.

The harness refuses a `prepare` that changes shape or layout
(sidebyside/inputs.py, called by cases.build), and the worker records the case
"failed" with that one line. Each registered implementation's `prepare` is
checked against the array it was given, and the tuned variants, which once
kept a transposed copy of x made by `prepare`, are checked to read each new
batch: their losses on a sequence of batches written into one buffer are
numpy_manual's.
"""

import io

import numpy as np
import pytest

from sidebyside import implementations, worker
from sidebyside.config import RunConfig
from sidebyside.implementations.two_layer import numpy_manual
from sidebyside.implementations.two_layer.problem import Problem, make_data
from sidebyside.inputs import check_prepared
from sidebyside.workloads.two_layer import cases
from sidebyside.workloads.two_layer.tasks import task
from tests.conftest import in_process_names, is_keras, keras_names, run_python, skip_if_missing

SIZE = {"N": 6, "D_in": 9, "H": 4, "D_out": 3}
RULE = "prepare may only convert dtype and move to the device"


def faults(name):
    """What `name`'s prepare changed besides dtype and device, checked apart from sidebyside.inputs: [] when nothing."""
    x, y, w1, w2 = make_data(Problem(**SIZE, dtype="float64"))  # float64 data for float32 nets: a conversion
    net = implementations.create(name, w1, w2, 1e-3, device="cpu", dtype="float32")
    try:
        prepared = net.prepare(x, y)
        found = []
        for label, given, value in zip("xy", (x, y), prepared):
            value = getattr(value, "array", value)  # torch_ddp's Shards: the batch it sent the ranks
            on_host = np.asarray(value)
            if on_host.shape != given.shape or not np.array_equal(on_host, given.astype(np.float32)):
                found.append(f"{label}: {on_host.shape} with other values, from {given.shape}")
            if isinstance(value, np.ndarray) and not value.flags.c_contiguous:
                found.append(f"{label}: not C-contiguous")
            if hasattr(value, "is_contiguous") and not value.is_contiguous():
                found.append(f"{label}: not a contiguous tensor")
        check_prepared((x, y), prepared)
        return found
    finally:
        if hasattr(net, "close"):
            net.close()


@pytest.mark.parametrize("name", in_process_names())
def test_prepare_keeps_shape_and_layout(name):
    skip_if_missing(name)
    assert faults(name) == []


KERAS_FAULTS = """
import json
from tests.test_fair_inputs import faults
print(json.dumps({name: faults(name) for name in NAMES}))
"""


@pytest.mark.e2e
@pytest.mark.parametrize("backend", sorted({implementations.spec(name).backend for name in keras_names()}))
def test_keras_prepare_keeps_shape_and_layout(backend):
    """Every Keras name of one backend, in one process of that backend."""
    names = [name for name in keras_names() if implementations.spec(name).backend == backend]
    for name in names:
        skip_if_missing(name)
    found = run_python(KERAS_FAULTS.replace("NAMES", repr(names)), env={"KERAS_BACKEND": backend})
    assert found == {name: [] for name in names}


class TransposingNet(numpy_manual.Net):
    """numpy_manual fed xᵀ made by prepare, outside the clock: the trick the rule forbids. It trains correctly."""

    def prepare(self, x, y):
        x, y = super().prepare(x, y)
        return np.ascontiguousarray(x.T), y

    def step(self, x_t, y):
        return float(self.train_step(x_t.T, y))

    def train(self, x_t, y, steps):
        return np.array([self.train_step(x_t.T, y) for _ in range(steps)])


def transposing_create(name, w1, w2, learning_rate, device="cpu", dtype="float32", **overrides):
    return TransposingNet(w1, w2, learning_rate, device=device, dtype=dtype)


def test_a_prepare_that_transposes_x_is_refused(monkeypatch):
    monkeypatch.setattr(implementations, "create", transposing_create)
    with pytest.raises(ValueError) as refused:
        cases.build("numpy_manual", "cpu", "float32", SIZE)
    assert str(refused.value) == f"prepare changed x from 6×9 row-major to 9×6 row-major: {RULE}"


@pytest.mark.parametrize("change, message", [
    (np.asfortranarray, "prepare changed y from 6×3 row-major to 6×3 column-major"),
    (lambda y: y[:, :2], "prepare changed y from 6×3 row-major to 6×2 strided"),
    (lambda y: y.reshape(3, 6), "prepare changed y from 6×3 row-major to 3×6 row-major"),
])
def test_a_prepare_that_changes_y_is_refused(change, message):
    x, y, _, _ = make_data(Problem(**SIZE))
    with pytest.raises(ValueError, match=f"^{message}: {RULE}$"):
        check_prepared((x, y), (x, change(y)))


def test_a_torch_prepare_that_returns_a_transposed_view_is_refused():
    skip_if_missing("torch_manual")
    import torch

    x, y, _, _ = make_data(Problem(**SIZE))
    x_t = torch.as_tensor(x).t().contiguous()
    with pytest.raises(ValueError, match=f"^prepare changed x from 6×9 row-major to 6×9 column-major: {RULE}$"):
        check_prepared((x, y), (x_t.t(), torch.as_tensor(y)))  # x's shape, stored transposed
    check_prepared((x, y), (torch.as_tensor(x), torch.as_tensor(y)))


def test_the_worker_records_the_refusal_as_failed(monkeypatch):
    """Through the worker's own job loop: one "failed" entry, the refusal as its one-line reason."""
    monkeypatch.setattr(implementations, "create", transposing_create)
    monkeypatch.setattr(worker.fairness, "apply", lambda *arguments, **keywords: {})  # leave this process's threads
    config = RunConfig(steps=5, warmup=1)
    job = {"run": {"workload": "two_layer", "implementation": "numpy_manual",
                   "tasks": [task(config, "cpu", "float32", tuple(SIZE.values()), full=True)]},
           "mode": "first", "threads": 1, "tf32": False}
    entries = []
    worker.run_job(job, entries.append, io.StringIO())
    assert [(entry["status"], entry["reason"]) for entry in entries] == [
        ("failed", f"ValueError: prepare changed x from 6×9 row-major to 9×6 row-major: {RULE}")]


TUNED = [name for name in implementations.names()
         if implementations.spec(name).tuned_from and not is_keras(name) and implementations.spec(name).in_process]


@pytest.mark.parametrize("name", TUNED)
def test_tuned_step_reads_each_new_batch(name):
    """A loop that writes each new batch into the array it prepared once (a loader reusing its buffer; JAX,
    whose arrays cannot change, prepares each one) gets numpy_manual's losses: no step reads a copy of an
    earlier batch."""
    skip_if_missing(name)
    _, _, w1, w2 = make_data(Problem(**SIZE, dtype="float64"))
    batches = [make_data(Problem(**SIZE, dtype="float64", seed=seed))[:2] for seed in range(1, 5)]
    oracle = numpy_manual.Net(w1, w2, 1e-3, dtype="float64")
    expected = [oracle.step(x, y) for x, y in batches]
    net = implementations.create(name, w1, w2, 1e-3, dtype="float64")
    x_buffer, y_buffer = net.prepare(batches[0][0].copy(), batches[0][1].copy())
    losses = []
    for x, y in batches:
        if isinstance(x_buffer, np.ndarray):
            np.copyto(x_buffer, x), np.copyto(y_buffer, y)
        elif hasattr(x_buffer, "copy_"):  # torch
            x_buffer.copy_(x_buffer.new_tensor(x)), y_buffer.copy_(y_buffer.new_tensor(y))
        else:
            x_buffer, y_buffer = net.prepare(x, y)
        losses.append(net.step(x_buffer, y_buffer))
    np.testing.assert_allclose(losses, expected, rtol=1e-12)


def test_a_digits_prepare_that_transposes_the_images_is_refused(monkeypatch):
    """The digits workload checks what prepare returns too (sidebyside/workloads/digits/__init__.py, `prepared`)."""
    pytest.importorskip("sklearn", reason="n/a: the digits data needs scikit-learn")
    from sidebyside.implementations import digits as registry
    from sidebyside.workloads import digits

    create = registry.create

    def transposing(*arguments, **keywords):
        net = create(*arguments, **keywords)
        prepare = net.prepare
        net.prepare = lambda x, *rest: (lambda out: (out[0].T, *out[1:]) if rest else out.T)(prepare(x, *rest))
        return net

    monkeypatch.setattr(registry, "create", transposing)
    with pytest.raises(ValueError, match=f"^prepare changed x_train from 1437×64 row-major to 64×1437 column-major: {RULE}$"):
        digits.prepared("numpy_manual", "cpu", "float32", 1, None, True)
