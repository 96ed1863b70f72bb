"""The shared problem: sizes, hyper-parameters, data and initial weights.

Every implementation of the two-layer net trains on exactly the arrays drawn
here, so any difference between their losses comes from the framework, never
from a different seed or initializer.
"""

from dataclasses import dataclass, replace

import numpy as np

from sidebyside.implementations.devices import DTYPES, DeviceUnavailable, DtypeUnsupported  # noqa: F401 (re-exported)



@dataclass(frozen=True)
class Problem:
    """The tutorial's two-layer ReLU network, sum-of-squares loss, plain SGD."""

    N: int = 64  # batch size
    D_in: int = 1000  # input dimension
    H: int = 100  # hidden dimension
    D_out: int = 10  # output dimension
    learning_rate: float = 1e-6  # plain SGD step, no momentum
    steps: int = 500  # training steps, one batch each
    seed: int = 0  # seed of numpy.random.default_rng for data and weights
    dtype: str = "float32"  # "float32" or "float64"

    def __post_init__(self):
        for name in ("N", "D_in", "H", "D_out", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not np.isfinite(rate) or rate <= 0:
            raise ValueError(f"learning_rate must be a positive finite number, got {rate!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")

    @property
    def size(self):
        """The sizes as a dict, the way results files record them."""
        return {"N": self.N, "D_in": self.D_in, "H": self.H, "D_out": self.D_out}

    def with_(self, **changes):
        """A copy with some fields changed (the dataclass is frozen)."""
        return replace(self, **changes)

    def flops_per_step(self):
        """Floating-point operations one training step really performs.

        Forward: x·w1 costs 2·N·D_in·H and h_relu·w2 costs 2·N·H·D_out.
        Backward: the rule of thumb "twice the forward" counts, for each
        product, the gradient of its weight and of its input; but the input
        gradient of the first layer (x) is never needed, so the backward is
        2·N·D_in·H (grad_w1) + 2 · 2·N·H·D_out (grad_w2, grad_h_relu).
        Counting by the rule of thumb would overstate the work by about 1.5×
        and show shares of the measured peak above 100 %. Element-wise work
        (ReLU, loss, update) is lower order and left out.
        """
        forward = 2 * self.N * self.D_in * self.H + 2 * self.N * self.H * self.D_out
        backward = 2 * self.N * self.D_in * self.H + 2 * (2 * self.N * self.H * self.D_out)
        return forward + backward

    def bytes_needed(self):
        """Bytes of the arrays the problem allocates (data, weights, gradients)."""
        itemsize = np.dtype(self.dtype).itemsize
        data = self.N * self.D_in + self.N * self.D_out
        weights = self.D_in * self.H + self.H * self.D_out
        activations = 2 * self.N * self.H + self.N * self.D_out
        # Data and weights, plus gradients and activations, plus float64 draws.
        return (data + 2 * weights + activations) * itemsize + (data + weights) * 8


def make_data(problem=Problem()):
    """Draw x, y, w1, w2 from one numpy generator, in that order.

    Returns numpy arrays of the problem's dtype: x (N, D_in), y (N, D_out),
    w1 (D_in, H), w2 (H, D_out), all standard normal, as in the tutorial.
    The draws are made in float64 and then cast, so float32 and float64 runs
    start from the same numbers rounded once.
    """
    generator = np.random.default_rng(problem.seed)
    x = generator.standard_normal((problem.N, problem.D_in))
    y = generator.standard_normal((problem.N, problem.D_out))
    w1 = generator.standard_normal((problem.D_in, problem.H))
    w2 = generator.standard_normal((problem.H, problem.D_out))
    return tuple(np.ascontiguousarray(a, dtype=problem.dtype) for a in (x, y, w1, w2))


def demo(Net, problem=Problem()):
    """Train like the tutorial does: print the loss every 100 steps.

    This is what `python -m sidebyside.implementations.two_layer.<name>` runs.
    """
    x, y, w1, w2 = make_data(problem)
    net = Net(w1, w2, problem.learning_rate, dtype=problem.dtype)
    x, y = net.prepare(x, y)
    for t in range(problem.steps):
        loss = net.step(x, y)
        if t % 100 == 99:
            print(t, loss)
