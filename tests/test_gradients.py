"""Gradients checked against central finite differences of the oracle's loss.

Every implementation's gradient is read back through its public interface:
one step with learning rate 1 from weights W gives W - grad exactly enough
in float64 (the update is a single subtraction), so grad = W - W_after. The
finite differences of the oracle's loss are the independent check.
"""

import numpy as np
import pytest

from sidebyside import implementations
from tests import oracle
from tests.conftest import in_process_names, keras_names, run_python, run_variant, skip_if_missing

SIZES = dict(N=6, D_in=5, H=4, D_out=3)


def small_problem(seed=1):
    generator = np.random.default_rng(seed)
    x = generator.standard_normal((SIZES["N"], SIZES["D_in"]))
    y = generator.standard_normal((SIZES["N"], SIZES["D_out"]))
    w1 = generator.standard_normal((SIZES["D_in"], SIZES["H"]))
    w2 = generator.standard_normal((SIZES["H"], SIZES["D_out"]))
    assert np.min(np.abs(x @ w1)) > 1e-3, "no hidden unit sits on the ReLU kink"
    return x, y, w1, w2


def finite_difference_gradients(x, y, w1, w2):
    w1, w2 = w1.copy(), w2.copy()
    grad_w1 = oracle.finite_difference(lambda: oracle.loss(x, y, w1, w2), w1)
    grad_w2 = oracle.finite_difference(lambda: oracle.loss(x, y, w1, w2), w2)
    return grad_w1, grad_w2


def test_oracle_gradients_match_finite_differences():
    x, y, w1, w2 = small_problem()
    analytic = oracle.gradients(x, y, w1, w2)
    numeric = finite_difference_gradients(x, y, w1, w2)
    for a, n in zip(analytic, numeric):
        np.testing.assert_allclose(a, n, rtol=1e-6, atol=1e-6)


def gradients_through_step(name):
    """The registered variant (built by `create`, checked to be what its name
    says), one float64 step at learning rate 1: its loss and gradients."""
    x, y, w1, w2 = small_problem()
    losses, (w1_after, w2_after), _, _ = run_variant(name, (x, y, w1, w2), 1.0, "float64", steps=1)
    return float(losses[0]), w1 - w1_after, w2 - w2_after


@pytest.mark.parametrize("name", in_process_names())
def test_gradients_match_finite_differences(name):
    skip_if_missing(name)
    x, y, w1, w2 = small_problem()
    loss, grad_w1, grad_w2 = gradients_through_step(name)
    assert loss == pytest.approx(oracle.loss(x, y, w1, w2), rel=1e-12)
    numeric_w1, numeric_w2 = finite_difference_gradients(x, y, w1, w2)
    np.testing.assert_allclose(grad_w1, numeric_w1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad_w2, numeric_w2, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in keras_names() if implementations.spec(n).backend != "torch"])
def test_keras_gradients_match_finite_differences(name):
    """Keras in float64 (not on the torch backend, which computes float64 in float32)."""
    skip_if_missing(name)
    code = (
        "import json\n"
        "from tests.test_gradients import gradients_through_step\n"
        f"loss, g1, g2 = gradients_through_step({name!r})\n"
        "print(json.dumps([loss, g1.tolist(), g2.tolist()]))\n"
    )
    loss, grad_w1, grad_w2 = run_python(code, env={"KERAS_BACKEND": implementations.spec(name).backend})
    x, y, w1, w2 = small_problem()
    assert loss == pytest.approx(oracle.loss(x, y, w1, w2), rel=1e-12)
    numeric_w1, numeric_w2 = finite_difference_gradients(x, y, w1, w2)
    np.testing.assert_allclose(grad_w1, numeric_w1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad_w2, numeric_w2, rtol=1e-6, atol=1e-6)


def test_custom_relu_passes_gradcheck():
    skip_if_missing("torch_autograd")
    import torch

    from sidebyside.implementations.two_layer.torch_autograd import MyReLU

    generator = torch.Generator().manual_seed(0)
    h = torch.randn(8, 5, dtype=torch.float64, generator=generator)
    h = (h + 0.1 * torch.sign(h)).requires_grad_()  # keep inputs away from the kink at 0
    assert torch.autograd.gradcheck(MyReLU.apply, (h,), eps=1e-6, atol=1e-8)


def test_tutorial_autograd_example():
    """x = ones(2, 2); y = x + 2; z = y * y * 3; out = z.mean() -> 27, x.grad = 4.5."""
    skip_if_missing("torch_autograd")
    import torch

    x = torch.ones(2, 2, requires_grad=True)
    y = x + 2
    z = y * y * 3
    out = z.mean()
    assert out.item() == 27.0
    out.backward()
    assert torch.equal(x.grad, torch.full((2, 2), 4.5))
