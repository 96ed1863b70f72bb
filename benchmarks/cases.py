"""Building one benchmark case: problem, data, initial weights and the net.

Shared by the worker of `sidebyside run` and the pytest-benchmark suite, so
both time exactly the same thing.
"""

from implementations.problem import Problem, make_data


def build(Net, spec, device, dtype, size, learning_rate=1e-6, steps=500, seed=0):
    """(net, x, y, problem), with x and y already converted for the net."""
    problem = Problem(**size, learning_rate=learning_rate, steps=steps, seed=seed, dtype=dtype)
    x, y, w1, w2 = make_data(problem)
    options = {key: value for key, value in spec.options.items() if key != "backend"}
    net = Net(w1, w2, problem.learning_rate, device=device, dtype=dtype, **options)
    x, y = net.prepare(x, y)  # data conversion stays outside every timed region
    return net, x, y, problem
