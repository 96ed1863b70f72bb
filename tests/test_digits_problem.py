"""The digits problem: hyper-parameters, initial weights, batch order, registry."""

import numpy as np
import pytest

from sidebyside.implementations import FrameworkMissing
from sidebyside.implementations import digits
from sidebyside.implementations import names as two_layer_names
from sidebyside.implementations.digits.problem import (
    CLASSES,
    DigitsProblem,
    accuracy,
    batch_order,
    initial_weights,
    train_loss,
)


def test_defaults_are_the_articles():
    problem = DigitsProblem()
    assert (problem.hidden, problem.batch_size, problem.epochs) == (50, 32, 5)
    assert (problem.learning_rate, problem.beta1, problem.beta2, problem.eps) == (1e-3, 0.9, 0.999, 1e-8)
    assert problem.target_accuracy == 0.85  # one target for every implementation
    assert DigitsProblem(target_accuracy=1).target_accuracy == 1
    assert problem.size(64) == {"N": 32, "D_in": 64, "H": 50, "D_out": 10}


@pytest.mark.parametrize(
    "change",
    [{"hidden": 0}, {"batch_size": 2.5}, {"epochs": True}, {"learning_rate": -1e-3}, {"learning_rate": float("nan")},
     {"beta1": 1.0}, {"beta2": -0.1}, {"beta1": "0.9"}, {"eps": 0}, {"test_fraction": 1.0}, {"seed": -1}, {"dtype": "float16"},
     {"target_accuracy": 0}, {"target_accuracy": 1.01}, {"target_accuracy": "0.85"}],
)
def test_bad_hyper_parameters_are_refused(change):
    with pytest.raises(ValueError, match=next(iter(change))):
        DigitsProblem(**change)


def test_initial_weights_drawn_once_and_rounded_once():
    wide = initial_weights(DigitsProblem(dtype="float64"), 64)
    narrow = initial_weights(DigitsProblem(dtype="float32"), 64)
    shapes = {"w1": (64, 50), "b1": (50,), "w2": (50, CLASSES), "b2": (CLASSES,)}
    assert {name: value.shape for name, value in wide.items()} == shapes
    for name in shapes:
        assert narrow[name].dtype == np.float32 and wide[name].dtype == np.float64
        np.testing.assert_array_equal(narrow[name], wide[name].astype(np.float32))
    # He-normal first layer, LeCun-normal second, zero biases: the sample spreads match.
    assert abs(wide["w1"].std() / np.sqrt(2 / 64) - 1) < 0.05
    assert abs(wide["w2"].std() / np.sqrt(1 / 50) - 1) < 0.1
    assert not wide["b1"].any() and not wide["b2"].any()
    np.testing.assert_array_equal(initial_weights(DigitsProblem(dtype="float64"), 64)["w1"], wide["w1"])


def test_batch_order_is_sampling_without_replacement():
    problem = DigitsProblem(epochs=3)
    order = batch_order(problem, 100)
    assert len(order) == 3
    for batches in order:
        assert [len(batch) for batch in batches] == [32, 32, 32, 4]  # the partial batch is kept
        np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(100))
    assert not np.array_equal(np.concatenate(order[0]), np.concatenate(order[1]))
    # The same problem gives the same order; a one-epoch run sees the full run's first epoch.
    again = batch_order(problem, 100)
    first_only = batch_order(problem.with_(epochs=1), 100)
    for left, right, first in zip(order[0], again[0], first_only[0]):
        np.testing.assert_array_equal(left, right)
        np.testing.assert_array_equal(left, first)
    # The order does not depend on the dtype, and does depend on the seed.
    np.testing.assert_array_equal(batch_order(problem.with_(dtype="float64"), 100)[2][1], order[2][1])
    assert not np.array_equal(batch_order(problem.with_(seed=3), 100)[0][0], order[0][0])


def test_train_loss_weights_steps_by_batch_size_and_accuracy():
    batches = [np.arange(32), np.arange(4)]
    assert train_loss([1.0, 10.0], batches) == pytest.approx((32 * 1.0 + 4 * 10.0) / 36)
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75


def test_registry_mirrors_the_two_layer_names():
    assert set(digits.names()) <= set(two_layer_names())
    assert digits.names()[:4] == ["numpy_manual", "torch_manual", "torch_autograd", "torch_nn"]
    assert all("digits" in spec.workloads for spec in digits.REGISTRY.values())
    assert digits.missing("numpy_manual") is None
    assert digits.load("numpy_manual").__module__ == "sidebyside.implementations.digits.numpy_manual"
    with pytest.raises(ValueError, match="valid names: numpy_manual, torch_manual"):
        digits.spec("tensorflow_manual")


def test_missing_framework_is_reported_not_raised(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert "torch not installed" in digits.missing("torch_nn")
    with pytest.raises(FrameworkMissing, match="torch_nn: torch not installed"):
        digits.load("torch_nn")
