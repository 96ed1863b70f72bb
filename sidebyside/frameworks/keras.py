"""Keras 3: no arithmetic of its own; it computes with its backend (fixed at import by KERAS_BACKEND).

The harness asks the backend's adapter for everything (sidebyside.frameworks.computing
leaves Keras out); only its version is Keras's own.
"""

PACKAGES = {"keras": ("keras",)}  # recorded name: the distributions that may provide it
COMPUTES_WITH = "its backend"


def environment(threads):
    return {}  # KERAS_BACKEND is set per process by the worker, one backend per zygote
