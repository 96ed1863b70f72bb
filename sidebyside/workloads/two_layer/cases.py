"""Building one benchmark case: problem, data, initial weights and the net.

Shared by the worker of `sidebyside run` and the pytest-benchmark suite, so
both time exactly the same thing. The net is built by
`implementations.create`, so the variant timed is the registered one
(tf_function_xla with XLA, keras_jax_eager without jit), whoever calls.
What `net.prepare` returns is checked (sidebyside/inputs.py): x and y keep
the shape and row-major layout they were given, so no variant moves
per-batch work out of the timed step.
"""

import time

from sidebyside import implementations, timing
from sidebyside.frameworks import compute_framework, forget_compiled
from sidebyside.implementations.two_layer.problem import Problem, make_data
from sidebyside.inputs import check_prepared


WARM_UP_SIZE = {"N": 4, "D_in": 8, "H": 4, "D_out": 2}


def build(name, *arguments, **keywords):
    """(net, x, y, problem), with x and y already converted for the net.

    build(name, device, dtype, size, learning_rate=1e-6, steps=500, seed=0, **overrides)

    `name` is a registered two-layer name (or its registry entry); `size` a
    dict of N, D_in, H, D_out; `overrides` explicit harness parameters passed
    on to `create` (torch_ddp's ranks and threads_per_rank).

    The older form build(Net, spec, device, ...) is still accepted: the Net
    class is ignored and the variant is built from `spec` through `create`,
    so its registry options can never be left out.
    """
    if isinstance(name, implementations.Implementation):
        name = name.name
    elif not isinstance(name, str):  # the older form: (Net, spec, device, ...)
        name, *arguments = arguments[0].name, *arguments[1:]
    return build_case(name, *arguments, **keywords)


def build_case(name, device, dtype, size, learning_rate=1e-6, steps=500, seed=0, **overrides):
    problem = Problem(**size, learning_rate=learning_rate, steps=steps, seed=seed, dtype=dtype)
    x, y, w1, w2 = make_data(problem)
    net = implementations.create(name, w1, w2, problem.learning_rate, device=device, dtype=dtype, **overrides)
    given = x, y
    x, y = net.prepare(x, y)  # data conversion stays outside every timed region
    try:
        check_prepared(given, (x, y))  # and is nothing more: any re-layout belongs in the step
    except ValueError:
        if hasattr(net, "close"):  # torch_ddp's rank processes
            net.close()
        raise
    return net, x, y, problem


def warm_up(spec, task, threads):
    """A few steps of `spec` at a tiny size, then its compiled graphs forgotten (the workload's `warm_up`).

    Returns the seconds it took, or None where it was skipped (a job of
    several processes: its ranks are fresh processes for every net) or
    failed (the case itself will then fail and say why).
    """
    if "ranks" in spec.options:
        return None
    begin = time.perf_counter()
    try:
        net, x, y, _ = build_case(spec.name, task["device"], task["dtype"], WARM_UP_SIZE, task["learning_rate"], 8,
                                  task["seed"])
    except Exception:
        return None
    try:
        timing.start(net, x, y, 2)
        timing.time_loop(net, x, y, 2)
    except Exception:
        return None
    finally:
        if hasattr(net, "close"):
            net.close()
        forget_compiled(compute_framework(spec))
    return time.perf_counter() - begin
