"""One adapter per framework: what the harness must know of a framework, in one module each.

An adapter is the module here named after the framework (numpy.py,
torch.py, tensorflow.py, jax.py, keras.py). It imports its framework only
inside its functions, so importing an adapter is free, and provides:

    PACKAGES                  the distributions whose version results.json records
    environment(threads)      variables to set before the framework is imported
    configure(threads, tf32)  threads and matmul precision, set (returns what results.json records as set)
    pools()                   the framework's thread pools as it reports them now: {pool: threads}
    kernels()                 the matrix-multiply library really in use, detected in this process
    reset_peak(device), peak_bytes(device)   the peak device memory of a case: reset_peak starts it afresh and
                              returns the bytes allocated then, or raises why it cannot (JAX); peak_bytes reads it
    forget_compiled()         drop what a warm-up compiled, so no case inherits its graphs
    matmul(device, dtype, sizes, operands)   the peak's products [(size, multiply)], or None (no BLAS of its own to try)
    gpu_present()             whether this framework sees a CUDA device here

Keras computes with its backend: its adapter says so (`COMPUTES_WITH`), and
the harness asks the backend's adapter. The adapters are found by listing
this folder: adding a framework is adding an adapter here, its
implementation files (each declares its registry entries) and a pyproject
extra; no harness module names it.
"""

import importlib
import pkgutil

# Every module here is an adapter, named after its framework's import name;
# a leading underscore marks a helper two adapters share (_xla.py).
NAMES = tuple(sorted(module.name for module in pkgutil.iter_modules(__path__) if not module.name.startswith("_")))


def adapter(name):
    """The adapter module of framework `name` (an import name); ValueError for an unknown one."""
    if name not in NAMES:
        raise ValueError(f"no adapter for framework {name!r}; adapters: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def computing(names):
    """Of the import names `names`, the frameworks that compute (Keras computes with its backend)."""
    return [name for name in names if name in NAMES and not getattr(adapter(name), "COMPUTES_WITH", None)]


def compute_framework(spec):
    """The framework that does an implementation's arithmetic (torch for keras_torch, ...)."""
    return next(iter(computing(spec.requires)), spec.framework)


def environment(threads):
    """Every adapter's variables for `threads`, merged: set before any framework is imported."""
    merged = {}
    for name in NAMES:
        merged.update(adapter(name).environment(threads))
    return merged


def configure(names, threads, tf32=False):
    """Threads and matmul precision in each computing framework of `names`; their settings, merged."""
    applied = {}
    for name in computing(names):
        applied.update(adapter(name).configure(threads, tf32))
    return applied


def pools(names):
    """The thread pools of each computing framework of `names`, read back from the framework, merged.

    A framework that cannot say (JAX without a CPU platform) adds nothing.
    """
    sizes = {}
    for name in computing(names):
        try:
            sizes.update(adapter(name).pools())
        except Exception:  # the framework keeps no such setting here
            continue
    return sizes


def kernels(framework):
    """The matrix-multiply library `framework` uses in this process ("unknown" for no adapter)."""
    return adapter(framework).kernels() if framework in NAMES else "unknown"


def cuda_available(framework):
    """Whether `framework` (an import name) sees a CUDA device here; False for one without an adapter or a GPU."""
    if framework not in NAMES or getattr(adapter(framework), "COMPUTES_WITH", None):
        return False
    return adapter(framework).gpu_present()


def forget_compiled(framework):
    if framework in NAMES:
        adapter(framework).forget_compiled()


def gpu_peak_bytes(framework):
    """Peak device memory the framework reports, where it reports one."""
    if framework not in NAMES:
        return None
    try:
        return adapter(framework).peak_bytes("cuda")
    except Exception:  # the framework keeps no such statistic here
        return None
