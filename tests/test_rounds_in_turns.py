"""A later timing round times an implementation's sizes in turns (sidebyside/workloads/two_layer `time_rounds`).

Fast tier, in-process, numpy_manual at small sizes: the order the blocks
ran in is read from the timer itself, the records from what it returns.
"""

import math

import numpy as np
import pytest

from sidebyside import timing
from sidebyside.workloads.two_layer import TURNS, WORKLOAD, task
from sidebyside.config import RunConfig

CONFIG = RunConfig(threads=1, round_budget_s=0.02, min_timed_steps=5)
SIZES = [(64, 50, 20, 5), (32, 50, 20, 5), (16, 50, 20, 5)]


def tasks(sizes=SIZES):
    return [task(CONFIG, "cpu", "float32", size, full=False) for size in sizes]


def run(sizes=SIZES, ready=lambda task: None, name="numpy_manual"):
    return list(WORKLOAD.time_rounds(WORKLOAD.spec(name), tasks(sizes), 1, ready))


def test_the_sizes_take_turns_largest_first_then_back(monkeypatch):
    order = []
    real = timing.timed_steps

    def recorded(net, x, y, steps, **keywords):
        order.append(x.shape[0])
        return real(net, x, y, steps, **keywords)

    monkeypatch.setattr(timing, "timed_steps", recorded)
    records = run()
    batches = [size[0] for size in SIZES]
    assert order == (batches + batches[::-1]) * (TURNS // 2) + batches * (TURNS % 2)
    for record in records:  # every block's steps joined, at least min_timed_steps in all
        assert len(record["samples"]) >= CONFIG.min_timed_steps
        assert all(s > 0 for s in record["samples"])
        assert record["first_step_s"] > 0


def test_the_cores_busy_are_the_blocks_weighed_by_their_seconds(monkeypatch):
    real, calls = timing.timed_steps, []

    def fixed(net, x, y, steps, **keywords):  # the real steps; the 2nd, 4th, ... block 3 times as long, 2 cores
        losses, durations, diverged_at, _ = real(net, x, y, 2, **{**keywords, "budget_s": None, "min_rounds": 1})
        calls.append(x.shape[0])
        slow = calls.count(x.shape[0]) % 2 == 0
        return losses, [0.01 * (3 if slow else 1)] * 2, diverged_at, 2.0 if slow else 1.0

    monkeypatch.setattr(timing, "timed_steps", fixed)
    for record in run():  # turns 1, 3, 5: 0.02 s at 1 core; turns 2, 4: 0.06 s at 2 cores
        assert record["cpu_utilization"] == pytest.approx((3 * 0.02 * 1.0 + 2 * 0.06 * 2.0) / (3 * 0.02 + 2 * 0.06))
        assert record["samples"] == [0.01, 0.01, 0.03, 0.03] * 2 + [0.01, 0.01]


def test_the_records_keep_the_tasks_order_and_scale_with_the_size():
    records = run([(16, 50, 20, 5), (2048, 200, 100, 5)])
    small, large = (np.median(record["samples"]) for record in records)
    assert large > 5 * small  # 1,000 times the arithmetic: the second record is the large size's


def test_a_case_that_cannot_run_gets_its_reason_and_the_others_are_timed():
    def ready(task):
        if task["size"]["N"] == 32:
            raise RuntimeError("no such device here")

    records = run(ready=ready)
    assert records[1] == {"samples": [], "reason": "RuntimeError: no such device here"}
    assert records[0]["samples"] and records[2]["samples"]


def step_of_32(monkeypatch, replace):
    """The workload builds its nets as ever, but the net of N = 32 steps through replace(its own step)."""
    original = WORKLOAD.time_rounds.__globals__["build"]

    def built(spec, task, threads):
        net, x, y, problem = original(spec, task, threads)
        if task["size"]["N"] == 32:
            net.step = replace(net.step)
        return net, x, y, problem

    monkeypatch.setitem(WORKLOAD.time_rounds.__globals__, "build", built)


def test_a_net_that_diverges_gives_no_samples_and_stops_taking_turns(monkeypatch):
    steps = []
    step_of_32(monkeypatch, lambda step: lambda x, y: steps.append(1) or math.nan)
    records = run()
    assert records[1]["samples"] == [] and records[1]["first_step_s"] > 0
    assert len(steps) == 1  # its first step, never again
    assert records[0]["samples"] and records[2]["samples"]


@pytest.mark.parametrize("failing", ["first", "later"])
def test_a_net_that_raises_gets_its_reason_and_the_others_are_timed(monkeypatch, failing):
    def broken(step):
        calls = []

        def once(x, y):
            calls.append(1)
            if failing == "first" or len(calls) > 20:
                raise ValueError("out of memory")
            return step(x, y)

        return once

    step_of_32(monkeypatch, broken)
    records = run()
    assert records[1] == {"samples": [], "reason": "ValueError: out of memory"}
    assert records[0]["samples"] and records[2]["samples"]


def test_a_single_case_runs_alone():
    (record,) = run([(16, 50, 20, 5)])
    assert len(record["samples"]) >= CONFIG.min_timed_steps
