"""One adapter per framework: all the harness knows of a framework, in one module each.

An adapter is a module named after its framework's import name: this
folder's (numpy.py, torch.py, tensorflow.py, jax.py, keras.py), found by
listing it, and the plug-ins named in SIDEBYSIDE_FRAMEWORKS (import paths,
comma-separated; every process of a run inherits it), each named by its
`NAME` or else by its module's last name. An adapter imports its framework
only inside its functions, so importing one is free, and provides:

    PACKAGES                  the distributions whose version results.json records
    environment(threads)      variables to set before the framework is imported
    configure(threads, tf32)  threads and matmul precision, set (returns what results.json records as set)
    pools()                   the framework's thread pools as it reports them now: {pool: threads}
                              (an inter-op pool's name ends in "_inter_op": it is asked for one thread)
    device(name)              "cpu" or "cuda" as the framework's own device, or DeviceUnavailable saying why
                              not ("no CUDA device", "CPU-only build of torch installed (...)")
    kernels()                 the matrix-multiply library really in use, detected in this process
    reset_peak(device), peak_bytes(device)   the peak device memory of a case: reset_peak starts it afresh and
                              returns the bytes allocated then, or raises why it cannot (JAX); peak_bytes reads it
    forget_compiled()         drop what a warm-up compiled, so no case inherits its graphs
    matmul(device, dtype, sizes, operands)   the peak's products [(size, multiply)], or None where it has none
                              on that device; `matmul = None`: the peak never imports it (TensorFlow)
    for_peak(), after_peak(device)   what the peak's products need switched on (returns what switches
                              it back: JAX's 64-bit mode), and what to release after a device's timing
    profile(step, steps, device)   where the framework has a profiler (--profile; an adapter without one
                              lacks it): `step` (one synchronized training step) run `steps` times under it,
                              once warm; per step {"wall_s", "matmul_s", "other_kernels_s", "steps",
                              "profiler"} (_profile.py: what counts as a kernel, how nesting is counted once)

Keras computes with its backend: its adapter says so (`COMPUTES_WITH`) and
has nothing else but its versions; the harness asks the backend's adapter.
No harness module names a framework: adding one is its adapter, its
implementation files (each declares its registry entries) and a pyproject
extra.
"""

import importlib
import importlib.util

from sidebyside import plugins as listing
from sidebyside.implementations.devices import DeviceUnavailable

PLUGINS = "SIDEBYSIDE_FRAMEWORKS"


def discover(plugins=None):
    """{framework: adapter's import path}: this folder's adapters, then `plugins` (SIDEBYSIDE_FRAMEWORKS when None).

    Every module here is an adapter, named after its framework's import
    name; a leading underscore marks a helper two adapters share (_xla.py).
    A plug-in is imported to read its `NAME`; one that adapts a framework
    already adapted, or that cannot be imported, is a ValueError.
    """
    if plugins is None:
        plugins = listing.named(PLUGINS)
    found = {path.rpartition(".")[2]: path for path in listing.listed(__name__, __path__)}
    for plugin in plugins:
        try:
            module = importlib.import_module(plugin)
        except ImportError as error:
            raise ValueError(f"{PLUGINS}: cannot import {plugin!r}: {error}") from None
        name = getattr(module, "NAME", plugin.rpartition(".")[2])
        if name in found:
            raise ValueError(f"{PLUGINS}: {plugin} adapts {name!r}, which {found[name]} adapts already")
        found[name] = plugin
    return found


ADAPTERS = discover()
NAMES = tuple(ADAPTERS)


def adapter(name):
    """The adapter module of framework `name` (an import name); ValueError for an unknown one."""
    if name not in ADAPTERS:
        raise ValueError(f"no adapter for framework {name!r}; adapters: {', '.join(NAMES)}")
    return importlib.import_module(ADAPTERS[name])


def computes(name):
    """Whether framework `name` has an adapter and does its own arithmetic (Keras computes with its backend)."""
    return name in ADAPTERS and not getattr(adapter(name), "COMPUTES_WITH", None)


def computing(names):
    """Of the import names `names`, the frameworks that compute (Keras computes with its backend)."""
    return [name for name in names if computes(name)]


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


def device(framework, name):
    """Device `name` ("cpu", "cuda") as `framework` computes on it, or DeviceUnavailable with its adapter's reason.

    A framework without an adapter of its own (computing with another) gets the name back unchecked.
    """
    return adapter(framework).device(name) if computes(framework) else name


def kernels(framework):
    """The matrix-multiply library `framework` uses in this process ("unknown" for no adapter)."""
    return adapter(framework).kernels() if framework in ADAPTERS else "unknown"


def cuda_available(framework):
    """Whether `framework` (an import name) sees a CUDA device here; False for one without an adapter or a GPU."""
    if not computes(framework):
        return False
    try:
        adapter(framework).device("cuda")
    except (DeviceUnavailable, ImportError):
        return False
    return True


def forget_compiled(framework):
    if framework in ADAPTERS:
        adapter(framework).forget_compiled()


def gpu_peak_bytes(framework):
    """Peak device memory the framework reports, where it reports one."""
    if framework not in ADAPTERS:
        return None
    try:
        return adapter(framework).peak_bytes("cuda")
    except Exception:  # the framework keeps no such statistic here
        return None


def peak_libraries():
    """The frameworks whose products the peak tries (an adapter whose `matmul` is not None), installed here."""
    return [name for name in computing(NAMES) if adapter(name).matmul is not None and installed(name)]


def installed(name):
    """Whether framework `name` can be imported here (found, not imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
