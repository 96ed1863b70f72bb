"""What is particular to jax_jit, torch_compile, tf_function(_xla) and Keras's jit settings.

The checks every implementation gets (float64 within 1e-8 of the oracle at
each of 500 steps and weights within 1e-10, float32 within the derived
tolerance and down to the floor, bit-identical repeats, the interface,
gradients against finite differences, the CUDA error) run for these too, in
test_agreement.py, test_implementations.py and test_gradients.py, which
cover every registered name. This file checks what those cannot see: that
the compiled variants really compile, once, and never fall back to running
eagerly; that they record the facts the report shows next to their timings
(first-call cost, settings); and that each Keras backend is registered, and
recorded, with jit_compile both on and off.
"""

import importlib.util
import json
import time

import numpy as np
import pytest

from sidebyside import implementations
from sidebyside.implementations import FrameworkBroken, FrameworkMissing
from sidebyside.frameworks import cuda_available
from sidebyside.implementations.two_layer.problem import Problem, make_data
from tests.conftest import keras_auto_jit, oracle_run, run_python, skip_if_missing, train

COMPILED = ("jax_jit", "torch_compile", "tf_function", "tf_function_xla")
SMALL = Problem(N=8, D_in=20, H=6, D_out=3, learning_rate=1e-3)  # compiles fast, same size in every test


def small_net(name, dtype="float32", **overrides):
    """The registered variant, built by `create`, and the small problem's prepared data."""
    skip_if_missing(name)
    x, y, w1, w2 = make_data(SMALL.with_(dtype=dtype))
    net = implementations.create(name, w1, w2, SMALL.learning_rate, dtype=dtype, **overrides)
    return net, net.prepare(x, y)


def test_the_new_variants_are_registered():
    expected = {
        "jax_jit": ("jax", {}),
        "torch_compile": ("torch", {}),
        "tf_function": ("tensorflow", {"jit_compile": False}),
        "tf_function_xla": ("tensorflow", {"jit_compile": True}),
        "torch_ddp": ("torch", {"ranks": 2}),
        "keras_tensorflow_xla": ("keras", {"backend": "tensorflow", "jit_compile": True}),
        "keras_torch_compile": ("keras", {"backend": "torch", "jit_compile": True}),
        "keras_jax_eager": ("keras", {"backend": "jax", "jit_compile": False}),
    }
    for name, (framework, options) in expected.items():
        spec = implementations.spec(name)
        assert (spec.framework, spec.options, spec.workloads) == (framework, options, ("two_layer",)), name


def test_a_missing_framework_is_a_reason_not_a_crash(monkeypatch):
    """Without jax installed, jax_jit is n/a with a reason, and load says so."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real_find_spec(name, *a))
    reason = implementations.missing("jax_jit")
    assert reason.startswith("jax not installed") and '.[jax]' in reason
    with pytest.raises(FrameworkMissing, match="jax_jit: jax not installed"):
        implementations.load("jax_jit")


def test_jax_jit_traces_the_step_once(monkeypatch):
    skip_if_missing("jax_jit")
    from sidebyside.implementations.two_layer import jax_jit

    traces = []
    compute_loss = jax_jit.compute_loss

    def counting(*args):
        traces.append(1)  # Python runs only while jax.jit traces, never in the compiled program
        return compute_loss(*args)

    monkeypatch.setattr(jax_jit, "compute_loss", counting)
    net, (x, y) = small_net("jax_jit")
    net.step(x, y)
    net.train(x, y, 5)
    net.step(*make_data(SMALL)[:2])  # numpy again: same shapes and dtype, no new trace
    assert len(traces) == 1


def test_jax_float64_switches_on_64_bit_mode():
    net, (x, y) = small_net("jax_jit", "float64")
    assert net.info()["x64"] is True
    assert x.dtype == np.float64 and net.train(x, y, 2).dtype == np.float64
    assert all(w.dtype == np.float64 for w in net.params())


@pytest.mark.parametrize("name", ["tf_function", "tf_function_xla"])
def test_tf_function_traces_once_and_records_xla(name):
    net, (x, y) = small_net(name)
    net.step(x, y)
    net.train(x, y, 5)
    net.step(*make_data(SMALL)[:2])
    assert net.compiled_step.experimental_get_tracing_count() == 1
    xla = implementations.spec(name).options["jit_compile"]
    assert net.info() == {"jit_compile": xla, "graph_traces": 1, "compiled": True}
    # The graph TensorFlow runs carries XLA's "must compile" mark exactly
    # when it is the XLA variant (what the runtime reads, not our flag).
    assert net.compiled_step.get_concrete_function(x, y).function_def.attr["_XlaMustCompile"].b is xla
    if xla:
        # Only an XLA-compiled function has compiler IR; ours holds the two products.
        hlo = net.compiled_step.experimental_get_compiler_ir(x, y)(stage="hlo")
        assert hlo.count(" dot(") >= 2
    else:
        with pytest.raises(ValueError, match="jit_compile=True"):
            net.compiled_step.experimental_get_compiler_ir(x, y)(stage="hlo")


def test_torch_compile_records_its_first_call():
    net, (x, y) = small_net("torch_compile")
    assert net.info()["first_call_s"] is None
    net.step(x, y)
    info = net.info()
    # The first call traced and compiled the step into graphs (split where
    # backward and the optimizer break the capture); Inductor either built
    # them or found them in its on-disk cache.
    assert info["graphs"] >= 1
    assert info["inductor_cache_hits"] + info["inductor_cache_misses"] >= 1
    start = time.perf_counter()
    net.train(x, y, 20)
    later = (time.perf_counter() - start) / 20
    assert info["first_call_s"] > 10 * later, "the first call pays for compiling"
    assert json.dumps(info)  # JSON scalars, as results.json needs


def test_torch_compile_never_falls_back_to_eager():
    """More nets than Dynamo's recompile limit (8), each still compiled."""
    skip_if_missing("torch_compile")
    for _ in range(10):
        net, (x, y) = small_net("torch_compile")
        net.step(x, y)
        assert net.info()["graphs"] >= 1


def test_a_failed_compile_is_an_error():
    net, (x, y) = small_net("torch_compile")

    def broken(*args):
        raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")

    net.compiled_step = broken
    with pytest.raises(FrameworkBroken, match="torch.compile failed: RuntimeError: InvalidCxxCompiler"):
        net.step(x, y)


@pytest.mark.parametrize("name, impostor", [
    ("tf_function_xla", "tf_function"),  # a tf.function without XLA
    ("jax_jit", "jax_jit"),  # the jitted step run under jax.disable_jit
    ("torch_compile", "torch_nn"),  # the same step, eager
])
def test_the_variant_check_asks_the_framework(name, impostor, monkeypatch):
    """VariantCheck is not fooled by an info() that says what the name promises."""
    from tests.conftest import VariantCheck, promise

    skip_if_missing(name)
    x, y, w1, w2 = make_data(SMALL)
    options = {"jit_compile": False} if impostor == "tf_function" else {}
    net = implementations.load(impostor)(w1, w2, SMALL.learning_rate, **options)
    monkeypatch.setattr(net, "info", lambda: dict(promise(name)))
    check = VariantCheck(name)
    x, y = net.prepare(x, y)
    if name == "jax_jit":
        import jax

        with jax.disable_jit():
            net.step(x, y)
    else:
        net.step(x, y)
    with pytest.raises(AssertionError, match=f"{name}: the framework says"):
        check.verify(net, x, y)


KERAS_INFO = """
import json
from sidebyside.implementations.two_layer.problem import Problem, make_data
from tests.conftest import run_variant
data = make_data(Problem(N=8, D_in=20, H=6, D_out=3))
out = {}
for name in NAMES:
    # create, two steps, and VariantCheck.verify (it asserts, here, too)
    _, _, info, facts = run_variant(name, data, 1e-3, "float32", steps=2)
    out[name] = {"info": info, "facts": facts}
print(json.dumps(out))
"""


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["tensorflow", "torch", "jax"])
def test_keras_runs_with_jit_compile_on_and_off(backend):
    """Each backend has an entry with jit_compile on and one with it off, and records which."""
    names = [name for name in implementations.names() if "keras" in implementations.spec(name).requires
             and implementations.spec(name).backend == backend]
    # Only missing packages matter: the subprocess imports Keras with this backend.
    absent = sorted({module for name in names for module in implementations.spec(name).requires
                     if importlib.util.find_spec(module) is None})
    if absent:
        pytest.skip(f"n/a: {', '.join(absent)} not installed")
    code = KERAS_INFO.replace("NAMES", repr(names))
    runs = run_python(code, env={"KERAS_BACKEND": backend})
    infos = {name: run["info"] for name, run in runs.items()}
    for name in names:
        option = implementations.spec(name).options.get("jit_compile", "auto")
        if option != "auto":
            assert infos[name]["jit_compile"] is option, name
    # "auto" means: XLA for JAX, eager for torch, XLA for TensorFlow only on a GPU.
    auto = keras_auto_jit(backend)
    for name in names:
        if "jit_compile" not in implementations.spec(name).options:
            assert infos[name]["jit_compile"] is auto, name
    if backend != "tensorflow" or not auto:
        assert {info["jit_compile"] for info in infos.values()} == {True, False}
    # What the framework itself saw, beyond Keras's own setting: Dynamo
    # graphs for torch.compile, a jax.jit trace of the whole train_step.
    for name in names:
        facts = runs[name]["facts"]
        assert facts["jit_compile"] is infos[name]["jit_compile"], name
        if backend != "tensorflow":
            assert facts["compiled"] is infos[name]["jit_compile"], name
        else:
            assert facts["compiled"] is True, f"{name}: Keras on TensorFlow runs its step as a tf.function"


@pytest.mark.parametrize("name", [*COMPILED, "torch_ddp"])
def test_runs_on_cuda_where_present(name):
    skip_if_missing(name)
    spec = implementations.spec(name)
    if not cuda_available(spec.framework):
        pytest.skip("n/a: no CUDA device")
    if name == "torch_ddp":
        import torch

        if torch.cuda.device_count() < spec.options["ranks"]:
            pytest.skip(f"n/a: {spec.options['ranks']} ranks need as many GPUs")
    losses, (w1, w2) = train(name, "float64", 20, device="cuda")
    reference, _, _ = oracle_run(steps=20)
    assert np.max(np.abs(losses - reference) / reference) < 1e-8
