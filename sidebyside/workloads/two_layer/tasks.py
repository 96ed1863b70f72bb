"""The two-layer net's options and tasks: its sizes and sweep, what one configuration expands to.

Apart from the workload's module so that the data-parallel jobs and the
pytest-benchmark suite can build a task without importing the workload.
"""

import math

from sidebyside.config import Option, positive_float, sizes_of
from sidebyside.implementations.two_layer.problem import Problem

NAME = "two_layer"
SIZE_KEYS = ("N", "D_in", "H", "D_out")
TUTORIAL_SIZE = (64, 1000, 100, 10)
LEARNING_RATE = 1e-6  # the tutorial's, at its size; sweep sizes scale it down
# The default sweep: the tutorial's net at batches from a quarter of its 64
# (the step almost all fixed cost) to 64 times it (almost all arithmetic),
# so the fit of step time against FLOPs (report/overhead.py) has points on
# both sides of every implementation's knee; --sweep walks a grid of
# batches and hidden widths instead.
SHORT_SWEEP = tuple((n, 1000, 100, 10) for n in (16, 256, 1024, 4096))
# --sweep: batch × hidden width, the full grid.
FULL_SWEEP = tuple((n, 1000, h, 10) for n in (16, 64, 256, 1024, 4096) for h in (100, 400, 1600))

size = sizes_of(SIZE_KEYS)
OPTIONS = (
    Option("--size", "sizes", "a size run in full (repeatable; default the tutorial's 64,1000,100,10)",
           type=size, action="append", metavar=",".join(SIZE_KEYS)),
    Option("--sweep", "full_sweep", "time the full grid of sizes, not the short sweep", action="store_true"),
    Option("--no-sweep", "no_sweep", "time only the --size sizes", action="store_true"),
    Option("--learning-rate", "learning_rate", f"SGD step (default {LEARNING_RATE:g})", type=positive_float),
    Option("--profile", "profile", "profile one steady-state step per implementation where the framework has a "
           "profiler (torch, JAX, TensorFlow)", action="store_true"),
)


def sizes(config):
    """The sizes run in full: --size's, in order and once each, else the tutorial's."""
    given = config.option("sizes") or (TUTORIAL_SIZE,)
    return tuple(dict.fromkeys(tuple(value) for value in given))


def sweep(config):
    """The sizes timed within a budget: `options["sweep"]` where given, else the short sweep or, with
    --sweep, the full grid; none with --quick, --no-sweep, or --size without --sweep. Never a full size."""
    if config.option("sweep") is not None:
        chosen = config.option("sweep")
    elif config.quick or config.option("no_sweep") or (config.option("sizes") and not config.option("full_sweep")):
        chosen = ()
    else:
        chosen = FULL_SWEEP if config.option("full_sweep") else SHORT_SWEEP
    full = sizes(config)
    return tuple(candidate for candidate in (tuple(value) for value in chosen) if candidate not in full)


def settled(config):
    """The options this workload runs with, every default filled in: what results.json records."""
    return {"sizes": [list(value) for value in sizes(config)], "sweep": [list(value) for value in sweep(config)],
            "learning_rate": config.option("learning_rate", LEARNING_RATE),
            **({"profile": True} if config.option("profile") else {})}


def sweep_learning_rate(learning_rate, size):
    """Scale the tutorial's rate so larger nets do not diverge while timed.

    The gradient grows with the batch and the widths, so the rate shrinks by
    (64·1000·100)/(N·D_in·H).
    """
    N, D_in, H, _ = size
    return learning_rate * (64 * 1000 * 100) / (N * D_in * H)


def size_dict(size):
    return dict(zip(SIZE_KEYS, size))


def problem_bytes(size):
    return Problem(**size_dict(size)).bytes_needed()


def loop_steps(config, size):
    """The loop view's length: the same for every implementation of a case.

    As many steps as `loop_flops` of work (50 at the tutorial size), at least
    `loop_min_steps`, at most the run's steps.
    """
    flops = Problem(**size_dict(size)).flops_per_step()
    return max(config.loop_min_steps, min(config.steps, int(config.loop_flops / flops)))


def task(config, device, dtype, size, full):
    """One task: a size in full (agreement, every timing view) or a sweep size (timed within a budget,
    agreement on its first steps)."""
    rate = config.option("learning_rate", LEARNING_RATE)
    planned = {
        "workload": NAME, "device": device, "dtype": dtype, "size": size_dict(size),
        "steps": config.steps, "seed": config.seed, "warmup": min(config.warmup, max(config.steps // 10, 1)),
        "learning_rate": rate if full else sweep_learning_rate(rate, size),
        "loop_steps": loop_steps(config, size), "ranks": config.ranks,
        "round_budget_s": config.round_budget_s, "min_steps": config.min_timed_steps,
    }
    if not full:
        planned.update(budget_s=config.sweep_budget_s, warmup=config.sweep_warmup)
    elif config.option("profile"):
        planned["profile"] = True  # a sweep size is timed within a budget, a profile is of a size in full
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
