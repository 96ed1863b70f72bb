"""The digits problem: hyper-parameters, initial weights and batch order.

Every implementation of the digits classifier starts from the weights drawn
here and walks the training set in the batches listed here, so any difference
between their losses comes from the framework, never from a different seed,
initializer or shuffle. The data itself comes from `data.py`.
"""

from dataclasses import dataclass, replace

import numpy as np

from sidebyside.implementations.devices import DTYPES, DeviceUnavailable, DtypeUnsupported  # noqa: F401 (re-exported)

CLASSES = 10  # the digits 0 to 9: the output dimension D_out


@dataclass(frozen=True)
class DigitsProblem:
    """The article's case study: one hidden layer of 50 units, Adam, minibatches."""

    hidden: int = 50  # units of the hidden ReLU layer (H)
    batch_size: int = 32  # images per training step; the last batch of an epoch may be smaller
    epochs: int = 5  # passes over the training set
    learning_rate: float = 1e-3  # Adam's step size (alpha in Kingma & Ba)
    beta1: float = 0.9  # Adam's decay of the running mean of gradients
    beta2: float = 0.999  # Adam's decay of the running mean of squared gradients
    eps: float = 1e-8  # Adam's epsilon, added to sqrt(v_hat) (PyTorch's placement; see numpy_manual)
    seed: int = 0  # seeds the weights, the batch order and the train/test split
    test_fraction: float = 0.2  # share of the data held out for test accuracy (stratified by label)
    dtype: str = "float32"  # "float32" or "float64"
    # The test accuracy every implementation is timed to reach: time_to_target_s
    # adds up the epoch times until the first epoch at or above it. One target
    # for all, below what five epochs reach on the bundled digits (about 0.9)
    # and above what one epoch does (about 0.55), so it tells the fast from the slow.
    target_accuracy: float = 0.85

    def __post_init__(self):
        for name in ("hidden", "batch_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        for name, allowed, interval in (
            ("learning_rate", lambda v: v > 0, "(0, inf)"),
            ("eps", lambda v: v > 0, "(0, inf)"),
            ("test_fraction", lambda v: 0 < v < 1, "(0, 1)"),
            ("beta1", lambda v: 0 <= v < 1, "[0, 1)"),
            ("beta2", lambda v: 0 <= v < 1, "[0, 1)"),
            ("target_accuracy", lambda v: 0 < v <= 1, "(0, 1]"),
        ):
            value = getattr(self, name)
            number = not isinstance(value, bool) and isinstance(value, (int, float)) and np.isfinite(value)
            if not number or not allowed(value):
                raise ValueError(f"{name} must be a number in {interval}, got {value!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")

    def size(self, D_in):
        """The sizes as a dict, the way results files record them (N is the batch)."""
        return {"N": self.batch_size, "D_in": int(D_in), "H": self.hidden, "D_out": CLASSES}

    def with_(self, **changes):
        """A copy with some fields changed (the dataclass is frozen)."""
        return replace(self, **changes)


def initial_weights(problem, D_in):
    """w1 (D_in, H), b1 (H,), w2 (H, 10), b2 (10,) as numpy arrays of the problem's dtype.

    The weights are drawn once, in float64, from numpy.random.default_rng(seed)
    and then cast, so float32 and float64 runs start from the same numbers
    rounded once, and every framework loads these instead of its own default
    initializer. w1 is He-normal, N(0, 2/D_in), which keeps the variance of the
    ReLU layer's output near that of its input; w2 is LeCun-normal,
    N(0, 1/H), right for the linear layer that feeds the softmax. Biases start
    at zero, as in Keras and most frameworks.
    """
    generator = np.random.default_rng(problem.seed)
    H = problem.hidden
    w1 = generator.standard_normal((D_in, H)) * np.sqrt(2.0 / D_in)
    w2 = generator.standard_normal((H, CLASSES)) * np.sqrt(1.0 / H)
    params = {"w1": w1, "b1": np.zeros(H), "w2": w2, "b2": np.zeros(CLASSES)}
    return {name: np.ascontiguousarray(value, dtype=problem.dtype) for name, value in params.items()}


def batch_order(problem, n_train):
    """The training batches of every epoch: a list (one per epoch) of lists of index arrays.

    Each epoch draws a fresh permutation of range(n_train) from one numpy
    generator, seeded from the problem's seed but independent of the weights'
    draws, and cuts it into consecutive chunks of batch_size. This is sampling
    without replacement: every image is seen exactly once per epoch. The last
    chunk keeps the remainder (n_train % batch_size images) rather than dropping
    it, as PyTorch's DataLoader and Keras's fit do by default. Every framework
    is handed these same index arrays, in this order.
    """
    if isinstance(n_train, bool) or not isinstance(n_train, (int, np.integer)) or n_train < 1:
        raise ValueError(f"n_train must be a positive integer, got {n_train!r}")
    generator = np.random.default_rng([problem.seed, 1])  # stream 1: batches (weights use the plain seed)
    epochs = []
    for _ in range(problem.epochs):
        permutation = generator.permutation(n_train)
        epochs.append([permutation[start : start + problem.batch_size] for start in range(0, n_train, problem.batch_size)])
    return epochs


def train_loss(losses, batches):
    """An epoch's training loss: the per-step losses averaged per image.

    Each step's loss is a mean over its batch, so the steps are weighted by
    their batch sizes; this is the figure Keras prints at the end of an epoch.
    """
    sizes = np.array([len(batch) for batch in batches], dtype=np.float64)
    return float(np.dot(np.asarray(losses, dtype=np.float64), sizes) / sizes.sum())


def accuracy(predicted, labels):
    """Share of the predicted class indices that equal the labels, in [0, 1]."""
    return float(np.mean(np.asarray(predicted) == np.asarray(labels)))
