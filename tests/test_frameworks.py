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

import pytest

from sidebyside import frameworks
from tests.conftest import ROOT

INTERFACE = ("environment", "configure", "pools", "device", "kernels", "reset_peak", "peak_bytes", "forget_compiled")
PEAK = ("matmul", "for_peak", "after_peak")  # where `matmul` is not None
STUB = "tests.stubs.stub_framework"  # a framework, its adapter and its implementation in one test file


def test_the_adapters_are_the_folder():
    folder = ROOT / "sidebyside" / "frameworks"
    files = {path.stem for path in folder.glob("*.py") if not path.name.startswith("_")}
    assert set(frameworks.discover([])) == files == {"numpy", "torch", "tensorflow", "jax", "keras"}


@pytest.mark.parametrize("name", [name for name in frameworks.NAMES if name != "keras"] + [STUB])
def test_every_computing_adapter_has_the_whole_interface(name, monkeypatch):
    monkeypatch.setattr(frameworks, "ADAPTERS", frameworks.discover([STUB]))
    adapter = frameworks.adapter(name)
    interface = INTERFACE + (PEAK if adapter.matmul is not None else ())  # None: the peak never imports it
    assert [attribute for attribute in interface if not callable(getattr(adapter, attribute, None))] == []
    assert isinstance(adapter.PACKAGES, dict) and adapter.PACKAGES
    assert (adapter.__doc__ or "").strip()
    # Importing an adapter imports no framework (but the stub's own module, which is its framework).
    assert adapter.__name__ == STUB or name not in adapter.__dict__
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        adapter.device("tpu")


def test_a_plugin_adapter_is_named_by_its_name_and_never_twice():
    found = frameworks.discover([STUB])
    assert list(found) == [*frameworks.discover([]), STUB] and found[STUB] == STUB
    with pytest.raises(ValueError, match="SIDEBYSIDE_FRAMEWORKS: sidebyside.frameworks.numpy adapts 'numpy', which "
                                         "sidebyside.frameworks.numpy adapts already"):
        frameworks.discover(["sidebyside.frameworks.numpy"])
    with pytest.raises(ValueError, match="SIDEBYSIDE_FRAMEWORKS: cannot import 'tests.stubs.absent'"):
        frameworks.discover(["tests.stubs.absent"])


PLUGGED = f"""
import json, os, sys
from sidebyside import fairness, frameworks, implementations, machine, peak, worker
from sidebyside.config import RunConfig
from sidebyside.plan import plan

fairness.set_environment(2)  # before any framework is imported, as every process of a run does
import {STUB} as stub
sized = stub.get_threads()  # its pool, sized from its environment when first used
stub.set_threads(5)  # changed behind the harness's back: the worker's set-up must size it again
config = RunConfig(implementations=("stub_net",), workloads=("two_layer",), devices=("cpu", "cuda"),
                   dtypes=("float32",), options={{"sweep": ()}}, steps=5, warmup=1, loop_flops=0.0, threads=2)
entries = []
for run in plan(config):
    worker.run_job({{"run": run, "mode": "full", "threads": 2, "tf32": False}}, entries.append, sys.stderr)
_, detail = peak.run_device(*peak.build_device("cpu", [{STUB!r}]), 0.2)
print(json.dumps({{"names": list(frameworks.NAMES), "implementations": implementations.names(), "sized": sized,
                  "packages": machine.FRAMEWORK_PACKAGES.get("stub_framework"), "entries": entries,
                  "peak_libraries": frameworks.peak_libraries(), "peak": detail["libraries"].get({STUB!r})}}))
"""


def test_a_test_only_framework_is_one_file_and_picked_up():
    """tests/stubs/stub_framework.py, named in SIDEBYSIDE_FRAMEWORKS and SIDEBYSIDE_IMPLEMENTATIONS, and nothing else.

    Its effects, each read back: it is listed (the adapters, the implementations, `sidebyside list`), its
    thread set-up is applied (its pool sized from its environment, and again by its `configure`), the peak
    times its product, and its `device` decides: "cuda" is n/a for its own reason, not numpy's.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SIDEBYSIDE_FRAMEWORKS": STUB, "SIDEBYSIDE_IMPLEMENTATIONS": STUB,
           "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-c", PLUGGED], capture_output=True, text=True, env=env, cwd=ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["names"][-1] == STUB and found["implementations"][-1] == "stub_net"
    assert found["packages"] == ["numpy"] and STUB in found["peak_libraries"]
    assert found["sized"] == 2
    cpu, cuda = sorted(found["entries"], key=lambda entry: entry["device"])
    assert cpu["status"] == "ok" and cpu["extra"]["kernels"] == "stub kernels (numpy's matmul)", cpu
    assert cpu["extra"]["threads_read_back"]["stub_intra_op"] == 2
    assert (cuda["device"], cuda["status"], cuda["reason"]) == ("cuda", "n/a", "the stub framework computes on the CPU only")
    assert {size: row["gflops"] > 0 for size, row in found["peak"]["float32"].items()} == {"256": True, "512": True,
                                                                                          "1024": True, "2048": True}
    listed = subprocess.run([sys.executable, "-m", "sidebyside.cli", "list"], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert any("stub_net" in line and "stub" in line.replace("stub_net", "") for line in listed.stdout.splitlines())


def test_keras_computes_with_its_backend():
    assert frameworks.computing(["keras", "torch"]) == ["torch"]
    assert frameworks.computing(["keras", "jax"]) == ["jax"]
    assert frameworks.cuda_available("keras") is False
    assert frameworks.device("keras", "cuda") == "cuda"  # unchecked: the harness asks the backend's adapter


def test_an_unknown_framework_is_a_clear_error():
    with pytest.raises(ValueError, match="no adapter for framework 'mlx'; adapters: jax, keras, numpy"):
        frameworks.adapter("mlx")
    assert frameworks.kernels("mlx") == "unknown" and frameworks.gpu_peak_bytes("mlx") is None
    assert frameworks.cuda_available("mlx") is False


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
