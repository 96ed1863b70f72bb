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
    net.fit_epoch(x, y, batches) -> numpy array of per-step losses
        one training step per index array in `batches`, in order; each loss is
        the batch's mean loss before that step's update.
    net.predict(x) -> numpy array of class indices (N,)
    net.params() -> dict like `params`, as numpy arrays.

`python -m implementations.digits.<module>` trains five epochs on the bundled
digits and prints the training loss and test accuracy of each.
"""

from implementations import Implementation, load_entry, missing_entry

WORKLOAD = "digits"

REGISTRY = {
    spec.name: spec
    for spec in (
        Implementation("numpy_manual", "numpy_manual", "numpy", ("numpy",), "numpy", workload=WORKLOAD),
        Implementation("torch_manual", "torch_manual", "torch", ("torch",), "torch", workload=WORKLOAD),
        Implementation("torch_autograd", "torch_autograd", "torch", ("torch",), "torch", workload=WORKLOAD),
        Implementation("torch_nn", "torch_nn", "torch", ("torch",), "torch", workload=WORKLOAD),
        Implementation(
            "keras_tensorflow", "keras_sequential", "keras", ("keras", "tensorflow"),
            "keras,tensorflow", {"backend": "tensorflow"}, workload=WORKLOAD,
        ),
        Implementation(
            "keras_torch", "keras_sequential", "keras", ("keras", "torch"),
            "keras,torch", {"backend": "torch"}, workload=WORKLOAD,
        ),
        Implementation(
            "keras_jax", "keras_sequential", "keras", ("keras", "jax"),
            "keras,jax", {"backend": "jax"}, workload=WORKLOAD,
        ),
    )
}


def names():
    """Registered names, in registry order."""
    return list(REGISTRY)


def spec(name):
    """The registry entry for `name`, or a ValueError that lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown digits implementation {name!r}; valid names: {', '.join(REGISTRY)}"
        ) from None


def missing(name):
    """Why `name` cannot run here (a one-line reason), or None if it can. Imports nothing."""
    return missing_entry(spec(name))


def load(name):
    """Import the implementation and return its Net class.

    Raises FrameworkMissing or FrameworkBroken with a one-line reason, as the
    two-layer registry does.
    """
    return load_entry(spec(name), package=__name__)
