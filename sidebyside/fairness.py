"""One thread count and one matmul precision for every framework.

Thread pools are sized by environment variables that each library reads once,
when it loads, so `set_environment` must run before any framework is
imported; `apply` then sets the run-time knobs of the frameworks a process
actually uses and returns what it set, for the results file.

A thread count alone is a request: XLA (JAX, TensorFlow's jit_compile) sizes
its pools from the CPUs it may run on, and ignores every environment
variable above. So `set_environment` first pins the process to exactly T CPUs
(`os.sched_setaffinity`); everything it starts afterwards, every framework's
pool and every child process, can use at most those T cores, whatever it
was told. The worker checks that it worked by measuring the CPU time over
the wall time of the timed steps (`cpu_utilization`).

Inter-op pools are set to one thread everywhere: the two-layer step is a
chain of dependent operations, so there is nothing to run side by side, and
a second pool would only compete with the first for the same cores.
"""

import os

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
)


def default_threads():
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pin(threads):
    """Restrict this process (and all it starts) to `threads` of its CPUs.

    Takes the lowest-numbered CPUs of the current affinity mask. Asking for
    more threads than there are CPUs pins to all of them (the pools are then
    oversubscribed, which `cpu_utilization` will show). Returns the CPUs.
    """
    try:
        available = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux: nothing to pin with
        return None
    chosen = available[:threads] if threads <= len(available) else available
    os.sched_setaffinity(0, chosen)
    return chosen


def set_environment(threads):
    """Pin to T CPUs and size every thread pool, before any framework import.

    Returns the CPUs this process is now pinned to (None where unsupported).
    """
    cpus = pin(threads)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    # XLA's CPU backend sizes its Eigen pool from the CPUs in the affinity
    # mask (pinned above); with one thread the pool is switched off. Only
    # flags the installed jaxlib knows may appear here: XLA aborts on others.
    xla = [flag for flag in os.environ.get("XLA_FLAGS", "").split() if "multi_thread_eigen" not in flag]
    xla.append(f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}")
    os.environ["XLA_FLAGS"] = " ".join(xla)
    # TensorFlow's and JAX's C++ logging would otherwise fill the terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return cpus


def apply(frameworks, threads, tf32=False):
    """Set threads and TF32 in the frameworks named (already importable).

    Returns the settings as a flat dict for the results' `threads` record.
    """
    from threadpoolctl import threadpool_limits

    applied = {"requested": threads, "tf32": tf32}
    if hasattr(os, "sched_getaffinity"):
        applied["cpus"] = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    # Keep a module-level reference: the limits last while the object lives.
    global _blas_limits
    _blas_limits = threadpool_limits(limits=threads)
    applied["blas"] = threads
    if "torch" in frameworks:
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already set, or parallel work already started
            pass
        applied["torch_intra_op"] = torch.get_num_threads()
        applied["torch_inter_op"] = torch.get_num_interop_threads()
        # TF32 trades mantissa bits for speed in float32 matmuls on Ampere and
        # newer GPUs; the tutorial net does not converge the same under it.
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
    if "tensorflow" in frameworks:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow was already initialised
            pass
        applied["tensorflow_intra_op"] = tf.config.threading.get_intra_op_parallelism_threads()
        applied["tensorflow_inter_op"] = tf.config.threading.get_inter_op_parallelism_threads()
        tf.config.experimental.enable_tensor_float_32_execution(tf32)
    if "jax" in frameworks:
        import jax

        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
        applied["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    return applied
