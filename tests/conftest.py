"""Shared helpers: the tutorial problem, oracle runs, and Keras in subprocesses."""

import functools
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import implementations
from implementations.problem import Problem, make_data
from tests import oracle

ROOT = Path(__file__).resolve().parent.parent


def is_keras(name):
    return "keras" in implementations.spec(name).requires


def in_process_names():
    """Two-layer implementations that can share this test process."""
    return [name for name in implementations.names() if not is_keras(name)]


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


def train(name, dtype, steps=500, problem=None, **options):
    """Losses and final weights of `name` on the tutorial problem, in this process."""
    problem = (problem or Problem()).with_(dtype=dtype)
    x, y, w1, w2 = make_data(problem)
    net = implementations.load(name)(w1, w2, problem.learning_rate, dtype=dtype, **options)
    try:
        x, y = net.prepare(x, y)
        losses = np.array([net.step(x, y) for _ in range(steps)])
        return losses, net.params()
    finally:
        if hasattr(net, "close"):
            net.close()


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
from implementations.problem import DtypeUnsupported
out = {}
for dtype in ("float32", "float64"):
    try:
        losses, (w1, w2) = train(NAME, dtype, STEPS)
        out[dtype] = {"losses": losses.tolist(), "w1": w1.astype("float64").tolist(), "w2": w2.astype("float64").tolist()}
    except DtypeUnsupported as error:
        out[dtype] = {"unsupported": str(error)}
print(json.dumps(out))
"""


@functools.lru_cache(maxsize=None)
def keras_runs(name, steps=500):
    """Both dtypes of a Keras implementation, trained in a process of its backend."""
    backend = implementations.spec(name).backend
    code = KERAS_SCRIPT.replace("NAME", repr(name)).replace("STEPS", str(steps))
    return run_python(code, env={"KERAS_BACKEND": backend})
