"""The one registry of implementations, imported lazily, and the one way to build them.

Each entry names the module that holds the variant, the workloads it solves
(its module of that name lives in each workload's package:
implementations/two_layer/torch_nn.py, implementations/digits/torch_nn.py),
the frameworks it needs (import names), the pip extra that installs them, and
the constructor options that make it that variant (tf_function and
tf_function_xla are one module, built with jit_compile off and on). Nothing heavy is imported until a net is
asked for, so `sidebyside list` and the tests can ask what is available
without paying for TensorFlow's import.

`create(name, w1, w2, learning_rate, ...)` is how every caller builds a
registered two-layer variant (`digits.create` the digits one): it imports the module and applies the entry's options,
so no caller has to remember that tf_function_xla means jit_compile=True.
`load(name)` returns the bare Net class, for code that needs the class itself.
"""

import importlib
import importlib.util
import inspect
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
    module: str  # module in each workload's package that defines Net (or a full dotted import path)
    framework: str  # the framework people would name when comparing
    requires: tuple  # import names that must be present
    extra: str  # pip extra that installs them: pip install -e ".[extra]"
    options: dict = field(default_factory=dict)  # passed to the module's configure()
    workloads: tuple = ("two_layer",)  # the problems it solves: a module of its name in each one's package
    # The Adam rule its framework's optimizer follows (the digits workload):
    # "pytorch" (eps added to √v̂) or "keras" (eps added to √v); the digits
    # reference replays either.
    adam: str = "pytorch"
    slow_start: bool = False  # needs seconds before its first step (compiling, tracing op by op, starting ranks): run only when named or with --all, never with --quick
    preload: tuple = ()  # modules its first step imports: the worker's zygote imports them once, before forking
    # A speed-written variant names its idiomatic sibling, the registered
    # variant of the same framework it is a rewrite of, and says in one
    # sentence what it changes; the report pairs the two ("idiom vs ceiling").
    tuned_from: str | None = None
    tuning: str = ""
    # How `sidebyside run` starts it: "" in a process of its own forked from
    # its framework's zygote; "torchrun" (torch_ddp) through torchrun, as a
    # cluster job is started (sidebyside/workloads/two_layer/ddp_launch.py). The Net stays the
    # in-process interface (tests, pytest-benchmark).
    launcher: str = ""
    in_process: bool = True  # False: only ever runs as a job of several processes (no Net to drive in one)
    # Why its first step is slow, as the report's findings say it ("" for
    # one-time set-up alone: allocation, caches, thread pools).
    first_step: str = ""

    @property
    def backend(self):
        return self.options.get("backend", self.framework)

    def module_path(self, workload):
        """The dotted module that defines this variant's Net for `workload`."""
        return self.module if "." in self.module else f"{__name__}.{workload}.{self.module}"


# What torch.compile imports on its first call: about 130 MB that would
# otherwise be charged to the first case's memory.
TORCH_COMPILER = ("torch._dynamo", "torch._inductor.compile_fx")
# What a torch.optim optimizer imports when it is made (its step is wrapped
# by torch._dynamo's decorators): 1.1-1.7 s and 800 modules in every fresh
# process that did not have them.
TORCH_OPTIM = ("torch._dynamo",)

BOTH = ("two_layer", "digits")  # the variants written for both workloads

# What the first call of a compiled or traced variant pays, per way of writing it.
KERAS_FIRST = "Keras compiles train_on_batch with its backend on the first call"
JIT_FIRST = "jax.jit traces and compiles on the first call"
TF_FIRST = "tf.function traces the step into a graph on the first call"
COMPILE_FIRST = "torch.compile traces and compiles the step on the first call"

REGISTRY = {
    spec.name: spec
    for spec in (
        Implementation("numpy_manual", "numpy_manual", "numpy", ("numpy",), "numpy", workloads=BOTH),
        Implementation("torch_manual", "torch_manual", "torch", ("torch",), "torch", workloads=BOTH),
        Implementation("torch_autograd", "torch_autograd", "torch", ("torch",), "torch", workloads=BOTH),
        Implementation("torch_nn", "torch_nn", "torch", ("torch",), "torch", workloads=BOTH, preload=TORCH_OPTIM),
        Implementation(
            "keras_tensorflow", "keras_sequential", "keras", ("keras", "tensorflow"),
            "keras,tensorflow", {"backend": "tensorflow"}, workloads=BOTH, adam="keras", first_step=KERAS_FIRST,
        ),
        Implementation(
            "keras_torch", "keras_sequential", "keras", ("keras", "torch"),
            "keras,torch", {"backend": "torch"}, workloads=BOTH, adam="keras", first_step=KERAS_FIRST,
        ),
        Implementation(
            "keras_jax", "keras_sequential", "keras", ("keras", "jax"),
            "keras,jax", {"backend": "jax"}, workloads=BOTH, adam="keras", first_step=KERAS_FIRST,
        ),
        Implementation("jax_jit", "jax_jit", "jax", ("jax",), "jax", first_step=JIT_FIRST),
        Implementation("torch_compile", "torch_compile", "torch", ("torch",), "torch", slow_start=True,
                       preload=TORCH_COMPILER, first_step=COMPILE_FIRST),
        Implementation(
            "tf_function", "tf_function", "tensorflow", ("tensorflow",), "tensorflow", {"jit_compile": False},
            first_step=TF_FIRST,
        ),
        Implementation(
            "tf_function_xla", "tf_function", "tensorflow", ("tensorflow",), "tensorflow", {"jit_compile": True},
            first_step=TF_FIRST,
        ),
        Implementation("torch_ddp", "torch_ddp", "torch", ("torch",), "torch", {"ranks": 2}, slow_start=True,
                       launcher="torchrun"),
        Implementation(
            "keras_tensorflow_xla", "keras_sequential", "keras", ("keras", "tensorflow"),
            "keras,tensorflow", {"backend": "tensorflow", "jit_compile": True}, first_step=KERAS_FIRST,
        ),
        Implementation(
            "keras_torch_compile", "keras_sequential", "keras", ("keras", "torch"),
            "keras,torch", {"backend": "torch", "jit_compile": True}, slow_start=True, preload=TORCH_COMPILER,
            first_step=KERAS_FIRST,
        ),
        Implementation(
            "keras_jax_eager", "keras_sequential", "keras", ("keras", "jax"),
            "keras,jax", {"backend": "jax", "jit_compile": False}, slow_start=True, first_step=KERAS_FIRST,
        ),
        Implementation(
            "numpy_tuned", "numpy_tuned", "numpy", ("numpy",), "numpy", tuned_from="numpy_manual",
            tuning="every intermediate is allocated once and written with out=, the loss is one dot product, "
                   "the factor 2 and the learning rate scale the 64×10 error instead of the gradients, "
                   "every matrix is kept transposed (the two large products read and write w1 as H×D_in, "
                   "x transposed copied once), and the ReLU's backward is one multiply by a mask of h > 0",
        ),
        Implementation(
            "torch_tuned", "torch_tuned", "torch", ("torch",), "torch", tuned_from="torch_manual",
            tuning="outputs are preallocated (mm(out=)), the weights are updated by fused in-place "
                   "addmm_ with alpha = -2·learning rate, every matrix is kept transposed (the two large "
                   "products read w1 along D_in, the small ones write D_out×N), the two large products are split "
                   "into one block of hidden units per thread (bmm, baddbmm_) for batches of up to 256, ReLU runs "
                   "in place and its backward is one threshold_backward, ops run under inference_mode, "
                   "and on a GPU the step is replayed as one CUDA graph",
        ),
        Implementation(
            "jax_tuned", "jax_tuned", "jax", ("jax",), "jax", tuned_from="jax_jit",
            tuning="w1, x (copied once) and the hidden layer are kept transposed so that XLA's faster CPU dot "
                   "kernels serve both large products, the backward pass is written by hand inside one jitted "
                   "step with donated weights, the loss is read with np.asarray instead of float(), and train() "
                   "runs its steps in one compiled lax.fori_loop, compiled once for any length",
            first_step=JIT_FIRST,
        ),
        Implementation(
            "tensorflow_tuned", "tensorflow_tuned", "tensorflow", ("tensorflow",), "tensorflow",
            tuned_from="tf_function",
            tuning="the backward pass is written by hand instead of a GradientTape, in a graph that XLA does "
                   "not compile (no faster at this size on the CPU), called by its concrete function's flat call, "
                   "prepare() passes our own tensors through, and train() is one graph loop", first_step=TF_FIRST,
        ),
        # Data-parallel over processes, launched as a job of several processes
        # (sidebyside/workloads/two_layer/multiworker.py); no in-process Net.
        Implementation("tf_multiworker", "tf_multiworker", "tensorflow", ("tensorflow",), "tensorflow",
                       {"ranks": 2}, slow_start=True, launcher="tf_config", in_process=False, first_step=TF_FIRST),
        Implementation("jax_distributed", "jax_distributed", "jax", ("jax",), "jax",
                       {"ranks": 2}, slow_start=True, launcher="jax_coordinator", in_process=False, first_step=JIT_FIRST),
    )
}


def names(workload=None):
    """Registered names, in registry order, optionally for one workload."""
    return [name for name, spec in REGISTRY.items() if workload is None or workload in spec.workloads]


def spec(name, workload=None):
    """The registry entry for `name` (of `workload`, if given), or a ValueError that lists the valid names."""
    entry = REGISTRY.get(name)
    if entry is None or (workload is not None and workload not in entry.workloads):
        valid = names(workload)
        kind = "" if workload is None else f"{workload.replace('_', '-')} "
        raise ValueError(f"unknown {kind}implementation {name!r}; valid names: {', '.join(valid)}") from None
    return entry


def missing(name):
    """Why `name` cannot run here (a one-line reason), or None if it can.

    Only looks for the packages; it does not import them, so it is cheap.
    """
    return missing_entry(spec(name))


def not_installed(modules):
    """The modules (import names) of `modules` that are not installed here."""

    def absent(module):
        try:
            return importlib.util.find_spec(module) is None
        except (ImportError, ValueError):  # a finder that refuses it, or a broken parent package
            return True

    return [module for module in modules if absent(module)]


def absent_modules(entry):
    """The modules the entry requires that are not installed here."""
    return not_installed(entry.requires)


def missing_entry(entry):
    """`missing` for a registry entry of any workload."""
    absent = absent_modules(entry)
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
    """Import the implementation and return its Net class, without the entry's options.

    To build the registered variant, use `create`. Raises FrameworkMissing (a
    framework is not installed, or Keras already holds another backend in
    this process) or FrameworkBroken (it is installed but its import raises),
    each with a one-line reason.
    """
    return load_entry(spec(name))


def load_entry(entry, workload="two_layer"):
    """`load` for a registry entry, its Net for `workload`."""
    name = entry.name
    reason = missing_entry(entry)
    if reason:
        raise FrameworkMissing(f"{name}: {reason}")
    backend = entry.options.get("backend")
    if backend and "keras" in entry.requires:
        os.environ["KERAS_BACKEND"] = backend
    # A module named with dots is a full import path: an implementation that
    # lives outside this package (a user's, or a test's) registers like ours.
    path = entry.module_path(workload)
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as error:
        # Only a framework the entry requires, and that really is absent, is
        # "not installed". A ModuleNotFoundError for anything else comes from
        # inside an installed framework (torch without one of ITS
        # dependencies, say): that installation is broken, and hiding it as
        # "n/a" would silently drop the case.
        top = (error.name or "").partition(".")[0]
        if top in entry.requires and importlib.util.find_spec(top) is None:
            raise FrameworkMissing(
                f"{name}: {top} not installed (pip install -e \".[{entry.extra}]\")"
            ) from error
        raise FrameworkBroken(f"{name}: import failed: {one_line(error)}") from error
    except Exception as error:  # an installed but broken framework
        raise FrameworkBroken(f"{name}: import failed: {one_line(error)}") from error
    return module.Net


def one_line(error):
    """`Type: first line of the message`, for reasons that must fit one line."""
    message = str(error).strip()
    return f"{type(error).__name__}: {message.splitlines()[0]}" if message else type(error).__name__


# Options that say which variant an entry is: overriding them would build
# another variant under this one's name (tf_function_xla without XLA), so
# `create` refuses. Other registry options are defaults a harness may set
# explicitly (torch_ddp's ranks).
DEFINING_OPTIONS = ("backend", "jit_compile")


def create(name, w1, w2, learning_rate, device="cpu", dtype="float32", **overrides):
    """The registered variant `name`, built on the shared initial weights.

    Imports the module (FrameworkMissing / FrameworkBroken as `load`) and
    constructs its Net with the registry entry's options applied; the
    `backend` option is no constructor argument but picks KERAS_BACKEND
    before Keras is imported. `overrides` are explicit harness parameters
    (torch_ddp's `ranks`, `threads_per_rank`); one the Net does not take, or
    one that would change which variant this is, is a one-line ValueError.
    The Net itself raises DeviceUnavailable or DtypeUnsupported.
    """
    return create_entry(spec(name), w1, w2, learning_rate, device=device, dtype=dtype, overrides=overrides)


def create_entry(entry, *arguments, workload="two_layer", overrides=None, not_arguments=("backend",), **keywords):
    """`create` for a registry entry, its Net for `workload`.

    `arguments` and `keywords` are the Net's own (weights, problem, device,
    dtype); the entry's options and then `overrides` are added to them, but
    for the options named in `not_arguments`, which are read elsewhere
    (`backend` by load_entry, to pick KERAS_BACKEND).
    """
    Net = load_entry(entry, workload)
    options = {key: value for key, value in entry.options.items() if key not in not_arguments}
    overrides = dict(overrides or {})
    check_overrides(entry, Net, overrides, taken=len(arguments), explicit=keywords)
    return Net(*arguments, **keywords, **{**options, **overrides})


def check_overrides(entry, Net, overrides, taken, explicit):
    """A one-line ValueError for an override the Net cannot or must not take."""
    parameters = list(inspect.signature(Net).parameters.values())
    # The first `taken` parameters (w1, w2, learning_rate) are given
    # positionally and `explicit` ones (device, dtype) by name: not options.
    given = {parameter.name for parameter in parameters[:taken]} | set(explicit)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    valid = [p.name for p in parameters if p.kind in kinds and p.name not in given | set(DEFINING_OPTIONS)]
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
    for key in overrides:
        if key in DEFINING_OPTIONS:
            fixed = f"{key}={entry.options[key]!r}" if key in entry.options else f"the Net's default {key}"
            raise ValueError(
                f"{entry.name}: {key} cannot be overridden, it is what makes this variant "
                f"{entry.name} ({fixed}); ask for the registered name of the variant you want"
            )
        if key not in valid and not (open_ended and key not in given):
            raise ValueError(f"{entry.name}: unknown option {key!r}; it takes: {', '.join(valid) or 'none'}")
