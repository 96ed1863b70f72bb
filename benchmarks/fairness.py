"""One thread count and one matmul precision for every framework.

Thread pools are sized by environment variables that each library reads once,
when it loads, so `set_environment` must run before any framework is
imported; `apply` then sets the run-time knobs of the frameworks a process
actually uses and returns what it set, for the results file.

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


def set_environment(threads):
    """Size every thread pool through the environment, before any import."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    # XLA's CPU backend (JAX, TensorFlow with jit_compile) runs Eigen kernels
    # on its own pool; one thread means turning that pool off.
    xla = [flag for flag in os.environ.get("XLA_FLAGS", "").split() if "multi_thread_eigen" not in flag and "intra_op_parallelism" not in flag]
    xla += [f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}", f"intra_op_parallelism_threads={threads}"]
    os.environ["XLA_FLAGS"] = " ".join(xla)
    # TensorFlow's and JAX's C++ logging would otherwise fill the terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def apply(frameworks, threads, tf32=False):
    """Set threads and TF32 in the frameworks named (already importable).

    Returns the settings as a flat dict for the results' `threads` record.
    """
    from threadpoolctl import threadpool_limits

    applied = {"requested": threads, "tf32": tf32}
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
