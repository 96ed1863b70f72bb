"""What the harness must know of each framework that computes: which one a
registry entry computes with, and its device-memory statistics.

One place for it, imported by the worker and by the digits measurement
alike (the first step towards one adapter per framework).
"""

import sys

# The frameworks whose threads and precision the harness sets (numpy's are
# set through its BLAS); Keras computes with its backend, one of these.
TUNED_FRAMEWORKS = ("torch", "tensorflow", "jax")


def compute_framework(spec):
    """The framework that does the arithmetic (torch for keras_torch, ...)."""
    return next((name for name in spec.requires if name in TUNED_FRAMEWORKS), spec.framework)


def forget_compiled(framework):
    """Drop the graphs compiled so far, keeping the compiler's one-time start.

    torch.compile remembers the shapes it saw per function: after a warm-up
    at a tiny size, the next size would be compiled for dynamic shapes,
    not the static graph a fresh process compiles. Other frameworks keep
    their compiled graphs per net, so a new net starts afresh anyway.
    """
    if framework == "torch" and "torch._dynamo" in sys.modules:  # else nothing was compiled
        import torch

        torch.compiler.reset()


def reset_gpu_peak(framework, device):
    """Start a case's peak device-memory count afresh, where the framework allows."""
    if device == "cuda" and framework == "torch":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def gpu_peak_bytes(framework):
    """Peak device memory the framework reports, where it reports one."""
    try:
        if framework == "torch":
            import torch

            return int(torch.cuda.max_memory_allocated())
        if framework == "tensorflow":
            import tensorflow as tf

            return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
        if framework == "jax":
            import jax

            return int(jax.devices("gpu")[0].memory_stats()["peak_bytes_in_use"])
    except Exception:  # the framework keeps no such statistic here
        return None
    return None
