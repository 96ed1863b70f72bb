"""The float64 reference of the digits workload, written apart from every implementation.

Every implementation's per-step losses are compared with the losses of this
module's own training run, in float64. It imports nothing from the
implementations it judges (numpy_manual included, which is measured against
it like everyone else), and it spells the same maths another way:

- the layers are `np.einsum` contractions, summed by numpy's own loops
  rather than by the BLAS `dot` the implementations call;
- the log-sum-exp of the softmax is `np.logaddexp.reduce`, a chain of
  pairwise log(e^a + e^b), instead of "subtract the row's maximum, exp, sum,
  log"; the batch mean of the losses is `math.fsum`, correctly rounded;
- the gradient of the scores is softmax minus a one-hot matrix, built with
  `np.eye`, instead of subtracting 1 at the label's index in place;
- Adam is a pure function written from the pseudo-code of Kingma & Ba
  (arXiv:1412.6980), returning new arrays instead of updating in place.

Its gradients are checked by finite differences in tests/test_digits_training.py.

Adam forms (`adam=` below), each named by the registry: an implementation's
`adam` field says which rule its framework follows ("pytorch" when it
says nothing), and `adam_form` adds what its backend and dtype do on top:

- "pytorch": Algorithm 1 of the paper, as torch.optim.Adam:
  w -= lr · m̂ / (√v̂ + eps), m̂ = m / (1 - beta1^t), v̂ = v / (1 - beta2^t).
- "keras": the paper's "more efficient" ordering (end of its section 2),
  which Keras 3's Adam.update_step uses: alpha_t = lr · √(1 - beta2^t) /
  (1 - beta1^t) and w -= alpha_t · m / (√v + eps). Adding eps to √v rather
  than √v̂ is the same as Algorithm 1 with eps / √(1 - beta2^t) in place of
  eps: 32 times larger at the first step, 2.2 times after 225 steps. It is a
  different rule, not a rounding difference.
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
Adam rule does. So two runs of the same rule in the same dtype, summing in
different orders as this module and the implementations do, should agree
within SAFETY · √(n · steps) · u, with a factor of 10 for the constants of
the estimate (exp and log, and the rounding of Keras's logged loss, a
product and a quotient by the batch size): 1.3e-13 in float64 and 7e-5 in
float32 for the bundled digits' 225 steps. A different Adam rule is allowed
its own float64 distance from the reference on top (by the triangle
inequality).
"""

import math
from functools import lru_cache

import numpy as np

from sidebyside.implementations import digits
from sidebyside.implementations.digits.data import load_data
from sidebyside.implementations.digits.problem import CLASSES, batch_order, initial_weights

ADAM_FORMS = ("pytorch", "keras", "keras_float32_betas")
SAFETY = 10  # for the constants of the rounding estimate (see the docstring)


# The network, forward and backward ---------------------------------------------


def loss_and_gradients(params, x, labels):
    """Mean softmax cross-entropy of a batch and its gradient, written with einsum and logaddexp.

    params: {"w1": (D_in, H), "b1": (H,), "w2": (H, C), "b2": (C,)}; x: (N, D_in);
    labels: (N,) ints. Returns (loss as a Python float, {name: gradient}).
    """
    w1, b1, w2, b2 = (np.asarray(params[name], dtype=np.float64) for name in ("w1", "b1", "w2", "b2"))
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    N = len(labels)

    # Forward: z1 = x·w1 + b1, a1 = relu(z1), z2 = a1·w2 + b2 (the class scores).
    z1 = np.einsum("ni,ih->nh", x, w1) + b1
    active = z1 > 0  # where ReLU passes its input (and, below, its gradient)
    a1 = np.where(active, z1, 0.0)
    z2 = np.einsum("nh,hc->nc", a1, w2) + b2

    # Loss: -log softmax(z2)[label] = log Σ_c exp(z2_c) - z2_label, averaged
    # over the batch. logaddexp.reduce folds log(e^a + e^b) along the row, each
    # pair computed stably as max(a, b) + log1p(exp(-|a - b|)).
    log_normalizer = np.logaddexp.reduce(z2, axis=1)
    one_hot = np.eye(z2.shape[1])[labels]
    per_sample = log_normalizer - np.einsum("nc,nc->n", z2, one_hot)
    loss = math.fsum(per_sample) / N

    # Backward: ∂loss/∂z2 = (softmax(z2) - one_hot) / N; then the chain rule
    # through each layer, the bias gradients summing over the batch.
    dz2 = (np.exp(z2 - log_normalizer[:, None]) - one_hot) / N
    dw2 = np.einsum("nh,nc->hc", a1, dz2)
    db2 = np.einsum("nc->c", dz2)
    dz1 = np.einsum("nc,hc->nh", dz2, w2) * active
    dw1 = np.einsum("ni,nh->ih", x, dz1)
    db1 = np.einsum("nh->h", dz1)
    return loss, {"w1": dw1, "b1": db1, "w2": dw2, "b2": db2}


def predict(params, x):
    """The most likely class of each image (the largest score; the softmax keeps the order)."""
    a1 = np.maximum(np.einsum("ni,ih->nh", np.asarray(x, np.float64), params["w1"]) + params["b1"], 0.0)
    return np.argmax(np.einsum("nh,hc->nc", a1, params["w2"]) + params["b2"], axis=1)


# Adam, from the paper's pseudo-code ---------------------------------------------------


def adam(theta, gradient, m, v, t, problem, form="pytorch"):
    """One Adam step of one parameter at step t (counted from 1): returns (theta, m, v), new arrays.

    "pytorch" is Algorithm 1 of Kingma & Ba line by line. The Keras forms
    follow Keras 3's Adam.update_step, operation by operation, so that a Keras
    run can be replayed to rounding: its moment updates are written m + (g - m)(1 - beta1).
    """
    lr, beta1, beta2, eps = problem.learning_rate, problem.beta1, problem.beta2, problem.eps
    if form == "pytorch":
        m = beta1 * m + (1 - beta1) * gradient  # biased first moment estimate
        v = beta2 * v + (1 - beta2) * gradient**2  # biased second raw moment estimate
        m_hat = m / (1 - beta1**t)  # bias-corrected first moment estimate
        v_hat = v / (1 - beta2**t)  # bias-corrected second raw moment estimate
        return theta - lr * m_hat / (np.sqrt(v_hat) + eps), m, v
    if form not in ADAM_FORMS:
        raise ValueError(f"unknown Adam form {form!r}; valid forms: {', '.join(ADAM_FORMS)}")
    # Keras casts the betas to the variable's dtype with a float32 detour on
    # TensorFlow (and in any float32 run): beta^t is then of the rounded beta.
    rounding = np.float32 if form == "keras_float32_betas" else np.float64
    beta1_power = float(rounding(beta1)) ** t
    beta2_power = float(rounding(beta2)) ** t
    alpha = lr * math.sqrt(1 - beta2_power) / (1 - beta1_power)
    m = m + (gradient - m) * (1 - beta1)
    v = v + (gradient * gradient - v) * (1 - beta2)
    return theta - m * alpha / (np.sqrt(v) + eps), m, v


# The reference run ---------------------------------------------------------------------


def train(problem, data=None, adam_rule="pytorch"):
    """The float64 run of `problem` on `data`: (per-step losses, final params).

    Starts from the shared initial weights and walks the shared batch order,
    as every implementation does; each loss is the batch's before its update.
    """
    problem = problem.with_(dtype="float64")
    digits = load_data(problem, data)
    params = initial_weights(problem, digits.D_in)
    m = {name: np.zeros_like(value) for name, value in params.items()}
    v = {name: np.zeros_like(value) for name, value in params.items()}
    losses, t = [], 0
    for batches in batch_order(problem, len(digits.y_train)):
        for batch in batches:
            loss, grads = loss_and_gradients(params, digits.x_train[batch], digits.y_train[batch])
            losses.append(loss)
            t += 1
            for name in params:
                params[name], m[name], v[name] = adam(params[name], grads[name], m[name], v[name], t, problem, adam_rule)
    return np.array(losses), params


@lru_cache(maxsize=8)
def _run(problem, data, adam_rule):
    losses, params = train(problem, data, adam_rule)
    losses.setflags(write=False)  # the cache hands the same arrays to every caller
    for value in params.values():
        value.setflags(write=False)
    return losses, params


def _key(problem):
    # Only what shapes the trajectory keys the cache: not the dtype, not the target accuracy.
    return problem.with_(dtype="float64", target_accuracy=type(problem).target_accuracy)


def reference_losses(problem, data=None, adam="pytorch"):
    """Per-step float64 losses of the problem on `data` (a path, or None for the bundled digits)."""
    if adam not in ADAM_FORMS:
        raise ValueError(f"unknown Adam form {adam!r}; valid forms: {', '.join(ADAM_FORMS)}")
    return _run(_key(problem), None if data is None else str(data), adam)[0].copy()


def reference_accuracy(problem, data=None):
    """Test accuracy of the reference's final weights (Adam as in PyTorch)."""
    params = _run(_key(problem), None if data is None else str(data), "pytorch")[1]
    digits = load_data(problem, data)
    return float(np.mean(predict(params, digits.x_test) == digits.y_test))


# Which rule, and how close ---------------------------------------------------------------


def adam_form(implementation, dtype):
    """Which Adam rule the registered `implementation` follows when computing in `dtype`.

    Read from its registry entry's `adam` field ("pytorch" unless it says
    "keras"), refined for Keras by where its betas get rounded to float32.
    """
    spec = digits.spec(implementation)
    rule = spec.adam
    if rule == "pytorch":
        return "pytorch"
    if rule != "keras":
        raise ValueError(f"{implementation}: unknown adam option {rule!r}; valid: pytorch, keras")
    if dtype == "float32" or spec.backend == "tensorflow":
        return "keras_float32_betas"
    return "keras"


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
