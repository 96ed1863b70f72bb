"""How close is close enough: the reference trajectory and its tolerances.

The reference is the tutorial's algorithm in float64 numpy, written here
again (not imported from implementations/) so that no implementation is
checked against itself.

Tolerances, per step t, for a loss L_t against the reference R_t:

* float64: 1e-8 relative at every step. Different summation orders change
  the last bits (about 1e-16 relative); over 500 steps these differences
  grow to about 4e-10 here, well inside 1e-8.
* float32: unit round-off u = 2**-24 ≈ 6e-8. The loss is a sum of squares of
  residuals y_pred - y; once the residuals are much smaller than y itself,
  y_pred - y cancels and its relative error grows like u·|y|/|residual|. So
  the per-step tolerance is 200·u·(1 + rms(y)/rms(residual_t)), with
  rms(residual_t) = sqrt(R_t / (N·D_out)); the factor 200 covers the
  accumulation over steps (the largest ratio measured here is about 30).
  Float32 SGD also stalls: an update smaller than half a unit in the last
  place of a weight is lost, and the loss settles at a floor near
  N·D_out·u·mean(y²) (3.8e-5 for the tutorial problem; 4.1e-5 was measured).
  Steps are therefore compared only while R_t is above 10⁴ times that floor,
  and the final float32 loss must come within 10 times the floor.
"""

import numpy as np

FLOAT32_ROUNDOFF = 2.0**-24
FLOAT64_TOLERANCE = 1e-8
FLOAT32_GROWTH = 200.0
FLOAT32_COMPARED_ABOVE_FLOOR = 1e4
FLOAT32_REACHES_FLOOR = 10.0


def reference_losses(x, y, w1, w2, learning_rate, steps):
    """The two-layer net trained in float64; the loss before each update.

    Steps after a divergence (an inf or NaN loss) stay NaN.
    """
    x, y, w1, w2 = (np.array(a, dtype=np.float64) for a in (x, y, w1, w2))
    losses = np.full(steps, np.nan)
    with np.errstate(all="ignore"):  # a diverging run overflows on its way to inf
        for t in range(steps):
            h = x @ w1
            h_relu = np.maximum(h, 0.0)
            y_pred = h_relu @ w2
            losses[t] = np.sum((y_pred - y) ** 2)
            if not np.isfinite(losses[t]):
                break
            grad_y_pred = 2.0 * (y_pred - y)
            grad_w2 = h_relu.T @ grad_y_pred
            grad_h = (grad_y_pred @ w2.T) * (h > 0)
            grad_w1 = x.T @ grad_h
            w1 -= learning_rate * grad_w1
            w2 -= learning_rate * grad_w2
    return losses


def float32_floor(y):
    """The loss at which float32 SGD stalls, N·D_out·u·mean(y²)."""
    y = np.asarray(y, dtype=np.float64)
    return y.size * FLOAT32_ROUNDOFF * float(np.mean(y**2))


def tolerances(dtype, reference, y):
    """(compared, tolerance): which steps are compared, and each step's bound."""
    reference = np.asarray(reference, dtype=np.float64)
    if dtype == "float64":
        return np.isfinite(reference), np.full(reference.shape, FLOAT64_TOLERANCE)
    y = np.asarray(y, dtype=np.float64)
    residual = np.sqrt(np.maximum(reference, 0.0) / y.size)
    with np.errstate(divide="ignore"):
        tolerance = FLOAT32_GROWTH * FLOAT32_ROUNDOFF * (1.0 + np.sqrt(np.mean(y**2)) / residual)
    compared = reference >= FLOAT32_COMPARED_ABOVE_FLOOR * float32_floor(y)
    return compared, tolerance


def compare(losses, reference, dtype, y):
    """Agreement of a trajectory with the reference, as results.json records it.

    Returns a dict with `agreement` (largest relative difference over the
    compared steps), `agreement_tolerance` (the bound at the step closest to
    failing), `agreement_ratio` (difference over bound at that step: at most
    1 when the trajectory agrees) and `agrees`. Trajectories of different lengths are compared
    over their common steps; a float32 run must also reach the float32 floor
    where the reference goes below it.
    """
    losses = np.asarray([np.nan if value is None else value for value in losses], dtype=np.float64)
    steps = min(len(losses), len(reference))
    if steps == 0:
        return {"agreement": None, "agreement_tolerance": None, "agreement_ratio": None, "agrees": None}
    losses, reference = losses[:steps], np.asarray(reference[:steps], dtype=np.float64)
    compared, tolerance = tolerances(dtype, reference, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.abs(losses - reference) / np.abs(reference)
    relative = np.where(np.isfinite(relative), relative, np.inf)
    if not compared.any():
        return {"agreement": None, "agreement_tolerance": None, "agreement_ratio": None, "agrees": None}
    worst = int(np.argmax(np.where(compared, relative / tolerance, -1.0)))
    agrees = bool(np.all(relative[compared] <= tolerance[compared]))
    floor = FLOAT32_REACHES_FLOOR * float32_floor(y)
    if dtype == "float32" and reference[-1] < floor:
        # The float64 run got below the float32 floor: float32 must reach it.
        agrees = agrees and bool(losses[-1] <= floor)
    agreement = float(np.max(relative[compared]))
    return {
        "agreement": agreement if np.isfinite(agreement) else None,
        "agreement_tolerance": float(tolerance[worst]),
        "agreement_ratio": float(relative[worst] / tolerance[worst]) if np.isfinite(relative[worst]) else None,
        "agrees": agrees,
    }
