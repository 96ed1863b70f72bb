"""XLA's thread setting, shared by the two frameworks that compile with it (JAX, TensorFlow's jit_compile).

Not an adapter (the underscore keeps it out of the list): the jax and tensorflow adapters both ask it.
"""

import os


def environment(threads):
    """XLA_FLAGS for `threads`, keeping the user's other flags; quiet C++ logging unless asked.

    XLA's CPU backend sizes its Eigen pool from the CPUs in the affinity
    mask (sidebyside/fairness.py pins it); with one thread the pool is
    switched off. Only flags the installed jaxlib knows may appear here:
    XLA aborts on others.
    """
    flags = [flag for flag in os.environ.get("XLA_FLAGS", "").split() if "multi_thread_eigen" not in flag]
    flags.append(f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}")
    # TensorFlow's and JAX's C++ logging would otherwise fill the terminal.
    return {"XLA_FLAGS": " ".join(flags), "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
