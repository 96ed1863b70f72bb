"""The distance to the compute limit, as targets.py measures it: blocks of steps beside blocks of the peak.

No clock here: synthetic timings with a known answer, and fakes that count
what the measuring loop did.
"""

import statistics

import pytest

from sidebyside.workloads.two_layer import targets

FLOPS = 26e6  # the tutorial step's FLOPs, near enough


def test_a_block_ratio_is_the_median_step_over_the_limit_at_its_peak():
    # 300 µs a step at 200 GFLOP/s: the limit is 130 µs, the ratio 300/130.
    assert targets.block_ratio([300e-6], [200.0], FLOPS) == [pytest.approx(300e-6 * 200e9 / FLOPS)]


def test_a_slow_minute_that_slows_steps_and_products_alike_leaves_the_ratio_alone():
    # Blocks 3 to 5 ran on a machine half as fast: steps twice as long, peak half.
    steps = [300e-6] * 3 + [600e-6] * 3 + [300e-6] * 3
    peaks = [200.0] * 3 + [100.0] * 3 + [200.0] * 3
    ratios = targets.block_ratio(steps, peaks, FLOPS)
    # Only the blocks next to the change are held to the faster neighbour's peak (stricter).
    assert ratios[0] == ratios[1] == ratios[4] == ratios[7] == ratios[8] == pytest.approx(300e-6 * 200e9 / FLOPS)
    assert ratios[3] == ratios[5] == pytest.approx(600e-6 * 200e9 / FLOPS)
    # Held to one peak measured in the fast minute, the slow blocks would read twice the ratio:
    # the median of the blocks is the fast minute's figure either way.
    assert sorted(ratios)[len(ratios) // 2] == pytest.approx(300e-6 * 200e9 / FLOPS)


def test_a_burst_during_one_peak_block_cannot_flatter_its_ratio():
    steps = [300e-6] * 5
    peaks = [200.0, 200.0, 20.0, 200.0, 200.0]  # the third peak block was hit by someone else's load
    ratios = targets.block_ratio(steps, peaks, FLOPS)
    assert min(ratios) == pytest.approx(300e-6 * 200e9 / FLOPS)


class FakeCase:
    library, size, flops = "numpy", 256, 2 * 256**3

    def __init__(self):
        self.best, self.resets, self.samples = None, 0, 0

    def reset(self):
        self.resets += 1
        self.best = None

    def sample(self):
        self.samples += 1
        self.best = 1e-4

    @property
    def gflops(self):
        return self.flops / self.best / 1e9


def test_paired_limit_alternates_peak_blocks_with_every_candidates_block():
    case = FakeCase()
    calls = {"a": 0, "b": 0}
    steps = {name: (lambda name=name: calls.__setitem__(name, calls[name] + 1)) for name in calls}
    blocked = targets.BlockedPeak(case, block_s=0.0)
    result = targets.paired_limit(steps, blocked, FLOPS, blocks=4, per_block=10)
    assert case.resets == 4 and len(blocked.peaks) == 4  # a fresh peak block before each block of steps
    assert calls == {"a": 4 * (5 + 10), "b": 4 * (5 + 10)}  # five untimed steps, then the timed ones
    for name in calls:
        median, ratios = result[name]
        assert len(ratios) == 4 and median == statistics.median(ratios)
        assert all(ratio > 0 for ratio in ratios)


def test_paired_limit_lets_a_spinning_pool_settle_before_the_next_candidate(monkeypatch):
    """After a block of a numpy candidate (OpenBLAS's threads spin ~0.1 s) comes its settling pause, then the next block."""
    events = []
    real_sleep = targets.time.sleep
    monkeypatch.setattr(targets.time, "sleep", lambda seconds: (events.append(("sleep", seconds)), real_sleep(0))[1])
    steps = {name: (lambda name=name: events.append(("step", name))) for name in ("spinner", "quiet")}
    blocked = targets.BlockedPeak(FakeCase(), block_s=0.0)
    targets.paired_limit(steps, blocked, FLOPS, blocks=4, per_block=3, settle_s={"spinner": 0.15})
    ends = [events[index + 1] for index, event in enumerate(events[:-1])
            if event == ("step", "spinner") and events[index + 1] != ("step", "spinner")]
    assert ends == [("sleep", 0.15)] * 4  # each of its four blocks, and never straight into another candidate's steps


def test_steal_share_counts_the_hypervisors_time_over_the_block(monkeypatch):
    """Steal seconds over wall seconds × CPUs; None where the system has no steal counter."""
    import types

    import psutil

    clock = iter([10.0, 12.0])
    stolen = iter([5.0, 5.4])
    from sidebyside import noise

    monkeypatch.setattr(noise.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(psutil, "cpu_times", lambda: types.SimpleNamespace(steal=next(stolen)))
    monkeypatch.setattr(psutil, "cpu_count", lambda: 2)
    with noise.StealShare() as steal:
        pass
    assert abs(steal.share - 0.4 / (2.0 * 2)) < 1e-12
    monkeypatch.setattr(psutil, "cpu_times", lambda: types.SimpleNamespace(user=1.0))
    monkeypatch.setattr(noise.time, "perf_counter", lambda: 1.0)
    with noise.StealShare() as steal:
        pass
    assert steal.share is None


def test_no_share_above_the_peak_is_printed_as_a_number():
    # A step that beats the peak it is judged by says the peak is unsound, not "147 % of peak" or "0.7x the limit".
    assert targets.share_text(1.47) == targets.UNSOUND
    assert targets.limit_text(0.7) == targets.UNSOUND
    assert targets.share_text(0.42) == "42% of peak"
    assert targets.limit_text(1.5) == "1.50x the compute limit"
