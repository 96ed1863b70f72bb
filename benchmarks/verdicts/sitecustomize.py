"""A test plug-in: makes one implementation's step slower, from outside its code.

Python imports `sitecustomize` at start-up from the first folder of sys.path
that has one; `benchmarks/verdicts/slowdown.py` puts this folder on
PYTHONPATH, with SIDEBYSIDE_SLOWDOWN=NAME:FRACTION (numpy_manual:0.15), for
the processes of one environment only. When the implementation's module is
imported, its `Net.step` is wrapped: after each step the wrapper spins for
FRACTION of the time the step took, so the step is FRACTION slower whatever
the machine's speed, and nothing in the implementation's file changes.

With SIDEBYSIDE_SLOWDOWN_IN=FOLDER only a module whose file lies under FOLDER
is slowed: every environment of an A/B run then imports this file alike, and
only one checkout's implementation is slower (benchmarks/verdicts/ci_check.sh).
"""

import importlib.abc
import importlib.machinery
import os
import sys
import time

TARGET = os.environ.get("SIDEBYSIDE_SLOWDOWN", "")
ONLY_IN = os.environ.get("SIDEBYSIDE_SLOWDOWN_IN", "")


def slowed(step, fraction):
    def step_and_spin(*args, **kwargs):
        clock = time.perf_counter
        begin = clock()
        loss = step(*args, **kwargs)
        end = clock()
        deadline = end + fraction * (end - begin)
        while clock() < deadline:
            pass
        return loss

    return step_and_spin


class Slowdown(importlib.abc.MetaPathFinder):
    def __init__(self, module, fraction):
        self.module, self.fraction = module, fraction

    def find_spec(self, name, path, target=None):
        if name != self.module:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None:
            return None
        if ONLY_IN and not os.path.realpath(spec.origin or "").startswith(os.path.realpath(ONLY_IN) + os.sep):
            return None
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            module.Net.step = slowed(module.Net.step, self.fraction)

        spec.loader.exec_module = exec_module
        return spec


if TARGET:
    implementation, _, amount = TARGET.partition(":")
    sys.meta_path.insert(0, Slowdown(f"sidebyside.implementations.two_layer.{implementation}", float(amount)))
