"""The digits workload: a classifier of handwritten digits trained with Adam in minibatches.

The network is D_in → 50 → ReLU → 10 with biases, softmax cross-entropy
averaged over the batch, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8), batches
of 32, five epochs; see problem.py for the shared weights and batch order and
data.py for the data. Each registered variant defines a `Net` with this
interface (the two-layer workload's, adapted to epochs and labels):

    Net(params, problem, device="cpu", **options)
        params: {"w1": (D_in, H), "b1": (H,), "w2": (H, 10), "b2": (10,)} numpy
        arrays from problem.initial_weights; problem: a DigitsProblem, whose
        dtype ("float32"/"float64") the net computes in. Raises
        DeviceUnavailable or DtypeUnsupported.
    net.prepare(x) -> x, net.prepare(x, y) -> (x, y)
        images (N, D_in) and int labels (N,) converted for the framework
        (device, dtype) once, outside any timed region.
    net.prepare_batches(batches) -> batches
        an epoch's index arrays converted the same way (integer tensors on the
        device), once, outside any timed region.
    net.fit_epoch(x, y, batches) -> numpy array of per-step losses
        one training step per index array in `batches`, in order; each loss is
        the batch's mean loss before that step's update. Prepared arguments
        pass through without a copy; numpy ones are converted first.
    net.predict(x) -> numpy array of class indices (N,)
    net.params() -> dict like `params`, as numpy arrays.

A registry entry's `adam` field names the Adam rule its framework follows:
"pytorch" (eps added to √v̂, the default) or "keras" (eps added to √v);
reference.py replays either. The entries themselves are the one registry's
(implementations/__init__.py), those a file in this folder declares.

`python -m sidebyside.implementations.digits.<module>` trains five epochs on the bundled
digits and prints the training loss and test accuracy of each.
"""

from sidebyside.implementations import REGISTRY as ALL, create_entry, load_entry, missing_entry
from sidebyside.implementations import spec as registry_spec

WORKLOAD = "digits"

# The registry's digits variants, in its order: a view, not a second registry.
REGISTRY = {name: entry for name, entry in ALL.items() if WORKLOAD in entry.workloads}


def names():
    """Registered names, in registry order."""
    return list(REGISTRY)


def spec(name):
    """The registry entry for `name`, or a ValueError that lists the valid digits names."""
    return registry_spec(name, WORKLOAD)


def missing(name):
    """Why `name` cannot run here (a one-line reason), or None if it can. Imports nothing."""
    return missing_entry(spec(name))


def load(name):
    """Import the implementation and return its Net class.

    Raises FrameworkMissing or FrameworkBroken with a one-line reason, as the
    two-layer registry does.
    """
    return load_entry(spec(name), WORKLOAD)


def create(name, params, problem, device="cpu", **overrides):
    """The registered digits variant `name`, built on `params` for `problem`.

    The two-layer `create` for this workload: the entry's options are applied
    (its `backend` picks KERAS_BACKEND), `overrides` are checked against the
    Net's parameters, and FrameworkMissing, FrameworkBroken,
    DeviceUnavailable and DtypeUnsupported come through as they are.
    """
    return create_entry(spec(name), params, problem, device=device, overrides=overrides, workload=WORKLOAD)
