"""Shared helpers: the tutorial problem, oracle runs, Keras in subprocesses,
and the check that a registered variant really is what its name says.

Every test that trains a registered implementation builds it with
`implementations.create`, so the registry's options (tf_function_xla's
jit_compile=True, keras_jax_eager's jit_compile=False) are always applied,
and passes it through `VariantCheck`: after training, the framework itself
is asked what the step ran as (a graph XLA must compile, graphs Dynamo
captured, a jax.jit trace of the whole step), and both that and the net's
`info()` must match the name's promise (`promise`, from its registry entry).
"""

import functools
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sidebyside import implementations
from sidebyside.implementations.two_layer.problem import Problem, make_data
from tests import oracle

ROOT = Path(__file__).resolve().parent.parent

# Two tiers. `pytest` runs the fast one, for the edit loop: in-process where
# it can be, minutes. `pytest --e2e` runs the end-to-end one: every test marked
# `e2e` (real `sidebyside run`s, torchrun, Chromium, tmux), every test that
# needs the session's real run (`quick_run`), and every test of a Keras
# implementation (a process per backend) or a slow starter (compiling,
# starting ranks). CI (.ci/run) runs both. A test named by its node id runs
# whatever its tier.


def pytest_configure(config):
    # A shell that starts a job in the background without job control starts
    # it with SIGINT ignored, and every process it starts inherits that: the
    # Ctrl-C tests would then test nothing. Python's own handler, set here,
    # is reset to the default in each process the tests start.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser):
    parser.addoption("--e2e", action="store_true", help="run the end-to-end tier instead of the fast one")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "quick_run" in getattr(item, "fixturenames", ()) or any(map(slow_to_test, parameters(item))):
            item.add_marker(pytest.mark.e2e)
    if config.getoption("-m") or any("::" in argument for argument in config.args):
        return  # a marker expression or a named test chooses for itself
    end_to_end = config.getoption("--e2e")
    keep = [item for item in items if (item.get_closest_marker("e2e") is not None) == end_to_end]
    if len(keep) < len(items):
        kept = set(map(id, keep))
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
        items[:] = keep
        config.tier_note = ("end-to-end tier: the fast tests run with plain `pytest`" if end_to_end else
                            "fast tier: the end-to-end tests run with `pytest --e2e`")


def parameters(item):
    callspec = getattr(item, "callspec", None)
    return list(callspec.params.values()) if callspec else []


def slow_to_test(value):
    """A two-layer implementation's name whose every test starts processes or compiles: Keras, or a slow starter."""
    if not isinstance(value, str) or value not in implementations.names():
        return False
    return is_keras(value) or implementations.spec(value).slow_start


def pytest_terminal_summary(terminalreporter, config):
    note = getattr(config, "tier_note", None)
    if note:
        terminalreporter.write_line(note)


def is_keras(name):
    return "keras" in implementations.spec(name).requires


def in_process_names():
    """Two-layer implementations that can share this test process (not the multi-process jobs, which have no
    in-process Net: tests/test_multiworker.py runs them)."""
    return [name for name in implementations.names() if not is_keras(name) and implementations.spec(name).in_process]


def keras_names():
    return [name for name in implementations.names() if is_keras(name)]


def skip_if_missing(name):
    """Skip when a package is absent. Keras cases run in a subprocess of their
    own backend, so a Keras already imported here (TensorFlow imports it) is
    no reason to skip them."""
    spec = implementations.spec(name)
    if is_keras(name):
        absent = [module for module in spec.requires if importlib.util.find_spec(module) is None]
        if absent:
            pytest.skip(f"n/a: {', '.join(absent)} not installed (pip install -e \".[{spec.extra}]\")")
        return
    reason = implementations.missing(name)
    if reason:
        pytest.skip(f"n/a: {reason}")


@functools.lru_cache(maxsize=None)
def oracle_run(steps=500, dtype="float64"):
    """The oracle's trajectory on the tutorial problem (data drawn in `dtype`)."""
    x, y, w1, w2 = make_data(Problem(dtype=dtype))
    losses, w1_final, w2_final = oracle.train(x, y, w1, w2, Problem.learning_rate, steps)
    return losses, w1_final, w2_final


def keras_auto_jit(backend):
    """What jit_compile="auto" resolves to in Keras 3: XLA (jax.jit) on JAX,
    eager on torch, and on TensorFlow XLA wherever TensorFlow sees a GPU
    (Keras asks the machine, not the device the model is placed on)."""
    if backend == "tensorflow":
        from sidebyside.frameworks import cuda_available

        return cuda_available("tensorflow")
    return {"jax": True, "torch": False}[backend]


def promise(name):
    """What the registered `name` says its step is, as info() must record it.

    The others declare it (their entry's `promise`). Keras names take
    jit_compile from the registry entry, or from what "auto" means on that
    backend here; on TensorFlow the step is a tf.function graph either way,
    on JAX and torch only under jit_compile.
    """
    spec = implementations.spec(name)
    if is_keras(name):
        jit = spec.options.get("jit_compile", "auto")
        if jit == "auto":
            jit = keras_auto_jit(spec.backend)
        return {"compiled": jit or spec.backend == "tensorflow", "jit_compile": jit}
    if spec.promise is None:
        raise AssertionError(f"{name} is registered but its IMPLEMENTATIONS entry declares no promise")
    return spec.promise


def uses(name, framework):
    """Whether `name`'s step runs on `framework` (a Keras backend counts)."""
    spec = implementations.spec(name)
    return framework in spec.requires and (not is_keras(name) or spec.backend == framework)


class VariantCheck:
    """Asks the framework what a net's step really ran as, and checks that against its name.

    Make it after `create` and before the first step; call `verify(net, x,
    y)` with the prepared data after training. The facts come from the
    frameworks, never from our own flags:

    - torch: Dynamo's count of captured graphs (`unique_graphs`) grows on a
      compiled step (torch_compile, Keras's torch.compile) and never on an
      eager one;
    - JAX: jax.monitoring reports a trace of the function `train_step` when
      jax.jit traces the whole step (jax_jit, Keras's JAX trainer); eager
      JAX only compiles single operations;
    - tf.function: the traced graph is marked `_XlaMustCompile` exactly when
      XLA compiles it, and the tracing count says it ran as a graph;
    - Keras: `model.jit_compile` once the first step has settled "auto".
    """

    TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"

    def __init__(self, name):
        self.name = name
        self.graphs_before = self.dynamo_graphs()
        self.traced = []
        self.listening = uses(name, "jax")
        if self.listening:
            import jax

            jax.monitoring.register_event_duration_secs_listener(self.on_event)

    def on_event(self, event, duration, **keywords):
        if event == self.TRACE_EVENT:
            self.traced.append(keywords.get("fun_name"))

    @staticmethod
    def dynamo_graphs():
        # Dynamo is imported by the first torch.compile: if it is not loaded,
        # nothing has been compiled in this process.
        dynamo = sys.modules.get("torch._dynamo.utils")
        return dynamo.counters["stats"]["unique_graphs"] if dynamo else 0

    def stop(self):
        if self.listening:
            import jax

            jax.monitoring.unregister_event_duration_listener(self.on_event)
            self.listening = False

    def observed(self, net, x, y):
        """What the framework says the step ran as (only what it can be asked)."""
        self.stop()
        facts = {}
        if uses(self.name, "torch") and self.name != "torch_ddp":  # torch_ddp's ranks are other processes
            facts["compiled"] = self.dynamo_graphs() > self.graphs_before
        if uses(self.name, "jax"):
            facts["compiled"] = "train_step" in self.traced
        if self.name in ("tf_function", "tf_function_xla", "tensorflow_tuned"):
            facts["compiled"] = net.compiled_step.experimental_get_tracing_count() > 0
            # The prepared x, y match the traced signature: this traces nothing new.
            graph = net.compiled_step.get_concrete_function(x, y).function_def
            facts["jit_compile"] = graph.attr["_XlaMustCompile"].b
        if is_keras(self.name):
            model = net.model
            facts["jit_compile"] = bool(model.jit_compile)
            if implementations.spec(self.name).backend == "tensorflow":
                facts["compiled"] = model.train_function is not None and not model.run_eagerly
        return facts

    def verify(self, net, x, y):
        """Assert that info() and the framework both say what the name promises."""
        expected = promise(self.name)
        info = net.info()
        facts = self.observed(net, x, y)
        for key, value in expected.items():
            assert info.get(key) is value, f"{self.name}: info()[{key!r}] is {info.get(key)!r}, its name promises {value!r}"
            if key in facts:
                assert facts[key] is value, f"{self.name}: the framework says {key}={facts[key]!r}, its name promises {value!r}"
        return facts


def run_variant(name, data, learning_rate, dtype, steps, device="cpu", **overrides):
    """Build `name` with `create`, train `steps` steps on `data`, and check it is that variant.

    `data` is (x, y, w1, w2). Returns (losses, (w1, w2), info, facts).
    """
    x, y, w1, w2 = data
    net = implementations.create(name, w1, w2, learning_rate, device=device, dtype=dtype, **overrides)
    try:
        check = VariantCheck(name)
        try:
            x, y = net.prepare(x, y)
            losses = np.array([net.step(x, y) for _ in range(steps)])
            facts = check.verify(net, x, y)
        finally:
            check.stop()
        return losses, net.params(), net.info(), facts
    finally:
        if hasattr(net, "close"):
            net.close()


def train(name, dtype, steps=500, problem=None, device="cpu", **overrides):
    """Losses and final weights of the registered `name` on the tutorial problem, in this process.

    Built by `implementations.create` with the registry's options, checked to
    be the variant its name says; `overrides` are explicit parameters such as
    torch_nn's `style`.
    """
    problem = (problem or Problem()).with_(dtype=dtype)
    losses, params, _, _ = run_variant(
        name, make_data(problem), problem.learning_rate, dtype, steps, device=device, **overrides
    )
    return losses, params


def all_succeed(processes, timeout):
    """Wait for every process of a job; each must exit 0 (its stderr says why not). None is left running."""
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=timeout)
            assert process.returncode == 0, stderr
    finally:
        for process in processes:
            process.kill()


def run_python(code, env=None, timeout=600):
    """Run a Python snippet in a fresh interpreter; return its last stdout line as JSON."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=ROOT,
    )
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


KERAS_SCRIPT = """
import json, numpy as np
from tests.conftest import train
from sidebyside.implementations.two_layer.problem import DtypeUnsupported
out = {}
for dtype in ("float32", "float64"):
    try:
        losses, (w1, w2) = train(NAME, dtype, STEPS)
        out[dtype] = {"losses": losses.tolist(), "w1": w1.astype("float64").tolist(), "w2": w2.astype("float64").tolist()}
    except DtypeUnsupported as error:
        out[dtype] = {"unsupported": str(error)}
out["repeated"] = [train(NAME, "float32", REPEAT)[0].tolist() for _ in range(2)]  # determinism, same process
print(json.dumps(out))
"""
KERAS_REPEAT = 60  # steps of the two float32 runs that test_implementations compares for determinism


@functools.lru_cache(maxsize=None)
def keras_runs(name, steps=500):
    """Both dtypes of a Keras implementation, trained in a process of its backend, and two short float32 runs
    ("repeated"): one process per implementation serves the agreement and the determinism tests."""
    backend = implementations.spec(name).backend
    code = KERAS_SCRIPT.replace("NAME", repr(name)).replace("STEPS", str(steps)).replace("REPEAT", str(KERAS_REPEAT))
    return run_python(code, env={"KERAS_BACKEND": backend})


QUICK_RUN_IMPLEMENTATIONS = ("numpy_manual", "torch_manual")


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    """A real `sidebyside run --quick --rounds 5` of numpy_manual and torch_manual on the CPU, made once per session.

    Returns the run folder (results.json inside). Tests copy it before changing anything.
    """
    for name in QUICK_RUN_IMPLEMENTATIONS:
        skip_if_missing(name)
    out = tmp_path_factory.mktemp("quick-run") / "run"
    command = [sys.executable, "-m", "sidebyside.cli", "run", "--quick", "--rounds", "5", "--workload", "two_layer",
               "--device", "cpu", "--threads", "1", "--no-report", "--out", str(out)]
    for name in QUICK_RUN_IMPLEMENTATIONS:
        command += ["--impl", name]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode != 0:
        raise AssertionError(f"the quick run failed:\n{result.stderr[-3000:]}")
    return out
