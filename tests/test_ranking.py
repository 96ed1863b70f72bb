"""The tie rule of sidebyside.ranking, checked against simulated timings whose truth is known.

Step times are drawn from a lognormal (the shape of real step-time
histograms: a floor and a right tail). Two cases drawn from the SAME
distribution must never be ranked apart, whatever the seed; a case drawn
1.5 times slower must always be. Each simulated case is timed as the harness
times one: 3 rounds of 200 steps, each round's median recorded.
"""

import numpy as np
import pytest

from sidebyside import ranking
from sidebyside.ranking import NOISE_MARGIN, TIE, fastest, rank, rankable, separated

ROUNDS, STEPS = 3, 200
# Lognormal shape: an IQR of about 13 % of the median, noisier than the 10 % the report flags as
# unstable. (At this noise, 5000 seeds of equal pairs give no false separation; 50 are run here.)
SIGMA = 0.1


def simulated(generator, median_s, name="case"):
    """An entry as the harness writes it, from ROUNDS × STEPS lognormal step times around `median_s`."""
    samples = generator.lognormal(np.log(median_s), SIGMA, size=(ROUNDS, STEPS))
    q1, q3 = np.percentile(samples, [25, 75])
    return {"implementation": name, "status": "ok", "agrees": True,
            "step_time": {"median": float(np.median(samples)), "iqr": float(q3 - q1),
                          "round_medians": [float(x) for x in np.median(samples, axis=1)]}}


def stats_only(median_s, iqr_s):
    """An entry as pytest-benchmark gives it: a median and an IQR, no rounds."""
    return {"status": "ok", "step_time": {"median": median_s, "iqr": iqr_s}}


@pytest.mark.parametrize("seed", range(50))
def test_same_distribution_is_always_a_tie(seed):
    generator = np.random.default_rng(seed)
    a, b = simulated(generator, 4e-4, "a"), simulated(generator, 4e-4, "b")
    assert not separated(a, b) and not separated(b, a)
    ranked = rank([a, b])
    assert [item.rank for item in ranked] == [1, 1] and all(item.tied for item in ranked)
    assert len(fastest([a, b])) == 2


def test_the_rounds_alone_would_name_a_false_winner():
    """Why the margin exists: with 3 rounds each, equal cases' rounds fall apart by chance about 1 time in 10."""
    apart = 0
    for seed in range(200):
        generator = np.random.default_rng(seed)
        a, b = simulated(generator, 4e-4), simulated(generator, 4e-4)
        low, high = sorted((a, b), key=ranking.median)
        apart += max(ranking.round_medians(low)) < min(ranking.round_medians(high))
    assert 0.04 < apart / 200 < 0.2  # 2 of the 20 interleavings of 3 + 3 values: 0.1
    # ... and every one of those is still a tie, thanks to the margin (checked per seed above).


@pytest.mark.parametrize("seed", range(50))
def test_one_and_a_half_times_slower_is_separated(seed):
    generator = np.random.default_rng(seed)
    fast, slow = simulated(generator, 4e-4, "fast"), simulated(generator, 6e-4, "slow")
    assert separated(fast, slow) and separated(slow, fast)
    ranked = rank([slow, fast])
    assert [(item.entry["implementation"], item.rank, item.tied) for item in ranked] == [
        ("fast", 1, False), ("slow", 2, False)]
    assert fastest([slow, fast]) == [fast]


def test_margin_holds_even_when_rounds_do_not_overlap():
    faster = {"median": 1.00, "round_medians": [0.99, 1.00, 1.01]}
    slightly = {"median": 1.02, "round_medians": [1.015, 1.02, 1.025]}  # apart, but only 2 % slower
    clearly = {"median": 1.10, "round_medians": [1.09, 1.10, 1.11]}
    assert not separated(faster, slightly)
    assert separated(faster, clearly)
    assert 1.02 - 1 < NOISE_MARGIN < 1.10 - 1


def test_overlapping_rounds_are_a_tie_whatever_the_gap():
    a = {"median": 1.0, "round_medians": [0.9, 1.0, 1.6]}
    b = {"median": 1.5, "round_medians": [1.4, 1.5, 1.55]}  # 50 % slower, but a's worst round is slower still
    assert not separated(a, b)


def test_fallback_rule_uses_the_iqr_intervals():
    # No round medians: [median - iqr/2, median + iqr/2] must not overlap (and the margin applies).
    assert separated(stats_only(1.0, 0.1), stats_only(1.2, 0.1))  # [0.95, 1.05] against [1.15, 1.25]
    assert not separated(stats_only(1.0, 0.3), stats_only(1.2, 0.2))  # [0.85, 1.15] against [1.1, 1.3]
    assert not separated(stats_only(1.0, 0.0), stats_only(1.02, 0.0))  # points, but within the margin
    assert separated(stats_only(1.0, None), stats_only(1.05, None))  # no IQR: a point
    # One side with rounds and one without: the common statistics decide.
    with_rounds = {"median": 1.0, "iqr": 0.3, "round_medians": [0.99, 1.0, 1.01]}
    assert not separated(with_rounds, stats_only(1.2, 0.2))
    # A single round median is not a set of rounds: the fallback applies.
    assert ranking.round_medians({"median": 1.0, "round_medians": [1.0]}) is None


def test_rank_gives_competition_ranks_against_each_ranks_first_entry():
    entries = [stats_only(m, 0.0) for m in (1.0, 1.01, 1.5, 1.52, 3.0)]
    ranked = rank(list(reversed(entries)))
    assert [item.rank for item in ranked] == [1, 1, 3, 3, 5]
    assert [item.tied for item in ranked] == [True, True, True, True, False]
    assert [ranking.median(item.entry) for item in ranked] == [1.0, 1.01, 1.5, 1.52, 3.0]


def test_disagreeing_and_untimed_entries_are_never_ranked():
    good = {"status": "ok", "agrees": True, "step_time": {"median": 2.0, "iqr": 0.0}}
    wrong_fast = {"status": "disagrees", "reason": "loss differs", "step_time": {"median": 1.0, "iqr": 0.0}}
    old_wrong = {"status": "ok", "agrees": False, "step_time": {"median": 1.0, "iqr": 0.0}}
    flagged = {"status": "ok", "extra": {"disagrees": True}, "step_time": {"median": 1.0, "iqr": 0.0}}
    untimed = {"status": "ok", "step_time": None}
    failed = {"status": "failed", "step_time": {"median": 0.5}}
    assert [rankable(e) for e in (good, wrong_fast, old_wrong, flagged, untimed, failed)] == [
        True, False, False, False, False, False]
    assert fastest([wrong_fast, old_wrong, flagged, untimed, failed, good]) == [good]
    assert fastest([wrong_fast, untimed]) == []
    assert TIE == "tie (within noise)"


def test_missing_or_odd_values_do_not_break_the_rule():
    assert not separated({"median": None}, {"median": 1.0})
    assert not separated({}, {})
    assert rank([{"status": "ok"}, {"step_time": {"median": float("nan")}}]) == []
    nan_rounds = {"median": 1.0, "round_medians": [float("nan"), -1, "x"]}
    assert ranking.round_medians(nan_rounds) is None


# ----------------------------------------------------------------------------
# The console summary `sidebyside run` prints uses the same rule
# ----------------------------------------------------------------------------


def console_entry(name, median_s, rounds, status="ok", **extra):
    return {"workload": "two_layer", "implementation": name, "device": "cpu", "dtype": "float32", "threads": 2,
            "size": {"N": 64, "D_in": 1000, "H": 100, "D_out": 10}, "status": status, "agrees": status == "ok",
            "step_time": {"median": median_s, "iqr": 0.0, "round_medians": rounds}, "gflops": 100.0,
            "peak_fraction": 0.25, "cpu_utilization": 1.9, "first_step_s": 1e-3, "agreement": 1e-7, **extra}


def printed(entries):
    import io

    from rich.console import Console

    from sidebyside.summary import print_summary

    stream = io.StringIO()
    print_summary({"results": entries}, Console(file=stream, width=240, color_system=None))
    return stream.getvalue()


def row_of(text, name):
    """The cells of the table row of implementation `name`: implementation, rank, µs/step, ×best, ..."""
    line = next(line for line in text.splitlines() if line.startswith(f"│ {name} "))
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_console_summary_says_tie_and_never_ranks_a_disagreeing_run():
    reason = "loss differs from the float64 reference by 3.2e-03 relative (tolerance 1.0e-08)"
    entries = [
        console_entry("wrong_but_fast", 1e-4, [0.99e-4, 1e-4, 1.01e-4], status="disagrees", reason=reason),
        console_entry("old_wrong", 1e-4, [0.99e-4, 1e-4, 1.01e-4], agrees=False),
        console_entry("first_a", 2.00e-4, [1.98e-4, 2.00e-4, 2.03e-4]),
        console_entry("first_b", 2.02e-4, [2.00e-4, 2.02e-4, 2.04e-4]),  # 1 % slower, rounds overlap: a tie
        console_entry("slower", 3.0e-4, [2.97e-4, 3.0e-4, 3.03e-4], peak_fraction=1.3,
                      extra={"runnable_threads": {"median": 3.5, "max": 4, "samples": 30, "cpus": 2},
                             "threads_read_back": {"openblas": 2, "torch_intra_op": 3, "torch_inter_op": 1}}),
    ]
    text = printed(entries)
    assert "fastest: tie (within noise) between first_a, first_b" in text
    assert row_of(text, "wrong_but_fast")[-1] == f"disagrees: {reason}"
    assert row_of(text, "old_wrong")[-1] == "disagrees: loss differs from the float64 reference"
    for name in ("wrong_but_fast", "old_wrong"):
        assert row_of(text, name)[1:4] == ["—", "100", "n/a"]  # timed, but no rank and no ×best
    assert row_of(text, "first_a")[1:4] == ["1 tie", "200", TIE]  # ×best: no winner to be 1.00 against
    assert row_of(text, "first_b")[1:4] == ["1 tie", "202", f"1.01, {TIE}"]
    assert row_of(text, "slower")[1:7] == ["3", "300", "1.50", "100.0", "> peak", "1.90/2 !"]
    assert row_of(text, "first_a")[6] == "1.90/2"
    assert "! oversubscribed: slower (3.5 runnable threads on 2 CPUs)" in text
    assert "! thread pools not at the size asked for: slower: torch_intra_op 3 (asked 2)" in text
    assert "> peak, slower: faster than the measured peak: the peak is unsound here" in text


def test_console_summary_names_a_separated_winner_and_prints_markup_as_text():
    entries = [console_entry("fast", 1e-4, [0.99e-4, 1e-4, 1.01e-4]),
               console_entry("slow[/bold]", 2e-4, [1.98e-4, 2e-4, 2.02e-4])]
    text = printed(entries)
    assert "tie" not in text
    assert row_of(text, "fast")[1:4] == ["1", "100", "1.00"]
    assert row_of(text, "slow[/bold]")[1:4] == ["2", "200", "2.00"]


def test_console_summary_says_once_that_a_device_ran_nothing():
    # On a machine without a GPU: one line for CUDA, not a table of n/a rows per workload and dtype.
    no_gpu = [console_entry(name, None, [], device="cuda", dtype=dtype, status="n/a", reason="no CUDA device",
                            step_time=None, gflops=None, peak_fraction=None, cpu_utilization=None)
              for name in ("a", "b", "c") for dtype in ("float32", "float64")]
    text = printed([console_entry("fast", 1e-4, [1e-4]), *no_gpu])
    assert "CUDA: no device here (6 cases not run)" in text
    assert text.count("two_layer · cuda") == 0 and text.count("two_layer · cpu") == 1
    assert row_of(text, "fast")[1] == "1"
    # A device where something ran keeps its tables, n/a rows included.
    mixed = [console_entry("gpu_fast", 1e-5, [1e-5], device="cuda"), no_gpu[0]]
    text = printed(mixed)
    assert "no device here" not in text and row_of(text, "a")[-1] == "n/a: no CUDA device"


def test_console_summary_names_the_left_out_slow_starters_once():
    from sidebyside.ranking import LEFT_OUT

    reason = f"{LEFT_OUT} (it compiles for seconds in every fresh process); add --all, or --impl slow_one"
    left = [console_entry("slow_one", None, [], dtype=dtype, status="n/a", reason=reason, step_time=None,
                          gflops=None, peak_fraction=None, cpu_utilization=None) for dtype in ("float32", "float64")]
    text = printed([console_entry("fast", 1e-4, [1e-4]), *left])
    assert not any(line.startswith("│ slow_one ") for line in text.splitlines())
    assert text.count("slow_one") == 1
    assert f"{LEFT_OUT}: slow_one (slow to start" in text and "add --all, or --impl NAME" in text
    # One of its cases ran (named with --impl on a resumed run, say): it keeps its rows.
    ran = [console_entry("slow_one", 3e-4, [3e-4], dtype="float64"), left[0]]
    text = printed(ran)
    statuses = [line.split("│")[-2].strip() for line in text.splitlines() if line.startswith("│ slow_one ")]
    assert statuses[0] == "ok" and statuses[1].startswith("n/a: not in the") and LEFT_OUT + ":" not in text
