"""Building one benchmark case: problem, data, initial weights and the net.

Shared by the worker of `sidebyside run` and the pytest-benchmark suite, so
both time exactly the same thing. The net is built by
`implementations.create`, so the variant timed is the registered one
(tf_function_xla with XLA, keras_jax_eager without jit), whoever calls.
"""

from sidebyside import implementations
from sidebyside.implementations.two_layer.problem import Problem, make_data


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
    x, y = net.prepare(x, y)  # data conversion stays outside every timed region
    return net, x, y, problem
