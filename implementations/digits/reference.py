"""The float64 references of the digits workload, and the tolerances they allow.

Every implementation's per-step losses are compared with one reference:
numpy_manual in float64, whose Adam adds eps to √v̂ like torch.optim.Adam.
Keras's Adam is algebraically different, so for Keras this module also
replays its update in numpy (float64), which serves two purposes: a Keras
run can be checked step by step against the replay of its own rule, and the
replay's distance from the reference is the size of the Adam difference.

Adam forms (`adam=` below):

- "pytorch": w -= lr · m̂ / (√v̂ + eps), m̂ = m / (1 - beta1^t), v̂ = v / (1 - beta2^t).
- "keras": Keras 3's Adam.update_step, alpha_t = lr · √(1 - beta2^t) / (1 - beta1^t)
  and w -= alpha_t · m / (√v + eps): eps / √(1 - beta2^t) in place of eps.
- "keras_float32_betas": the same, with beta1^t and beta2^t computed from
  betas rounded to float32. Keras computes them with ops.cast(beta, dtype);
  on the TensorFlow backend that turns the Python float into a float32
  tensor before casting it to float64, and in float32 runs every backend
  rounds them anyway. The rounding changes the step size by about 6e-6.

The tolerance. Rounding errors of one step, made of dot products of at most
n = max(D_in, H, batch) terms, are about √n·u relative (u the unit roundoff;
Higham and Mary's probabilistic bound), and over `steps` steps they add up
like a random walk, √steps. Training does not amplify them: perturbing the
initial weights at random by a relative ε moves the losses by at most 0.4·ε,
and perturbing every step's gradients by ε moves them by 0.03·ε. Only a
bias repeated at every step grows, linearly with the steps, as a different
Adam rule does. So two runs of the same rule in the same dtype should agree
within SAFETY · √(n · steps) · u, with a factor of 10 for the constants of
the estimate (exp and log, and Keras's per-step losses, recovered from
running means, which adds up to about (steps per epoch)·u): 1.3e-13 in
float64 and 7e-5 in float32 for the bundled digits' 225 steps. A different
Adam rule is allowed its own float64 distance from the reference on top (by
the triangle inequality).
"""

from functools import lru_cache

import numpy as np

from implementations.digits import numpy_manual
from implementations.digits.data import load_data
from implementations.digits.problem import CLASSES, batch_order, initial_weights

ADAM_FORMS = ("pytorch", "keras", "keras_float32_betas")
SAFETY = 10  # for the constants of the rounding estimate (see the docstring)


class KerasAdamNet(numpy_manual.Net):
    """numpy_manual with Keras's Adam update, optionally with float32-rounded beta powers."""

    def __init__(self, params, problem, device="cpu", float32_betas=False):
        super().__init__(params, problem, device)
        self.power_dtype = np.float32 if float32_betas else np.float64

    def train_step(self, x, y):
        loss, grads = numpy_manual.loss_and_gradients(self.weights, x, y)
        p = self.problem
        self.t += 1
        beta1_power = float(self.power_dtype(p.beta1)) ** self.t
        beta2_power = float(self.power_dtype(p.beta2)) ** self.t
        alpha = p.learning_rate * np.sqrt(1 - beta2_power) / (1 - beta1_power)
        for name, grad in grads.items():
            w, m, v = self.weights[name], self.m[name], self.v[name]
            m += (grad - m) * (1 - p.beta1)
            v += (grad * grad - v) * (1 - p.beta2)
            w -= alpha * m / (np.sqrt(v) + p.eps)
        return float(loss)


def adam_form(implementation, dtype):
    """Which Adam rule `implementation` follows when computing in `dtype`."""
    if not implementation.startswith("keras_"):
        return "pytorch"
    if dtype == "float32" or implementation == "keras_tensorflow":
        return "keras_float32_betas"
    return "keras"


def reference_losses(problem, data=None, adam="pytorch"):
    """Per-step float64 losses of the problem on `data` (a path, or None for the bundled digits)."""
    if adam not in ADAM_FORMS:
        raise ValueError(f"unknown Adam form {adam!r}; valid forms: {', '.join(ADAM_FORMS)}")
    return _reference(problem.with_(dtype="float64"), None if data is None else str(data), adam).copy()


@lru_cache(maxsize=8)
def _reference(problem, data, adam):
    digits = load_data(problem, data)
    params = initial_weights(problem, digits.D_in)
    if adam == "pytorch":
        net = numpy_manual.Net(params, problem)
    else:
        net = KerasAdamNet(params, problem, float32_betas=adam == "keras_float32_betas")
    x, y = net.prepare(digits.x_train, digits.y_train)
    losses = [net.fit_epoch(x, y, batches) for batches in batch_order(problem, len(y))]
    return np.concatenate(losses)


def relative_difference(losses, reference):
    """The largest relative difference of two loss trajectories, step by step (inf if any is not finite)."""
    losses, reference = np.asarray(losses, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if losses.shape != reference.shape:
        raise ValueError(f"{len(losses)} losses against {len(reference)} reference losses")
    with np.errstate(invalid="ignore", divide="ignore"):
        difference = np.abs(losses - reference) / np.abs(reference)
    return float(np.max(difference)) if np.all(np.isfinite(difference)) else float("inf")


def rounding_tolerance(problem, D_in, steps):
    """How far two runs of the same rule in the problem's dtype may drift apart (see the docstring)."""
    n = max(D_in, problem.hidden, problem.batch_size, CLASSES)
    return SAFETY * np.sqrt(n * steps) * float(np.finfo(problem.dtype).eps / 2)


def agreement_tolerance(implementation, problem, data=None):
    """The allowed relative difference of `implementation`'s losses from the reference.

    Rounding of the problem's dtype, plus, for a different Adam rule, that
    rule's own distance from the reference in float64.
    """
    reference = reference_losses(problem, data)
    digits = load_data(problem, data)
    tolerance = rounding_tolerance(problem, digits.D_in, len(reference))
    form = adam_form(implementation, problem.dtype)
    if form != "pytorch":
        tolerance += relative_difference(reference_losses(problem, data, form), reference)
    return tolerance
