"""The two-layer net's tasks: what one configuration expands to, and the helpers the job tools share.

Apart from the workload's module so that the data-parallel job tools (job_results.py) can build
a task without importing the workload, which imports them.
"""

import math

from sidebyside.config import sweep_learning_rate

NAME = "two_layer"
SIZE_KEYS = ("N", "D_in", "H", "D_out")


def size_dict(size):
    return dict(zip(SIZE_KEYS, size))


def problem_bytes(size):
    from sidebyside.implementations.two_layer.problem import Problem

    return Problem(**size_dict(size)).bytes_needed()


def loop_steps(config, size):
    """The loop view's length: the same for every implementation of a case.

    As many steps as `loop_flops` of work (50 at the tutorial size), at least
    `loop_min_steps`, at most the run's steps.
    """
    from sidebyside.implementations.two_layer.problem import Problem

    flops = Problem(**size_dict(size)).flops_per_step()
    return max(config.loop_min_steps, min(config.steps, int(config.loop_flops / flops)))


def task(config, device, dtype, size, full):
    """One task: a size in full (agreement, every timing view) or a sweep size (timed within a budget,
    agreement on its first steps)."""
    planned = {
        "workload": NAME, "device": device, "dtype": dtype, "size": size_dict(size),
        "steps": config.steps, "seed": config.seed, "warmup": min(config.warmup, max(config.steps // 10, 1)),
        "learning_rate": config.learning_rate if full else sweep_learning_rate(config.learning_rate, size),
        "loop_steps": loop_steps(config, size), "ranks": config.ranks,
        "round_budget_s": config.round_budget_s, "min_steps": config.min_timed_steps,
    }
    if not full:
        planned.update(budget_s=config.sweep_budget_s, warmup=config.sweep_warmup)
    return planned


def budget_steps(task, step_s):
    """How many steps `task` times after its first and its burn-in, for steps of about `step_s` seconds.

    At full length every step left; at a sweep size as many as fill its
    budget, at least `min_steps`. The worker stops once the steps it timed
    have spent the budget; this is the same rule counted in advance, for a
    timer that needs the count first (pytest-benchmark's pedantic rounds).
    """
    left = task["steps"] - 1 - task["warmup"]
    if "budget_s" not in task:
        return left
    wanted = math.ceil(task["budget_s"] / step_s) if step_s > 0 else left
    return min(left, max(task["min_steps"], wanted))


def finite_or_none(value):
    return value if value is not None and math.isfinite(value) else None
