"""Resolving "cpu"/"cuda" for each framework, shared by the implementations.

Each helper imports its framework only when called, and raises
DeviceUnavailable("no CUDA device") where a GPU is asked for but absent.
"""

from implementations.problem import DeviceUnavailable

DEVICES = ("cpu", "cuda")


def check_name(device):
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; valid devices: {', '.join(DEVICES)}")


def torch_device(device):
    """A torch.device for "cpu" or "cuda"."""
    import torch

    check_name(device)
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable("no CUDA device")
    return torch.device(device)


def tensorflow_device(device):
    """A TensorFlow device string for "cpu" or "cuda"."""
    import tensorflow as tf

    check_name(device)
    if device == "cuda":
        if not tf.config.list_physical_devices("GPU"):
            raise DeviceUnavailable("no CUDA device")
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
            raise DeviceUnavailable("no CUDA device") from None
    return jax.devices("cpu")[0]


def cuda_available(framework):
    """Whether `framework` ("torch", "tensorflow", "jax", "keras") sees a GPU here."""
    try:
        if framework == "torch":
            torch_device("cuda")
        elif framework == "tensorflow":
            tensorflow_device("cuda")
        elif framework == "jax":
            jax_device("cuda")
        else:
            return False
    except (DeviceUnavailable, ImportError):
        return False
    return True
