"""The digits classifier in every framework: gradients, trajectories, accuracy.

The oracle is numpy: the hand-written softmax cross-entropy gradient is
checked against finite differences, and its float64 training run (Adam with
eps added to √v̂, as torch.optim.Adam) is the reference every framework's
per-step losses must follow within the rounding tolerance derived in
implementations/digits/reference.py. Keras follows its own Adam rule, which
reference.py replays in numpy; a Keras run must match that replay as tightly,
and the replay's distance from the reference is the size of the difference.
Keras binds one backend per process, so each backend runs in a subprocess.
"""

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from implementations import digits
from implementations.digits import numpy_manual
from implementations.digits.data import load_data
from implementations.digits.problem import DigitsProblem, accuracy, batch_order, initial_weights
from implementations.digits.reference import (
    KerasAdamNet,
    adam_form,
    agreement_tolerance,
    reference_losses,
    relative_difference,
    rounding_tolerance,
)

ROOT = Path(__file__).resolve().parent.parent
PROBLEM = DigitsProblem()
DATA = load_data(PROBLEM)
STEPS = sum(len(batches) for batches in batch_order(PROBLEM, len(DATA.y_train)))
IN_PROCESS = ["numpy_manual", "torch_manual", "torch_autograd", "torch_nn"]
KERAS = [name for name in digits.names() if name.startswith("keras_")]
ACCURACY_TARGET = 0.85  # the floor after five epochs on the bundled digits
ACCURACY_SPREAD = 0.005  # float32 accuracies within half a percentage point of the float64 reference


def skip_if_missing(name):
    """Skip when a package is absent; Keras cases run in a subprocess of their
    own backend, so a Keras already imported here is no reason to skip."""
    spec = digits.spec(name)
    absent = [module for module in spec.requires if importlib.util.find_spec(module) is None]
    if absent:
        pytest.skip(f"n/a: {', '.join(absent)} not installed (pip install -e \".[{spec.extra}]\")")


def train(Net, problem, **options):
    """Per-step losses and final test accuracy of a full run, in this process."""
    net = Net(initial_weights(problem, DATA.D_in), problem, **options)
    x, y = net.prepare(DATA.x_train, DATA.y_train)
    losses = [net.fit_epoch(x, y, batches) for batches in batch_order(problem, len(DATA.y_train))]
    return np.concatenate(losses).astype(np.float64), accuracy(net.predict(DATA.x_test), DATA.y_test), net


@functools.lru_cache(maxsize=None)
def reference_accuracy():
    return train(numpy_manual.Net, PROBLEM.with_(dtype="float64"))[1]


# The oracle's gradient ----------------------------------------------------------


def test_softmax_cross_entropy_gradient_matches_finite_differences():
    problem = PROBLEM.with_(dtype="float64")
    params = initial_weights(problem, DATA.D_in)
    # Non-zero biases, so their gradients are checked away from the starting point too.
    generator = np.random.default_rng(7)
    params["b1"] = 0.1 * generator.standard_normal(params["b1"].shape)
    params["b2"] = 0.1 * generator.standard_normal(params["b2"].shape)
    batch = batch_order(problem, len(DATA.y_train))[0][0]
    x, y = DATA.x_train[batch], DATA.y_train[batch]
    _, grads = numpy_manual.loss_and_gradients({k: v.copy() for k, v in params.items()}, x, y)
    step = 1e-6  # central differences: truncation ~step², rounding ~1e-16/step
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + step
            plus = numpy_manual.loss_and_gradients(params, x, y)[0]
            value[index] = original - step
            minus = numpy_manual.loss_and_gradients(params, x, y)[0]
            value[index] = original
            numeric[index] = (plus - minus) / (2 * step)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-9, err_msg=name)
        assert np.abs(grads[name]).max() > 1e-4  # a real gradient, not zeros matching zeros


def test_torch_manual_gradients_equal_numpys():
    skip_if_missing("torch_manual")
    import torch

    from implementations.digits import torch_manual

    params = initial_weights(PROBLEM.with_(dtype="float64"), DATA.D_in)
    batch = batch_order(PROBLEM, len(DATA.y_train))[0][3]
    x, y = DATA.x_train[batch], DATA.y_train[batch]
    loss, grads = numpy_manual.loss_and_gradients(params, x, y)
    tensors = {name: torch.tensor(value) for name, value in params.items()}
    torch_loss, torch_grads = torch_manual.loss_and_gradients(tensors, torch.tensor(x), torch.tensor(y))
    assert float(torch_loss) == pytest.approx(loss, rel=1e-14)
    for name in grads:
        np.testing.assert_allclose(torch_grads[name].numpy(), grads[name], rtol=1e-12, atol=1e-16)


# Adam's forms ------------------------------------------------------------------------


def test_keras_adam_is_pytorch_adam_with_a_larger_epsilon():
    """One step of the Keras rule equals the PyTorch rule with eps / √(1 - beta2)."""
    problem = PROBLEM.with_(dtype="float64")
    params = initial_weights(problem, DATA.D_in)
    batch = batch_order(problem, len(DATA.y_train))[0][0]
    keras_rule = KerasAdamNet(params, problem)
    pytorch_rule = numpy_manual.Net(params, problem.with_(eps=problem.eps / np.sqrt(1 - problem.beta2)))
    keras_rule.fit_epoch(DATA.x_train, DATA.y_train, [batch])
    pytorch_rule.fit_epoch(DATA.x_train, DATA.y_train, [batch])
    for name, value in keras_rule.params().items():
        np.testing.assert_allclose(value, pytorch_rule.params()[name], rtol=1e-13, atol=1e-17)


def test_adam_forms_differ_far_beyond_rounding():
    """The tolerance is tight enough to tell the Adam rules apart."""
    problem = PROBLEM.with_(dtype="float64")
    reference = reference_losses(problem)
    tolerance = rounding_tolerance(problem, DATA.D_in, STEPS)
    assert len(reference) == STEPS
    for form in ("keras", "keras_float32_betas"):
        difference = relative_difference(reference_losses(problem, adam=form), reference)
        assert difference > 1e6 * tolerance, form
    # Keras's exact rule moves the losses more than its float32-betas variant does.
    assert relative_difference(reference_losses(problem, adam="keras"), reference) > relative_difference(
        reference_losses(problem, adam="keras_float32_betas"), reference
    )


# Frameworks in this process -----------------------------------------------------------


@pytest.mark.parametrize("name", IN_PROCESS)
def test_float64_losses_follow_the_reference_step_by_step(name):
    skip_if_missing(name)
    problem = PROBLEM.with_(dtype="float64")
    losses, final_accuracy, _ = train(digits.load(name), problem)
    reference = reference_losses(problem)
    assert len(losses) == STEPS
    assert relative_difference(losses, reference) <= rounding_tolerance(problem, DATA.D_in, STEPS)
    assert final_accuracy == reference_accuracy()


@pytest.mark.parametrize("name", IN_PROCESS)
def test_float32_reaches_the_target_accuracy(name):
    skip_if_missing(name)
    problem = PROBLEM.with_(dtype="float32")
    losses, final_accuracy, net = train(digits.load(name), problem)
    assert final_accuracy >= ACCURACY_TARGET
    assert abs(final_accuracy - reference_accuracy()) <= ACCURACY_SPREAD
    assert relative_difference(losses, reference_losses(problem)) <= agreement_tolerance(name, problem)
    assert all(value.dtype == np.float32 for value in net.params().values())


def test_dataloader_serves_the_shared_batches():
    skip_if_missing("torch_autograd")
    import torch
    from torch.utils.data import DataLoader

    from implementations.digits.torch_autograd import Digits, SharedOrder

    batches = batch_order(PROBLEM, len(DATA.y_train))[1]
    x, y = torch.tensor(DATA.x_train), torch.tensor(DATA.y_train)
    served = list(DataLoader(Digits(x, y), sampler=SharedOrder(batches, "cpu"), batch_size=None))
    assert len(served) == len(batches)
    for (x_batch, y_batch), batch in zip(served, batches):
        np.testing.assert_array_equal(x_batch.numpy(), DATA.x_train[batch])
        np.testing.assert_array_equal(y_batch.numpy(), DATA.y_train[batch])


# Keras, one backend per process --------------------------------------------------------

KERAS_SCRIPT = """
import json, sys
import numpy as np
from implementations import digits
from implementations.digits.data import load_data
from implementations.digits.problem import DigitsProblem, DtypeUnsupported, accuracy, batch_order, initial_weights
name = sys.argv[1]
Net = digits.load(name)
from implementations.digits.keras_sequential import SharedBatches
out = {}
data = load_data(DigitsProblem())
batches = batch_order(DigitsProblem(), len(data.y_train))[0]
dataset = SharedBatches(data.x_train, data.y_train, batches)
out["batches_match"] = len(dataset) == len(batches) and all(
    np.array_equal(dataset[i][0], data.x_train[b]) and np.array_equal(dataset[i][1], data.y_train[b])
    for i, b in enumerate(batches)
)
for dtype in ("float64", "float32"):
    problem = DigitsProblem(dtype=dtype)
    try:
        net = Net(initial_weights(problem, data.D_in), problem)
    except DtypeUnsupported as error:
        out[dtype] = {"unsupported": str(error)}
        continue
    x, y = net.prepare(data.x_train, data.y_train)
    losses = [net.fit_epoch(x, y, b) for b in batch_order(problem, len(data.y_train))]
    out[dtype] = {
        "losses": np.concatenate(losses).astype(float).tolist(),
        "accuracy": accuracy(net.predict(data.x_test), data.y_test),
        "params_dtype": sorted({str(v.dtype) for v in net.params().values()}),
    }
print(json.dumps(out))
"""


@functools.lru_cache(maxsize=None)
def keras_run(name):
    """Both dtypes of a Keras implementation, trained in a process of its own backend."""
    backend = digits.spec(name).backend
    result = subprocess.run(
        [sys.executable, "-c", KERAS_SCRIPT, name], capture_output=True, text=True, timeout=600, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if result.returncode != 0:
        raise AssertionError(f"{name} failed in its subprocess:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", KERAS)
def test_keras_float64_follows_its_adam_step_by_step(name):
    skip_if_missing(name)
    run = keras_run(name)["float64"]
    if "unsupported" in run:
        assert name == "keras_torch"  # Keras demotes float64 matmul to float32 on torch
        pytest.skip(f"n/a: {run['unsupported']}")
    problem = PROBLEM.with_(dtype="float64")
    form = adam_form(name, "float64")
    assert form != "pytorch"
    assert run["params_dtype"] == ["float64"]
    losses = np.array(run["losses"])
    tolerance = rounding_tolerance(problem, DATA.D_in, STEPS)
    assert relative_difference(losses, reference_losses(problem, adam=form)) <= tolerance
    # And against the common reference, within the size of the Adam difference.
    assert relative_difference(losses, reference_losses(problem)) <= agreement_tolerance(name, problem)
    assert run["accuracy"] == reference_accuracy()


@pytest.mark.parametrize("name", KERAS)
def test_keras_float32_reaches_the_target_accuracy(name):
    skip_if_missing(name)
    run = keras_run(name)
    assert run["batches_match"]
    float32 = run["float32"]
    problem = PROBLEM.with_(dtype="float32")
    assert float32["params_dtype"] == ["float32"]
    assert float32["accuracy"] >= ACCURACY_TARGET
    assert abs(float32["accuracy"] - reference_accuracy()) <= ACCURACY_SPREAD
    losses = np.array(float32["losses"])
    replay = reference_losses(problem, adam=adam_form(name, "float32"))
    assert relative_difference(losses, replay) <= rounding_tolerance(problem, DATA.D_in, STEPS)
