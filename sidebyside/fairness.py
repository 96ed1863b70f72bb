"""One thread count and one matmul precision for every framework.

Thread pools are sized by environment variables that each library reads once,
when it loads, so `set_environment` must run before any framework is
imported; `apply` then sets the run-time knobs of the frameworks a process
actually uses. What a process records is not what was asked but what its
pools have: `read_back` asks each library (threadpoolctl for the native
BLAS and OpenMP pools, each framework's adapter for its own), and `off_request`
names the pools whose size is not the one asked for.

A thread count alone is a request: a library may size its pools from the
CPUs it may run on and ignore every environment variable (XLA does, under
JAX and TensorFlow's jit_compile). So `set_environment` first pins the
process to exactly T CPUs (`os.sched_setaffinity`); everything it starts afterwards, every framework's
pool and every child process, can use at most those T cores, whatever it
was told. A pool of more threads than that then waits for its cores, which
the CPU time cannot show (it stays within T); the timed steps count the
runnable threads instead (sidebyside.timing.Runnable).

This module names no framework. The variables of the native libraries any
framework may load (OpenMP, the BLAS libraries) are set here for every
process; what each framework needs besides is its adapter's
(sidebyside/frameworks/): its environment variables (`environment`, every
adapter's, in every process), its run-time knobs (`configure`, the
frameworks a process computes with) and its own report of its pools
(`pools`). Inter-op pools (a pool named "..._inter_op") are set to
one thread everywhere: the two-layer step is a chain of dependent
operations, so there is nothing to run side by side, and a second pool
would only compete with the first for the same cores.
"""

import os

from threadpoolctl import threadpool_info, threadpool_limits

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
    oversubscribed, which the runnable-thread count will show). Returns the CPUs.
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

    Returns the settings as a flat dict for the results' `threads` record:
    the CPUs and what the adapters record as set (XLA_FLAGS); the pools'
    sizes are `read_back`'s.
    """
    applied = {"requested": threads, "tf32": tf32}
    if hasattr(os, "sched_getaffinity"):
        applied["cpus"] = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    applied.update(frameworks.configure(names, threads, tf32))
    # After the frameworks' own settings, which import them: the native
    # libraries they load (numpy's BLAS, with JAX) are then there to limit.
    # Keep a module-level reference: the limits last while the object lives.
    global _blas_limits
    _blas_limits = threadpool_limits(limits=threads)
    return applied


def read_back(names):
    """Every thread pool of this process as its library reports it now: {pool: threads}, flat.

    threadpoolctl's report for the native libraries loaded (keyed by their
    internal_api: "openblas", "openmp", "mkl"; a second copy of one by its
    file's prefix too), then each computing framework of `names` as its
    adapter reports it (`frameworks.pools`: torch's intra- and inter-op
    threads, the threads of XLA's pool, ...).
    """
    pools = {}
    for library in threadpool_info():
        key = library["internal_api"]
        pools[f"{key} ({library['prefix']})" if key in pools else key] = library["num_threads"]
    pools.update(frameworks.pools(names))
    return pools


def asked(pool, threads):
    """The size a pool of `read_back` is asked for: one thread for an inter-op pool (see above), else `threads`."""
    return 1 if pool.endswith("_inter_op") else threads


def off_request(pools, threads):
    """The pools of `read_back` at another size than asked: {pool: (size, asked)}."""
    return {pool: (size, asked(pool, threads)) for pool, size in pools.items() if size != asked(pool, threads)}
