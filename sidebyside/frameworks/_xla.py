"""XLA's thread setting, shared by the two frameworks that compile with it (JAX, TensorFlow's jit_compile).

Not an adapter (the underscore keeps it out of the list): the jax and tensorflow adapters both ask it.
"""

import os


def environment(threads):
    """XLA_FLAGS for `threads`, keeping the user's other flags; quiet C++ logging unless asked.

    XLA's CPU client sizes its intra-op (Eigen) pool from PJRT_NPROC where
    it is set (xla/pjrt/utils.cc, DefaultThreadPoolSize), else from the CPUs
    in the affinity mask (sidebyside/fairness.py pins it): set, the pool has
    T threads however many CPUs the mask holds, like every other
    framework's. With one thread, Eigen's multi-threading is switched off.
    Only flags the installed jaxlib knows may appear here: XLA aborts on
    others.
    """
    flags = [flag for flag in os.environ.get("XLA_FLAGS", "").split() if "multi_thread_eigen" not in flag]
    flags.append(f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}")
    # TensorFlow's and JAX's C++ logging would otherwise fill the terminal.
    return {"XLA_FLAGS": " ".join(flags), "PJRT_NPROC": str(threads),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}


# tsl names a pool's threads "tf_" and the pool's name; XLA's CPU client calls its intra-op pool "XLAEigen".
POOL_THREAD = "tf_XLAEigen"


def pool_threads():
    """The threads of XLA's intra-op pool in this process, counted by name: no API reads the pool's size back."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm") as comm:
                count += comm.read().strip() == POOL_THREAD
        except OSError:  # the thread ended in between
            continue
    return count
