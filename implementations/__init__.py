"""The one registry of implementations, found by listing, imported lazily, and the one way to build them.

Each variant file declares its own registry entries in a module-level
constant, `IMPLEMENTATIONS`: one dict per name it serves, with the fields of
`Implementation` below (the frameworks it needs as import names, the pip
extra that installs them, the constructor options that make it that variant,
...) and `order`, its place in every list. tf_function.py serves tf_function
and tf_function_xla, built with jit_compile off and on. A dict takes its
`module` from the file's name and its `workloads` from the folders that
declare the name: numpy_manual is declared by two_layer/numpy_manual.py and
by digits/numpy_manual.py, each field in either file (in both, the same).

The registry lists the workload folders (`WORKLOADS`) and reads the
constants from the source with `ast`, without importing the files: a file
imports its framework, and `sidebyside list` and the tests ask what is
available without paying for TensorFlow's import. The modules or packages
named in SIDEBYSIDE_IMPLEMENTATIONS (import paths, comma-separated; every
process of a run inherits it) are listed too, so an implementation outside
this package, a user's or a test's, is added by one file; its dicts name
their `workloads` (two_layer unless they do) and it is imported by its full
path.

`create(name, w1, w2, learning_rate, ...)` is how every caller builds a
registered two-layer variant (`digits.create` the digits one): it imports the module and applies the entry's options,
so no caller has to remember that tf_function_xla means jit_compile=True.
`load(name)` returns the bare Net class, for code that needs the class itself.
"""

import ast
import importlib
import importlib.util
import inspect
import os
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

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
    # cluster job is started (sidebyside/jobs/torchrun.py). The Net stays the
    # in-process interface (tests, pytest-benchmark).
    launcher: str = ""
    in_process: bool = True  # False: only ever runs as a job of several processes (no Net to drive in one)
    # Why its first step is slow, as the report's findings say it ("" for
    # one-time set-up alone: allocation, caches, thread pools).
    first_step: str = ""
    # What its step is, as its info() must record it and the tests check with
    # the framework itself (tests/conftest.py, VariantCheck): "compiled", one
    # traced program (a graph, an XLA program, Dynamo's graphs) rather than op
    # by op from Python; "jit_compile", XLA's switch. None for Keras, whose
    # options and backend say it.
    promise: dict | None = None

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

# What the first call of a compiled or traced variant pays, per way of writing it.
KERAS_FIRST = "Keras compiles train_on_batch with its backend on the first call"
JIT_FIRST = "jax.jit traces and compiles on the first call"
TF_FIRST = "tf.function traces the step into a graph on the first call"
COMPILE_FIRST = "torch.compile traces and compiles the step on the first call"

# The constants a declaration may name besides literals (the file imports
# them from here, so its constant means the same imported as read).
SHARED = {name: globals()[name] for name in
          ("TORCH_COMPILER", "TORCH_OPTIM", "KERAS_FIRST", "JIT_FIRST", "TF_FIRST", "COMPILE_FIRST")}

# The folders listed, one per workload, in the order an entry's `workloads` names them.
WORKLOADS = ("two_layer", "digits")
BOTH = WORKLOADS  # the variants written for both workloads
PLUGINS = "SIDEBYSIDE_IMPLEMENTATIONS"
DECLARATION = "IMPLEMENTATIONS"
LAST = 1000  # the order of a declaration that gives none: after every bundled one


def declarations(path):
    """The dicts the file's IMPLEMENTATIONS declares ([] for a file without one), read without importing it."""
    source = Path(path).read_text()
    if DECLARATION not in source:  # problem.py, data.py, ...: not parsed
        return []

    class Shared(ast.NodeTransformer):
        def visit_Name(self, node):
            if node.id not in SHARED:
                raise ValueError(f"{path}: {DECLARATION} names {node.id}; besides literals it may name only "
                                 f"{', '.join(SHARED)}")
            return ast.Constant(SHARED[node.id])

    for node in ast.parse(source, str(path)).body:
        if isinstance(node, ast.Assign) and [getattr(target, "id", None) for target in node.targets] == [DECLARATION]:
            try:
                return ast.literal_eval(Shared().visit(node.value))
            except ValueError as error:
                raise ValueError(str(error) if str(path) in str(error) else
                                 f"{path}: {DECLARATION} must be a literal: {error}") from None
    return []


def plugin_files(plugin):
    """[(import path, file)] of the plug-in module, or of each module in the plug-in package."""
    try:
        found = importlib.util.find_spec(plugin)  # imports its parent packages, never the module itself
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise ValueError(f"{PLUGINS}: no module {plugin!r}")
    if found.submodule_search_locations is None:
        return [(plugin, Path(found.origin))]
    return [(f"{plugin}.{info.name}", Path(info.module_finder.path) / f"{info.name}.py")
            for info in pkgutil.iter_modules(found.submodule_search_locations)
            if not info.ispkg and not info.name.startswith("_")]


def discover(plugins=None):
    """The registry {name: Implementation}: every declaration, in `order` (then as found).

    The workload folders are listed first, then `plugins` (import paths;
    those in SIDEBYSIDE_IMPLEMENTATIONS when None). A name declared twice
    with different values for a field, by two plug-ins, or by files of
    different names is a ValueError that names the file.
    """
    if plugins is None:
        plugins = [plugin.strip() for plugin in os.environ.get(PLUGINS, "").split(",") if plugin.strip()]
    folder = Path(__file__).parent
    sources = [(path, path.stem, (workload,)) for workload in WORKLOADS for path in sorted((folder / workload).glob("*.py"))]
    sources += [(path, module, None) for plugin in plugins for module, path in plugin_files(plugin)]
    merged = {}  # name -> its fields, from every file that declares it
    for path, module, workloads in sources:
        for declared in declarations(path):
            fields = merged.setdefault(declared["name"], {"module": module, "workloads": ()})
            if fields["module"] != module or (workloads is None and fields["workloads"]):
                raise ValueError(f"{path}: {declared['name']} is already declared by {fields['module']}")
            for key, value in declared.items():
                if key == "module" or (key == "workloads" and workloads):
                    raise ValueError(f"{path}: {declared['name']}'s {key} is where its file is, not declared")
                if key != "workloads" and fields.setdefault(key, value) != value:
                    raise ValueError(f"{path}: {declared['name']}'s {key} is {value!r} here, {fields[key]!r} elsewhere")
            fields["workloads"] += workloads or tuple(declared.get("workloads", ("two_layer",)))
    registry = {}
    for fields in sorted(merged.values(), key=lambda fields: fields.get("order", LAST)):
        fields = {key: tuple(value) if key in ("requires", "preload") else value
                  for key, value in fields.items() if key != "order"}
        try:
            registry[fields["name"]] = Implementation(**fields)
        except TypeError as error:  # a field missing or unknown
            raise ValueError(f"{fields['module']}: {fields['name']}: {error}") from None
    return registry


REGISTRY = discover()


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
