"""A whole framework in one test file: the framework, its adapter and its implementation.

Nothing else names it. tests/test_frameworks.py names this module in
SIDEBYSIDE_FRAMEWORKS (its adapter) and SIDEBYSIDE_IMPLEMENTATIONS (its
`stub_net`) and finds each part at work: the harness sizes its pool before
it is imported and reads the size back, the peak times its product, and a
case on a GPU is "n/a" for the reason its `device` gives.

The framework is this module itself (its import name, `NAME`, is what its
implementation requires): numpy's arrays under a pool of its own, sized
from STUB_FRAMEWORK_THREADS when it is first used, as a native library's
pool is when it loads, and resized by `set_threads`. It has no GPU and no extra to
install. Importing it loads no numpy, as importing an adapter loads no
framework: every process of a run imports the adapters before it sizes
the pools.
"""

import os

from sidebyside.implementations.devices import DeviceUnavailable, check_name

# --- the framework ------------------------------------------------------------

__version__ = "0.1"
THREADS = "STUB_FRAMEWORK_THREADS"
threads = None  # its pool's size: none until it is first used


def set_threads(count):
    global threads
    threads = count


def get_threads():
    if threads is None:
        set_threads(int(os.environ.get(THREADS, "1")))
    return threads


# --- its adapter (SIDEBYSIDE_FRAMEWORKS) -----------------------------------

NAME = __name__  # the framework this adapts: this module
PACKAGES = {"stub_framework": ("numpy",)}  # it records numpy's version: its arrays are numpy's
NO_GPU = "the stub framework computes on the CPU only"


def environment(threads):
    return {THREADS: str(threads)}


def configure(threads, tf32=False):
    set_threads(threads)
    return {}


def pools():
    return {"stub_intra_op": get_threads()}


def device(name):
    check_name(name)
    if name != "cpu":
        raise DeviceUnavailable(NO_GPU)
    return name


def kernels():
    return "stub kernels (numpy's matmul)"


def reset_peak(device):
    raise RuntimeError("the stub framework has no device memory")


def peak_bytes(device):
    return None


def forget_compiled():
    pass


def matmul(device, dtype, sizes, operands):
    if device != "cpu":
        return None
    import numpy as np

    return [(size, lambda a=operands[size][0], b=operands[size][1]: np.matmul(a, b)) for size in sizes]


def for_peak():
    return lambda: None


def after_peak(device):
    pass


# --- its implementation (SIDEBYSIDE_IMPLEMENTATIONS) -------------------------

IMPLEMENTATIONS = [
    {"name": "stub_net", "framework": "stub", "requires": ("tests.stubs.stub_framework",), "extra": "numpy",
     "promise": {"compiled": False}},
]


def __getattr__(name):
    """`Net`, numpy_manual's, imported only when the harness loads the implementation."""
    if name == "Net":
        from sidebyside.implementations.two_layer.numpy_manual import Net

        return Net
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
