"""The framework adapters: one module per framework, each with the whole interface, each detecting what it runs.

The kernel a framework multiplies with is read in the process, not typed:
numpy's BLAS from threadpoolctl, torch's from its build configuration,
TensorFlow's from a traced run of one MatMul, JAX's from the program XLA
compiled for one product. Threads and precision are set through the
adapters and read back from each framework.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sidebyside import frameworks
from tests.conftest import ROOT

INTERFACE = ("environment", "configure", "kernels", "reset_peak", "peak_bytes", "forget_compiled", "gpu_present",
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
import json, sys
from sidebyside import fairness, frameworks
fairness.set_environment(1)
name = sys.argv[1]
settings = fairness.apply([name], 1)
print(json.dumps({"kernels": frameworks.kernels(name), "settings": settings}))
"""

EXPECTED_KERNEL = {
    "numpy": ("blas", "(", "kernel)"),
    "torch": ("BLAS", "oneDNN"),
    "tensorflow": ("MatMul",),
    "jax": ("XLA CPU (", "jaxlib"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_KERNEL))
def test_kernels_are_detected_and_threads_read_back(name):
    pytest.importorskip(name)
    result = subprocess.run([sys.executable, "-c", DETECT, name], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    kernel = found["kernels"]
    assert "unknown" not in kernel and all(part.lower() in kernel.lower() for part in EXPECTED_KERNEL[name]), kernel
    settings = found["settings"]
    assert settings["blas"] == 1
    if name == "torch":
        assert (settings["torch_intra_op"], settings["torch_inter_op"]) == (1, 1)
    if name == "tensorflow":
        assert (settings["tensorflow_intra_op"], settings["tensorflow_inter_op"]) == (1, 1)
        assert kernel.startswith(("Eigen", "oneDNN"))
    if name == "jax":
        assert "--xla_cpu_multi_thread_eigen=false" in settings["xla_flags"]


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
