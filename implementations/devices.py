"""Where a net computes, shared by every workload's implementations: the devices and dtypes,
the errors that say one is unavailable, and resolving "cpu"/"cuda" for each framework.

Each helper imports its framework only when called, and raises
DeviceUnavailable where a GPU is asked for and the framework has none: "no
CUDA device" where the machine has no NVIDIA GPU, "CPU-only build of X
installed" where it has one but the installed build cannot use it (the
fix is another install, not another machine).
"""

import os

DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float64")


class DeviceUnavailable(RuntimeError):
    """The requested device does not exist here (no GPU, or a CPU-only framework)."""


class DtypeUnsupported(RuntimeError):
    """The framework cannot compute in the requested dtype (checked, not assumed)."""


def check_name(device):
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; valid devices: {', '.join(DEVICES)}")


def gpu_present():
    """Whether this machine has an NVIDIA GPU with its driver loaded, whatever the frameworks see."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidia0")


def no_cuda(framework, version, cpu_only_build):
    """The reason a framework has no CUDA device here."""
    if gpu_present() and cpu_only_build:
        return DeviceUnavailable(f"CPU-only build of {framework} installed ({version}); this machine has a GPU")
    if gpu_present():
        return DeviceUnavailable(f"no CUDA device visible to {framework} {version} (the machine has a GPU)")
    return DeviceUnavailable("no CUDA device")


def torch_device(device):
    """A torch.device for "cpu" or "cuda"."""
    import torch

    check_name(device)
    if device == "cuda" and not torch.cuda.is_available():
        raise no_cuda("torch", torch.__version__, torch.version.cuda is None)
    return torch.device(device)


def tensorflow_device(device):
    """A TensorFlow device string for "cpu" or "cuda"."""
    import tensorflow as tf

    check_name(device)
    if device == "cuda":
        if not tf.config.list_physical_devices("GPU"):
            raise no_cuda("TensorFlow", tf.__version__, not tf.test.is_built_with_cuda())
        return "/GPU:0"
    return "/CPU:0"


def jax_device(device):
    """A jax.Device for "cpu" or "cuda"."""
    import jax

    check_name(device)
    if device == "cuda":
        try:
            return jax.devices("gpu")[0]
        except RuntimeError:
            raise no_cuda("JAX", jax.__version__, not jax_cuda_plugin()) from None
    return jax.devices("cpu")[0]


def jax_cuda_plugin():
    """Whether a JAX CUDA plugin (jax[cuda12], jax[cuda13]) is installed."""
    from importlib import metadata

    names = {dist.metadata["Name"].lower() for dist in metadata.distributions() if dist.metadata["Name"]}
    return any(name.startswith("jax-cuda") and name.endswith("plugin") for name in names)
