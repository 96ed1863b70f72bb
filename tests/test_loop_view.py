"""The loop view, `net.train(x, y, steps)`, against the step view and the oracle.

`train` runs `steps` training steps that sync only once, at the end, and
returns every step's loss (the loss before its update). It must do exactly
the work of `steps` calls of `net.step` and nothing more, or the loop
timings would not compare frameworks on equal terms. So for every two-layer
implementation:

- `train` returns exactly `steps` losses, equal to those of `step` called as
  many times from the same initial weights (float64: to 1e-12 relative;
  float32: to 1e-5), and leaves the same weights;
- two `train` calls of different lengths continue one trajectory;
- in float64 the losses also match the independent float64 oracle;
- JAX compiles nothing when `train` gets a length it has not seen (a
  `jnp.stack` of the losses used to compile anew for every length; jax_tuned's
  compiled loop takes its length as an argument), nor does tensorflow_tuned's
  graph loop trace again;
- torch_ddp's loop does not add to the ranks' step-view timings (the timed
  hook waits for the GPU around every all-reduce; the loop must not).

Keras takes its backend at import, so each Keras backend runs in a fresh
interpreter with KERAS_BACKEND set, as tests/conftest.py does.

Implementations that need seconds before their first step (torch.compile,
DDP's ranks) and the Keras backends other than JAX are marked slow:
`-m "not slow"` keeps the file to about half a minute.
"""

import itertools
import json

import numpy as np
import pytest

from sidebyside import implementations
from sidebyside.implementations.two_layer.problem import DTYPES, DtypeUnsupported, Problem, make_data
from tests import oracle
from tests.conftest import is_keras, run_python, skip_if_missing

# Short loops: the property is per step, and some implementations (torch.compile,
# DDP's ranks) already spend seconds before their first step.
FIRST, SECOND = 2, 4  # two train calls of different lengths, 6 steps in all
STEPS = FIRST + SECOND
RTOL = {"float64": 1e-12, "float32": 1e-5}
ORACLE_RTOL = 1e-10  # float64 implementations against the float64 oracle

TWO_LAYER = implementations.names("two_layer")


def case(name, slow):
    return pytest.param(name, marks=pytest.mark.e2e) if slow else name


# Not the multi-process jobs (tf_multiworker, jax_distributed): no in-process Net; their loop view is timed by
# their own processes (tests/test_multiworker.py).
IN_PROCESS = [case(name, implementations.spec(name).slow_start) for name in TWO_LAYER
              if not is_keras(name) and implementations.spec(name).in_process]
# One Keras file on each backend (the jit variants run the same train()).
KERAS = [
    case(name, implementations.spec(name).backend != "jax")
    for name in TWO_LAYER
    if is_keras(name) and "jit_compile" not in implementations.spec(name).options
]


def make_net(name, dtype):
    problem = Problem(dtype=dtype)
    x, y, w1, w2 = make_data(problem)
    try:
        net = implementations.load(name)(w1, w2, problem.learning_rate, dtype=dtype)
    except DtypeUnsupported as error:
        pytest.skip(f"n/a: {error}")
    return net, x, y


def closing(net):
    if hasattr(net, "close"):
        net.close()


@pytest.fixture(scope="module")
def oracle_losses():
    x, y, w1, w2 = make_data(Problem(dtype="float64"))
    losses, _, _ = oracle.train(x, y, w1, w2, Problem.learning_rate, STEPS)
    return np.asarray(losses)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", IN_PROCESS)
def test_train_equals_steps(name, dtype, oracle_losses):
    skip_if_missing(name)
    stepped, x, y = make_net(name, dtype)
    try:
        x_ready, y_ready = stepped.prepare(x, y)
        want = np.array([stepped.step(x_ready, y_ready) for _ in range(STEPS)])
        want_params = stepped.params()
    finally:
        closing(stepped)

    looped, x, y = make_net(name, dtype)
    try:
        x_ready, y_ready = looped.prepare(x, y)
        first = looped.train(x_ready, y_ready, FIRST)
        second = looped.train(x_ready, y_ready, SECOND)
        got_params = looped.params()
        if name == "torch_ddp":
            # The loop must not add to the ranks' step-view timings: their
            # hook waits for the GPU around every all-reduce.
            assert [timing["steps"] for timing in looped.ask_all("timings")] == [0] * looped.ranks
    finally:
        closing(looped)

    assert isinstance(first, np.ndarray) and first.shape == (FIRST,)
    assert isinstance(second, np.ndarray) and second.shape == (SECOND,)
    got = np.concatenate([first, second])
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=0)
    for got_w, want_w in zip(got_params, want_params):
        np.testing.assert_allclose(got_w, want_w, rtol=RTOL[dtype], atol=RTOL[dtype] * np.abs(want_w).max())
    if dtype == "float64":
        np.testing.assert_allclose(got, oracle_losses, rtol=ORACLE_RTOL, atol=0)


FRESH_LENGTHS = itertools.count(997)  # stack lengths no other code here uses


@pytest.mark.parametrize("name", ["jax_jit", "jax_tuned"])
def test_jax_train_compiles_nothing_for_a_new_length(name):
    skip_if_missing(name)
    import jax

    compiles = []

    # JAX reports every trace, lowering and XLA compile as a timed event
    # named "/jax/core/compile/...": a cache hit reports none.
    def listen(event, duration, **kwargs):
        if event.startswith("/jax/core/compile/"):
            compiles.append(event)

    net, x, y = make_net(name, "float32")
    x, y = net.prepare(x, y)
    net.step(x, y)  # compiles the step
    net.train(x, y, FIRST)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        losses = net.train(x, y, SECOND + 3)  # a length not seen before
        listened = list(compiles)
        # The listener itself works: a stack of a length this process has
        # never stacked does compile (a fresh length per call, so the check
        # holds whichever parametrization runs first).
        jax.numpy.stack([jax.numpy.float32(0)] * next(FRESH_LENGTHS)).block_until_ready()
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert losses.shape == (SECOND + 3,) and np.all(np.isfinite(losses))
    assert listened == [], f"train of a new length compiled: {sorted(set(listened))}"
    assert compiles, "the compile listener heard nothing: the check proves nothing"


def test_tensorflow_tuned_loop_is_traced_once_for_every_length():
    skip_if_missing("tensorflow_tuned")
    net, x, y = make_net("tensorflow_tuned", "float32")
    x, y = net.prepare(x, y)
    for steps in (FIRST, SECOND, SECOND + 3):
        assert net.train(x, y, steps).shape == (steps,)
    assert net.compiled_loop.experimental_get_tracing_count() == 1
    assert net.compiled_step.experimental_get_tracing_count() == 1  # traced in the loop's graph, once


KERAS_SCRIPT = """
import json, numpy as np
from sidebyside import implementations
from sidebyside.implementations.two_layer.problem import DtypeUnsupported, Problem, make_data
out = {}
for dtype in ("float32", "float64"):
    problem = Problem(dtype=dtype)
    x, y, w1, w2 = make_data(problem)
    try:
        stepped = implementations.load(NAME)(w1, w2, problem.learning_rate, dtype=dtype)
    except DtypeUnsupported as error:
        out[dtype] = {"unsupported": str(error)}
        continue
    looped = implementations.load(NAME)(w1, w2, problem.learning_rate, dtype=dtype)
    xs, ys = stepped.prepare(x, y)
    steps = [stepped.step(xs, ys) for _ in range(FIRST + SECOND)]
    xl, yl = looped.prepare(x, y)
    first, second = looped.train(xl, yl, FIRST), looped.train(xl, yl, SECOND)
    out[dtype] = {
        "steps": steps, "first": first.tolist(), "second": second.tolist(),
        "loop_note": getattr(looped, "loop_note", None),
    }
print(json.dumps(out))
"""


@pytest.mark.parametrize("name", KERAS)
def test_keras_train_equals_steps(name, oracle_losses):
    skip_if_missing(name)
    code = KERAS_SCRIPT.replace("NAME", repr(name)).replace("FIRST", str(FIRST)).replace("SECOND", str(SECOND))
    runs = run_python(code, env={"KERAS_BACKEND": implementations.spec(name).backend}, timeout=300)
    checked = 0
    for dtype, run in runs.items():
        if "unsupported" in run:
            continue
        assert len(run["first"]) == FIRST and len(run["second"]) == SECOND, json.dumps(run)[:300]
        got = np.array(run["first"] + run["second"])
        np.testing.assert_allclose(got, run["steps"], rtol=RTOL[dtype], atol=0)
        if dtype == "float64":
            np.testing.assert_allclose(got, oracle_losses, rtol=ORACLE_RTOL, atol=0)
        # Keras syncs every step in train_on_batch; the report says so.
        assert isinstance(run["loop_note"], str) and "sync" in run["loop_note"]
        checked += 1
    assert checked, f"{name}: no dtype ran: {runs}"
