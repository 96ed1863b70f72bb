"""Every implementation against the independent float64 oracle.

float64: every step's loss within 1e-8 relative, final weights within 1e-10.
float32: the loss within the derived per-step tolerance of
sidebyside/workloads/two_layer/agreement.py while it is far above float32 round-off, and the
run reaches the float32 floor (see that module's docstring for the
derivation).
"""

import numpy as np
import pytest

from sidebyside.workloads.two_layer import agreement
from sidebyside.implementations.two_layer.problem import Problem, make_data
from tests.conftest import in_process_names, keras_names, keras_runs, oracle_run, skip_if_missing, train

FLOAT64_LOSS = 1e-8
FLOAT64_WEIGHTS = 1e-10


def relative(a, b):
    return np.max(np.abs(np.asarray(a, dtype=np.float64) - b) / np.abs(b))


def weights_relative(a, b):
    """Largest difference relative to the weights' scale (some entries pass near 0)."""
    return np.max(np.abs(np.asarray(a, dtype=np.float64) - b)) / np.max(np.abs(b))


def check_float64(losses, w1, w2):
    reference, w1_reference, w2_reference = oracle_run()
    assert len(losses) == len(reference)
    assert relative(losses, reference) < FLOAT64_LOSS
    assert weights_relative(w1, w1_reference) < FLOAT64_WEIGHTS
    assert weights_relative(w2, w2_reference) < FLOAT64_WEIGHTS


def check_float32(losses):
    reference, _, _ = oracle_run()
    _, y, _, _ = make_data(Problem(dtype="float64"))
    compared, tolerance = agreement.tolerances("float32", reference, y)
    assert compared.sum() > 100, "the check must cover a real part of the trajectory"
    difference = np.abs(np.asarray(losses, dtype=np.float64) - reference) / reference
    worst = np.argmax(np.where(compared, difference / tolerance, 0))
    assert np.all(difference[compared] <= tolerance[compared]), (
        f"step {worst}: {difference[worst]:.2e} > {tolerance[worst]:.2e}"
    )
    floor = agreement.float32_floor(y)
    assert losses[-1] <= agreement.FLOAT32_REACHES_FLOOR * floor, f"final loss {losses[-1]:.2e}, floor {floor:.2e}"
    assert np.all(np.isfinite(losses))


@pytest.mark.parametrize("name", in_process_names())
def test_float64_matches_oracle(name):
    skip_if_missing(name)
    losses, (w1, w2) = train(name, "float64")
    check_float64(losses, w1, w2)


@pytest.mark.parametrize("name", in_process_names())
def test_float32_tracks_oracle_and_reaches_floor(name):
    skip_if_missing(name)
    losses, _ = train(name, "float32")
    check_float32(losses)


@pytest.mark.parametrize("name", keras_names())
def test_keras_matches_oracle(name):
    skip_if_missing(name)
    runs = keras_runs(name)
    check_float32(np.array(runs["float32"]["losses"]))
    if "unsupported" in runs["float64"]:
        pytest.skip(f"n/a in float64: {runs['float64']['unsupported']}")
    run = runs["float64"]
    check_float64(np.array(run["losses"]), np.array(run["w1"]), np.array(run["w2"]))


def test_oracle_matches_the_tutorial():
    """The oracle itself: the loss falls from ~3e7 to near zero, as in the tutorial."""
    losses, _, _ = oracle_run()
    assert 1e7 < losses[0] < 1e8
    assert losses[-1] < 1e-5
    assert np.all(np.diff(losses[50:]) < 0), "plain SGD at this rate decreases the loss every step"


def test_harness_reference_matches_oracle():
    """sidebyside.workloads.two_layer.agreement's reference (used by `sidebyside run`) agrees with the oracle."""
    x, y, w1, w2 = make_data(Problem(dtype="float64"))
    reference = agreement.reference_losses(x, y, w1, w2, 1e-6, 500)
    assert relative(reference, oracle_run()[0]) < 1e-12


def test_compare_flags_a_wrong_trajectory():
    """The comparison is not vacuous: a 1e-6 relative error fails float64."""
    reference, _, _ = oracle_run()
    _, y, _, _ = make_data(Problem(dtype="float64"))
    assert agreement.compare(reference * (1 + 1e-6), reference, "float64", y)["agrees"] is False
    assert agreement.compare(reference * (1 + 1e-12), reference, "float64", y)["agrees"] is True
    assert agreement.compare(reference * 1.01, reference, "float32", y)["agrees"] is False
