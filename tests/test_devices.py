"""Why a framework has no GPU: no device at all, or a CPU-only build on a machine that has one.

The framework's adapter says (`device` in sidebyside/frameworks/<name>.py), and the harness asks it
before a case is built, so a case on a device the framework lacks is "n/a" for the adapter's reason.
"""

import pytest

from sidebyside import frameworks
from sidebyside.frameworks import cuda_available
from sidebyside.implementations import devices
from sidebyside.implementations.two_layer.problem import DeviceUnavailable

FRAMEWORKS = [("torch", "torch"), ("tensorflow", "TensorFlow"), ("jax", "JAX")]


@pytest.mark.parametrize("module, label", FRAMEWORKS)
def test_without_a_gpu_the_reason_is_no_cuda_device(module, label, monkeypatch):
    pytest.importorskip(module)
    if cuda_available(module):
        pytest.skip("n/a: this machine has a GPU the framework can use")
    monkeypatch.setattr(devices, "gpu_present", lambda: False)
    with pytest.raises(DeviceUnavailable, match="^no CUDA device$"):
        frameworks.device(module, "cuda")


@pytest.mark.parametrize("module, label", FRAMEWORKS)
def test_a_cpu_only_build_on_a_gpu_machine_says_so(module, label, monkeypatch):
    framework = pytest.importorskip(module)
    cpu_only = {"torch": lambda: framework.version.cuda is None,
                "tensorflow": lambda: not framework.test.is_built_with_cuda(),
                "jax": lambda: not frameworks.adapter("jax").cuda_plugin()}[module]()
    if not cpu_only:
        pytest.skip(f"n/a: the installed {module} is built with CUDA")
    monkeypatch.setattr(devices, "gpu_present", lambda: True)  # as on a machine with an NVIDIA driver
    with pytest.raises(DeviceUnavailable) as raised:
        frameworks.device(module, "cuda")
    assert str(raised.value) == (f"CPU-only build of {label} installed ({framework.__version__}); "
                                 "this machine has a GPU")


def test_numpy_has_the_cpu_alone():
    assert frameworks.device("numpy", "cpu") == "cpu"
    with pytest.raises(DeviceUnavailable, match="^numpy runs on the CPU only, not 'cuda'$"):
        frameworks.device("numpy", "cuda")


@pytest.mark.parametrize("module", [module for module, _ in FRAMEWORKS])
def test_the_cpu_is_the_framework_s_own_device(module):
    framework = pytest.importorskip(module)
    resolved = frameworks.device(module, "cpu")
    expected = {"torch": lambda: framework.device("cpu"), "tensorflow": lambda: "/CPU:0",
                "jax": lambda: framework.devices("cpu")[0]}[module]()
    assert resolved == expected
