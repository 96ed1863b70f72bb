"""The registry of implementations, imported lazily.

Each entry names the module that holds the variant, the frameworks it needs
(import names), and the pip extra that installs them. Nothing heavy is
imported until `load(name)` is called, so `sidebyside list` and the tests can
ask what is available without paying for TensorFlow's import.
"""

import importlib
import importlib.util
import os
from dataclasses import dataclass, field


class ImplementationUnavailable(RuntimeError):
    """A framework the implementation needs is missing, broken, or in conflict."""


class FrameworkMissing(ImplementationUnavailable):
    """Not installed, or Keras already holds another backend: the case is "n/a"."""


class FrameworkBroken(ImplementationUnavailable):
    """Installed but its import raises: the case is "failed", never a silent skip."""


@dataclass(frozen=True)
class Implementation:
    name: str  # registry name, e.g. "torch_autograd"
    module: str  # module under implementations/ that defines Net
    framework: str  # the framework people would name when comparing
    requires: tuple  # import names that must be present
    extra: str  # pip extra that installs them: pip install -e ".[extra]"
    options: dict = field(default_factory=dict)  # passed to the module's configure()
    workload: str = "two_layer"  # which problem it solves
    slow_start: bool = False  # needs seconds before its first step (compiling, starting ranks): not in --quick

    @property
    def backend(self):
        return self.options.get("backend", self.framework)


REGISTRY = {
    spec.name: spec
    for spec in (
        Implementation("numpy_manual", "numpy_manual", "numpy", ("numpy",), "numpy"),
        Implementation("torch_manual", "torch_manual", "torch", ("torch",), "torch"),
        Implementation("torch_autograd", "torch_autograd", "torch", ("torch",), "torch"),
        Implementation("torch_nn", "torch_nn", "torch", ("torch",), "torch"),
        Implementation(
            "keras_tensorflow", "keras_sequential", "keras", ("keras", "tensorflow"),
            "keras,tensorflow", {"backend": "tensorflow"},
        ),
        Implementation(
            "keras_torch", "keras_sequential", "keras", ("keras", "torch"),
            "keras,torch", {"backend": "torch"},
        ),
        Implementation(
            "keras_jax", "keras_sequential", "keras", ("keras", "jax"),
            "keras,jax", {"backend": "jax"},
        ),
        Implementation("jax_jit", "jax_jit", "jax", ("jax",), "jax"),
        Implementation("torch_compile", "torch_compile", "torch", ("torch",), "torch", slow_start=True),
        Implementation(
            "tf_function", "tf_function", "tensorflow", ("tensorflow",), "tensorflow", {"jit_compile": False},
        ),
        Implementation(
            "tf_function_xla", "tf_function", "tensorflow", ("tensorflow",), "tensorflow", {"jit_compile": True},
        ),
        Implementation("torch_ddp", "torch_ddp", "torch", ("torch",), "torch", {"ranks": 2}, slow_start=True),
        Implementation(
            "keras_tensorflow_xla", "keras_sequential", "keras", ("keras", "tensorflow"),
            "keras,tensorflow", {"backend": "tensorflow", "jit_compile": True},
        ),
        Implementation(
            "keras_torch_compile", "keras_sequential", "keras", ("keras", "torch"),
            "keras,torch", {"backend": "torch", "jit_compile": True}, slow_start=True,
        ),
        Implementation(
            "keras_jax_eager", "keras_sequential", "keras", ("keras", "jax"),
            "keras,jax", {"backend": "jax", "jit_compile": False},
        ),
    )
}


def names(workload=None):
    """Registered names, in registry order, optionally for one workload."""
    return [name for name, spec in REGISTRY.items() if workload in (None, spec.workload)]


def spec(name):
    """The registry entry for `name`, or a ValueError that lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown implementation {name!r}; valid names: {', '.join(REGISTRY)}"
        ) from None


def missing(name):
    """Why `name` cannot run here (a one-line reason), or None if it can.

    Only looks for the packages; it does not import them, so it is cheap.
    """
    return missing_entry(spec(name))


def missing_entry(entry):
    """`missing` for a registry entry of any workload."""
    absent = [module for module in entry.requires if importlib.util.find_spec(module) is None]
    if absent:
        return f"{', '.join(absent)} not installed (pip install -e \".[{entry.extra}]\")"
    backend = entry.options.get("backend")
    if backend and "keras" in entry.requires:
        return keras_backend_conflict(backend)
    return None


def keras_backend_conflict(backend):
    """Keras fixes its backend at import: a second backend needs a new process."""
    import sys

    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            return (
                f"keras is already imported with the {current} backend in this process; "
                f"run {backend} in its own process (KERAS_BACKEND={backend})"
            )
    return None


def load(name):
    """Import the implementation and return its Net class.

    Raises FrameworkMissing (a framework is not installed, or Keras already
    holds another backend in this process) or FrameworkBroken (it is installed
    but its import raises), each with a one-line reason.
    """
    return load_entry(spec(name))


def load_entry(entry, package=__name__):
    """`load` for a registry entry of any workload; its module lives in `package`."""
    name = entry.name
    reason = missing_entry(entry)
    if reason:
        raise FrameworkMissing(f"{name}: {reason}")
    backend = entry.options.get("backend")
    if backend and "keras" in entry.requires:
        os.environ["KERAS_BACKEND"] = backend
    try:
        module = importlib.import_module(f"{package}.{entry.module}")
    except ModuleNotFoundError as error:
        raise FrameworkMissing(f"{name}: {error.name} not installed: {error}") from error
    except Exception as error:  # an installed but broken framework
        summary = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise FrameworkBroken(
            f"{name}: import failed: {type(error).__name__}: {summary}"
        ) from error
    return module.Net
