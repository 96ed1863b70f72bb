"""The framework adapters: one module per framework, each with the whole interface, each detecting what it runs.

The kernel a framework multiplies with is read in the process, not typed:
numpy's BLAS from threadpoolctl, torch's from its build configuration,
TensorFlow's from a traced run of one MatMul, JAX's from the program XLA
compiled for one product. Threads and precision are set through the
adapters and read back from each framework: asked for two threads in a
one-CPU mask, every pool reads back two (a pool follows the request, not
the mask), as the library itself reports it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidebyside import frameworks
from tests.conftest import ROOT

INTERFACE = ("environment", "configure", "pools", "kernels", "reset_peak", "peak_bytes", "forget_compiled", "gpu_present",
             "matmul")


def test_the_adapters_are_the_folder():
    folder = ROOT / "sidebyside" / "frameworks"
    files = {path.stem for path in folder.glob("*.py") if not path.name.startswith("_")}
    assert set(frameworks.NAMES) == files == {"numpy", "torch", "tensorflow", "jax", "keras"}


@pytest.mark.parametrize("name", [name for name in frameworks.NAMES if name != "keras"])
def test_every_computing_adapter_has_the_whole_interface(name):
    adapter = frameworks.adapter(name)
    assert [attribute for attribute in INTERFACE if not callable(getattr(adapter, attribute, None))] == []
    assert isinstance(adapter.PACKAGES, dict) and adapter.PACKAGES
    assert (adapter.__doc__ or "").strip()


def test_keras_computes_with_its_backend():
    assert frameworks.computing(["keras", "torch"]) == ["torch"]
    assert frameworks.computing(["keras", "jax"]) == ["jax"]
    assert frameworks.cuda_available("keras") is False


def test_an_unknown_framework_is_a_clear_error():
    with pytest.raises(ValueError, match="no adapter for framework 'mlx'; adapters: jax, keras, numpy"):
        frameworks.adapter("mlx")
    assert frameworks.kernels("mlx") == "unknown" and frameworks.gpu_peak_bytes("mlx") is None


DETECT = """
import json, os, sys
from sidebyside import fairness, frameworks
fairness.set_environment(2)
name = sys.argv[1]
__import__(name)  # as the worker's zygote does, before any setting
fairness.apply([name], 2)
kernel = frameworks.kernels(name)
# Each library's own report, asked here without the harness: the oracle of fairness.read_back.
from threadpoolctl import threadpool_info
native = [(library["internal_api"], library["num_threads"]) for library in threadpool_info()]
own = {}
if name == "torch":
    import torch
    own.update(torch_intra_op=torch.get_num_threads(), torch_inter_op=torch.get_num_interop_threads())
if name == "tensorflow":
    import tensorflow as tf
    own.update(tensorflow_intra_op=tf.config.threading.get_intra_op_parallelism_threads(),
               tensorflow_inter_op=tf.config.threading.get_inter_op_parallelism_threads())
if name == "jax":
    names = [open(f"/proc/self/task/{task}/comm").read().strip() for task in os.listdir("/proc/self/task")]
    own["xla_intra_op"] = names.count("tf_XLAEigen")
print(json.dumps({"kernels": kernel, "read_back": fairness.read_back([name]), "own": own, "native": native,
                  "cpus": len(os.sched_getaffinity(0))}))
"""

EXPECTED_KERNEL = {
    "numpy": ("blas", "(", "kernel)"),
    "torch": ("BLAS", "oneDNN"),
    "tensorflow": ("MatMul",),
    "jax": ("XLA CPU (", "jaxlib"),
}
EXPECTED_POOLS = {  # besides the native libraries threadpoolctl finds
    "numpy": set(),
    "torch": {"torch_intra_op", "torch_inter_op"},
    "tensorflow": {"tensorflow_intra_op", "tensorflow_inter_op"},
    "jax": {"xla_intra_op"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_KERNEL))
def test_kernels_are_detected_and_threads_read_back(name):
    pytest.importorskip(name)
    one_cpu = min(os.sched_getaffinity(0))
    result = subprocess.run([sys.executable, "-c", DETECT, name], capture_output=True, text=True, timeout=300,
                            cwd=ROOT, preexec_fn=lambda: os.sched_setaffinity(0, {one_cpu}))
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    kernel = found["kernels"]
    assert "unknown" not in kernel and all(part.lower() in kernel.lower() for part in EXPECTED_KERNEL[name]), kernel
    if name == "tensorflow":
        assert kernel.startswith(("Eigen", "oneDNN"))
    pools = found["read_back"]
    assert found["cpus"] == 1 and found["native"], found  # numpy's BLAS at least
    assert {pool: size for pool, size in pools.items() if pool in EXPECTED_POOLS[name]} == found["own"]
    # A second copy of one library (numpy's and scipy's OpenBLAS) is told apart by its file's prefix.
    assert sorted((pool.split(" (")[0], size) for pool, size in pools.items() if pool not in found["own"]) == sorted(
        map(tuple, found["native"]))
    # Two threads asked for on one CPU: every pool has two (inter-op pools one), whatever the mask says.
    assert pools == {pool: 1 if pool.endswith("_inter_op") else 2 for pool in pools}


PRECISION = """
import json
from sidebyside import fairness
fairness.set_environment(1)
fairness.apply(["torch", "tensorflow", "jax"], 1)
import jax, tensorflow as tf, torch
print(json.dumps([torch.get_float32_matmul_precision(), torch.backends.cuda.matmul.allow_tf32,
                  tf.config.experimental.tensor_float_32_execution_enabled(),
                  str(jax.config.jax_default_matmul_precision)]))
"""


@pytest.mark.e2e  # a process per framework
def test_tf32_is_off_in_every_framework_by_default():
    for name in ("torch", "tensorflow", "jax"):
        pytest.importorskip(name)
    result = subprocess.run([sys.executable, "-c", PRECISION], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["highest", False, False, "highest"]


def test_the_harness_names_no_framework_outside_its_adapter():
    """Per-framework branches live in sidebyside/frameworks/: no other harness module tests a framework's name."""
    offenders = []
    for path in (ROOT / "sidebyside").rglob("*.py"):
        if "frameworks" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            for name in ("torch", "tensorflow", "jax"):
                if f'framework == "{name}"' in code or f"framework == '{name}'" in code:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
