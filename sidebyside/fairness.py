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

What each framework needs set is its adapter's (sidebyside/frameworks/):
its environment variables and its run-time knobs. Inter-op pools are set to
one thread everywhere: the two-layer step is a chain of dependent
operations, so there is nothing to run side by side, and a second pool
would only compete with the first for the same cores.
"""

import os

from sidebyside import frameworks

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
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
    os.environ.update(frameworks.environment(threads))  # each framework's own (XLA_FLAGS, TF_NUM_*)
    return cpus


def apply(names, threads, tf32=False):
    """Set threads and TF32 in the frameworks named (import names, already importable), through their adapters.

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
    applied.update(frameworks.configure(names, threads, tf32))
    return applied
