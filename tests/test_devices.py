"""Why a framework has no GPU: no device at all, or a CPU-only build on a machine that has one."""

import pytest

from sidebyside.frameworks import cuda_available
from sidebyside.implementations import devices
from sidebyside.implementations.two_layer.problem import DeviceUnavailable

FRAMEWORKS = [("torch", devices.torch_device, "torch"), ("tensorflow", devices.tensorflow_device, "TensorFlow"),
              ("jax", devices.jax_device, "JAX")]


@pytest.mark.parametrize("module, resolve, label", FRAMEWORKS)
def test_without_a_gpu_the_reason_is_no_cuda_device(module, resolve, label, monkeypatch):
    framework = pytest.importorskip(module)
    if cuda_available(module):
        pytest.skip("n/a: this machine has a GPU the framework can use")
    monkeypatch.setattr(devices, "gpu_present", lambda: False)
    with pytest.raises(DeviceUnavailable, match="^no CUDA device$"):
        resolve("cuda")


@pytest.mark.parametrize("module, resolve, label", FRAMEWORKS)
def test_a_cpu_only_build_on_a_gpu_machine_says_so(module, resolve, label, monkeypatch):
    framework = pytest.importorskip(module)
    cpu_only = {"torch": lambda: framework.version.cuda is None,
                "tensorflow": lambda: not framework.test.is_built_with_cuda(),
                "jax": lambda: not devices.jax_cuda_plugin()}[module]()
    if not cpu_only:
        pytest.skip(f"n/a: the installed {module} is built with CUDA")
    monkeypatch.setattr(devices, "gpu_present", lambda: True)  # as on a machine with an NVIDIA driver
    with pytest.raises(DeviceUnavailable) as raised:
        resolve("cuda")
    assert str(raised.value) == (f"CPU-only build of {label} installed ({framework.__version__}); "
                                 "this machine has a GPU")
