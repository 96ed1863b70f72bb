"""`sidebyside compare BASE NEW`: the statistics, the three formats, --fail-on, bad input.

The statistics are checked against independent computations (the exact
Mann–Whitney distribution counted by hand, the normal approximation written
out); the command is checked on a real quick run (tests/conftest.py
quick_run) and on copies of it changed by hand.
"""

import csv
import io
import itertools
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import statistics

from sidebyside import rounds
from sidebyside.report import compare
from sidebyside.report.compare import Change, timed_change
from sidebyside.results import parse_results
from tests.conftest import ROOT
from tests.test_cli import one_line_error, sidebyside
from tests.test_report_data import make_benchmark_json


# ----------------------------------------------------------------------------
# The statistics, against independent computations
# ----------------------------------------------------------------------------


def exact_two_sided_p(before, after):
    """The exact two-sided p of the Mann–Whitney U test, by enumerating every split (no ties)."""
    pooled = before + after
    n = len(before)

    def u(group):
        return sum(x > y for x in group for y in pooled if y not in group)

    observed = u(before)
    middle = n * len(after) / 2
    splits = [u(list(group)) for group in itertools.combinations(pooled, n)]
    return sum(abs(value - middle) >= abs(observed - middle) for value in splits) / len(splits)


def test_clearly_separated_rounds_are_significant_with_the_exact_p():
    before = [1.00e-4, 1.01e-4, 1.02e-4, 1.03e-4, 1.04e-4]
    after = [2.00e-4, 2.01e-4, 2.02e-4, 2.03e-4, 2.04e-4]
    change = timed_change(1.02e-4, 2.02e-4, before, after)
    assert change.p_value == pytest.approx(exact_two_sided_p(before, after)) == pytest.approx(2 / math.comb(10, 5))
    assert change.p_value == pytest.approx(rounds.smallest_p(5, 5))  # nothing smaller than 5 + 5 rounds support
    assert change.significant and change.verdict == "1.98× slower"
    assert change.percent == pytest.approx(100 * (2.02e-4 - 1.02e-4) / 1.02e-4)
    faster = timed_change(2.02e-4, 1.02e-4, after, before)
    assert faster.significant and faster.verdict == "1.98× faster"


def test_the_p_value_is_the_exact_one_of_the_rounds_never_of_the_steps():
    generator = np.random.default_rng(7)
    before, after = (generator.permutation(np.arange(1, 15))[:7] * 1e-6).tolist(), None
    after = [x + 0.5e-6 for x in generator.permutation(np.arange(1, 15))[:7] * 1e-6]
    change = timed_change(float(np.median(before)), float(np.median(after)), before, after)
    assert change.p_value == pytest.approx(exact_two_sided_p(before, after))
    assert not change.significant and change.verdict == compare.NOT_SIGNIFICANT


def test_identical_rounds_are_not_significant():
    values = [3.1e-4, 3.3e-4, 3.2e-4, 3.5e-4, 3.0e-4, 3.4e-4]
    change = timed_change(3.25e-4, 3.25e-4, values, list(values))
    assert change == Change(0.0, 1.0, False, "~")
    constant = [2e-4] * 5  # every round the same, on both sides: scipy's statistic is undefined
    assert timed_change(2e-4, 2e-4, constant, constant).verdict == "~"


@pytest.mark.parametrize("before, after, verdict", [
    ([], [1e-4] * 5, "n/a: no rounds (before)"),
    ([1e-4] * 5, None, "n/a: no rounds (after)"),
    ([1e-4] * 3, [2e-4] * 5, "n/a: too few rounds (before: 3, 4 needed)"),
])
def test_missing_or_too_few_rounds_say_so(before, after, verdict):
    change = timed_change(1e-4, 2e-4, before, after)
    assert change.verdict == verdict and change.p_value is None and not change.significant
    assert change.percent == pytest.approx(100.0)  # the medians' change is still shown
    assert not change.slower_than(5)


def test_three_rounds_a_side_cannot_reach_alpha_but_four_can():
    assert rounds.smallest_p(3, 3) > compare.ALPHA > rounds.smallest_p(4, 4)
    four = timed_change(1.15, 2.15, [1.0, 1.1, 1.2, 1.3], [2.0, 2.1, 2.2, 2.3])
    assert four.significant and four.p_value == pytest.approx(exact_two_sided_p([1.0, 1.1, 1.2, 1.3],
                                                                                 [2.0, 2.1, 2.2, 2.3]))


def test_the_threshold_counts_only_significant_slowdowns():
    separated = [1.0, 1.1, 1.2, 1.3, 1.4], [2.0, 2.1, 2.2, 2.3, 2.4]
    slower = timed_change(1.2, 2.2, *separated)
    assert slower.slower_than(80) and not slower.slower_than(90)
    assert not timed_change(2.2, 1.2, *reversed(separated)).slower_than(0)  # faster
    overlapping = [1.0, 2.0, 1.1, 2.1, 1.2], [2.2, 1.3, 2.3, 1.4, 2.4]
    assert not timed_change(1.2, 2.2, *overlapping).slower_than(5)  # 83 % slower, but not significant


def test_rounds_apart_by_less_than_the_noise_margin_are_a_tie():
    before = [1.000, 1.001, 1.002, 1.003, 1.004]
    after = [x * 1.02 for x in before]  # every round beyond, but 2 % is within the noise of fresh processes
    change = timed_change(1.002, 1.002 * 1.02, before, after)
    assert change.p_value == pytest.approx(rounds.smallest_p(5, 5)) and not change.significant
    assert change.verdict == "~"


# ----------------------------------------------------------------------------
# The drift canary: a machine that changed speed between the runs
# ----------------------------------------------------------------------------

BASE = [300e-6, 305e-6, 310e-6, 302e-6, 308e-6]
CANARY = [360e-6, 362e-6, 365e-6, 361e-6, 363e-6]


def test_a_machine_1_8x_slower_in_new_is_said_and_the_verdict_is_on_the_normalized_rounds():
    after = [x * 1.8 * (1 + 0.004 * i) for i, x in enumerate(BASE)]  # the same code, a slower machine
    canary_after = [x * 1.8 for x in CANARY]
    change = timed_change(statistics.median(BASE), statistics.median(after), BASE, after, CANARY, canary_after)
    assert change.machine_moved and change.canary == pytest.approx(0.8)
    assert change.fraction == pytest.approx(statistics.median(after) / statistics.median(BASE) - 1)
    assert abs(change.normalized) < 0.02 and not change.significant and not change.slower_than(5)
    assert change.verdict == f"machine 1.80× slower in after: normalized {100 * change.normalized:+.1f}%, ~"
    # Without the canary the same rounds would have read as a slowdown.
    assert timed_change(statistics.median(BASE), statistics.median(after), BASE, after).verdict == "1.81× slower"


def test_a_real_slowdown_on_a_faster_machine_is_found_on_the_normalized_rounds():
    after = [x * 1.15 * 0.6 for x in BASE]  # 15 % slower code on a machine 1.67× faster: raw says faster
    canary_after = [x * 0.6 for x in CANARY]
    change = timed_change(statistics.median(BASE), statistics.median(after), BASE, after, CANARY, canary_after)
    assert change.fraction < 0 and change.machine_moved
    assert change.normalized == pytest.approx(0.15, abs=0.01) and change.significant
    assert change.verdict.startswith("machine 1.67× faster in after: normalized +15.") and change.verdict.endswith(
        "1.15× slower")
    assert change.slower_than(10) and not change.slower_than(20)


def test_a_canary_that_did_not_move_leaves_the_raw_rounds_to_decide():
    after = [x * 1.15 for x in BASE]
    canary_after = [x * 1.01 for x in CANARY]  # 1 %: within the noise
    change = timed_change(statistics.median(BASE), statistics.median(after), BASE, after, CANARY, canary_after)
    assert not change.machine_moved and change.canary == pytest.approx(0.01)
    assert change.verdict == "1.15× slower" and change.deciding == change.fraction


def test_a_missing_canary_round_falls_back_to_the_raw_rounds():
    after = [x * 1.8 for x in BASE]
    change = timed_change(statistics.median(BASE), statistics.median(after), BASE, after,
                          CANARY, [x * 1.8 for x in CANARY[:4]] + [None])
    assert change.canary is None and change.normalized is None and not change.machine_moved
    assert change.verdict == "1.80× slower"


def test_on_a_drifting_machine_the_false_alarm_rate_is_what_the_rounds_support():
    """Simulated A/A pairs on a machine that drifts 2× between runs and 10 % between rounds.

    Each round's time is the code's (the same on both sides) times the machine's speed in that round times
    a process's own noise; its canary sees the same machine speed with noise of its own. Decided on the
    raw rounds, almost every pair would be a "change"; on the normalized ones, no more than chance allows
    (2 / C(10, 5) per pair at most, before the noise margin).
    """
    generator = np.random.default_rng(29)
    alarms, raw_alarms, pairs = 0, 0, 2000
    for _ in range(pairs):
        sides = []
        for run_speed in generator.uniform(0.5, 1.0, size=2):
            machine = run_speed * generator.uniform(0.9, 1.1, size=5)
            step = 300e-6 / machine * generator.normal(1, 0.01, size=5)
            canary = 360e-6 / machine * generator.normal(1, 0.01, size=5)
            sides.append((step.tolist(), canary.tolist()))
        (before, canary_before), (after, canary_after) = sides
        change = timed_change(statistics.median(before), statistics.median(after), before, after,
                              canary_before, canary_after)
        alarms += change.significant
        raw_alarms += timed_change(statistics.median(before), statistics.median(after), before, after).significant
    assert alarms <= pairs * rounds.smallest_p(5, 5)
    assert raw_alarms > pairs / 3


# ----------------------------------------------------------------------------
# Round statistics (sidebyside/rounds.py), against independent computations
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 9, 15])
def test_the_interval_of_a_median_covers_it_as_the_binomial_says(n):
    from scipy.stats import binom

    values = [float(i) for i in range(1, n + 1)]
    low, high = rounds.interval(values)
    k = int(low) - 1  # the k-th smallest and largest (from 0)
    coverage = 1 - 2 * binom.cdf(k, n, 0.5) if k < n / 2 else 0.0
    if n >= 5:
        assert coverage >= rounds.INTERVAL_COVERAGE
        # and it is the narrowest such pair: one step in no longer covers enough
        assert 1 - 2 * binom.cdf(k + 1, n, 0.5) < rounds.INTERVAL_COVERAGE
    else:
        assert (low, high) == (min(values), max(values))
    assert high == n + 1 - low


def test_an_entry_median_is_the_median_of_its_round_medians():
    from sidebyside.document import Run
    from sidebyside.config import RunConfig

    run = Run(RunConfig(), "/nonexistent")
    run.document = {"machine": {"peak_gflops": {"cpu": None, "cuda": None}}}
    entry = {"workload": "two_layer", "implementation": "x", "device": "cpu", "dtype": "float32", "size": {"N": 1},
             "status": "ok", "flops_per_step": 1000, "cpu_utilization": None,
             "step_time": {"median": 408e-6, "round_medians": [408e-6], "canary": [350e-6],
                           "samples": [408e-6] * 489}}
    for median in (221e-6, 216e-6):
        run.add_round(entry, {"samples": [median] * 20})
        Run.set_canary(entry, 351e-6)
    timing = entry["step_time"]
    assert timing["round_medians"] == [408e-6, 221e-6, 216e-6] and timing["canary"] == [350e-6, 351e-6, 351e-6]
    assert timing["median"] == pytest.approx(221e-6)  # one vote each: not the pooled steps' 408 µs
    assert float(np.median(timing["samples"])) == pytest.approx(408e-6)
    assert entry["gflops"] == pytest.approx(1000 / 221e-6 / 1e9)
    # A later round that timed no step (it diverged, or failed) is no round: nothing for its canary to fill.
    assert run.add_round(entry, {"samples": [], "reason": "RuntimeError"}) is False
    assert timing["round_medians"] == [408e-6, 221e-6, 216e-6] and timing["canary"] == [350e-6, 351e-6, 351e-6]


# ----------------------------------------------------------------------------
# Files made from a real quick run
# ----------------------------------------------------------------------------


def load(folder):
    return json.loads((folder / "results.json").read_text())


def write(path, document):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def slowed(document, name, factor=2.0):
    """A copy in which `name`'s every timed step (and so its statistics) took `factor` times as long."""
    document = json.loads(json.dumps(document))
    for entry in document["results"]:
        if entry["implementation"] == name and entry["step_time"]:
            timing = entry["step_time"]
            timing["samples"] = [float(f"{x * factor:.4g}") for x in timing["samples"]]
            timing["round_medians"] = [x * factor for x in timing["round_medians"]]
            for key in ("median", "iqr", "min", "max", "mean", "stddev"):
                if timing.get(key) is not None:
                    timing[key] *= factor
    return document


def steadied(document, name):
    """A copy in which `name`'s rounds lie within 2 % of their median: doubled, every round then lies beyond
    every original one, whatever this machine did to the real rounds (they have spanned over 2× here)."""
    document = json.loads(json.dumps(document))
    for entry in document["results"]:
        if entry["implementation"] == name and entry["step_time"]:
            timing = entry["step_time"]
            spread = np.linspace(0.98, 1.02, len(timing["round_medians"]))
            timing["round_medians"] = [timing["median"] * float(x) for x in spread]
            timing["median"] = statistics.median(timing["round_medians"])
    return document


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_the_quick_run_has_rounds_and_canaries_to_compare(quick_run):
    entries = load(quick_run)["results"]
    assert sorted(entry["implementation"] for entry in entries) == ["numpy_manual", "torch_manual"]
    for entry in entries:
        timing = entry["step_time"]
        assert entry["status"] == "ok" and len(timing["round_medians"]) >= compare.MIN_ROUNDS
        assert len(timing["canary"]) == len(timing["round_medians"]) and all(x > 0 for x in timing["canary"])
        assert timing["median"] == statistics.median(timing["round_medians"])


def test_a_run_compared_with_itself_is_not_significant_and_passes(quick_run):
    result = sidebyside("compare", str(quick_run), str(quick_run / "results.json"), "--format", "csv",
                        "--fail-on", "median:5%")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = read_csv(result.stdout)
    assert sorted(row["implementation"] for row in rows) == ["numpy_manual", "torch_manual"]
    for row in rows:
        assert row["verdict"] == "~" and row["significant"] == "False"
        assert float(row["p_value"]) == 1.0 and float(row["change_percent"]) == 0.0
        assert row["in"] == "both" and row["agrees_before"] == row["agrees_after"] == "yes"


def test_a_doubled_torch_manual_fails_the_threshold_and_is_named(quick_run, tmp_path):
    document = steadied(load(quick_run), "torch_manual")
    quick_run = write(tmp_path / "steady" / "results.json", document).parent
    slow = write(tmp_path / "slow.json", slowed(document, "torch_manual"))
    result = sidebyside("compare", str(quick_run), str(slow), "--fail-on", "median:5%", env={"COLUMNS": "80"})
    assert result.returncode == 1, result.stderr
    assert "torch_manual" in result.stdout and "numpy_manual" in result.stdout  # the table comes first
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("compare: torch_manual (two_layer, cpu, float32, 64×1000×100×10): +100.0% (2.00× slower")
    assert line.endswith("over the 5% threshold")
    rows = {row["implementation"]: row for row in
            read_csv(sidebyside("compare", str(quick_run), str(slow), "--format", "csv").stdout)}
    torch_entry = next(entry for entry in document["results"] if entry["implementation"] == "torch_manual")
    medians = torch_entry["step_time"]["round_medians"]
    assert float(rows["torch_manual"]["p_value"]) == pytest.approx(
        exact_two_sided_p(medians, [2 * x for x in medians]), rel=1e-3)  # the CSV keeps 4 digits
    assert float(rows["torch_manual"]["p_value"]) < compare.ALPHA
    assert float(rows["torch_manual"]["canary_change_percent"]) == 0.0  # the same machine: the canary's rounds
    assert float(rows["torch_manual"]["normalized_change_percent"]) == pytest.approx(100.0)
    assert rows["numpy_manual"]["verdict"] == "~"
    # A threshold above the slowdown passes; so does a faster NEW.
    assert sidebyside("compare", str(quick_run), str(slow), "--fail-on", "median:150%").returncode == 0
    assert sidebyside("compare", str(slow), str(quick_run), "--fail-on", "median:5%").returncode == 0


def markdown_table(text):
    """The table lines of a Markdown document: header, separator, rows."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("| Implementation"))
    table = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    return table


def pipes(line):
    """Cell borders: the pipes not escaped with a backslash."""
    return len(re.findall(r"(?<!\\)\|", line))


def test_markdown_is_a_valid_table(quick_run, tmp_path):
    before = load(quick_run)
    numpy_entry = next(entry for entry in before["results"] if entry["implementation"] == "numpy_manual")
    numpy_entry["implementation"] = "odd|name_<b>"  # a pipe and markup must stay inside the cell
    after = slowed(before, "torch_manual")
    appeared = json.loads(json.dumps(after["results"][0]))
    appeared["dtype"] = "float64"
    after["results"].append(appeared)
    base = write(tmp_path / "base.json", before)
    other = write(tmp_path / "other.json", after)
    result = sidebyside("compare", str(base), str(other), "--format", "markdown")
    assert result.returncode == 0, result.stderr
    header, separator, *rows = markdown_table(result.stdout)
    columns = pipes(header) - 1
    assert header.startswith("| Implementation | Before | After | Change | Canary | Normalized | Verdict | p | Agrees |")
    assert re.fullmatch(r"\|( --- \|)+", separator) and separator.count("---") == columns
    assert rows and all(pipes(row) == pipes(header) for row in rows)
    assert any("2.00× slower" in row for row in rows)
    assert "<b>" not in result.stdout and "odd\\|name\\_\\<b\\>" in result.stdout
    assert "\n- only after (appeared): 1\n- " in result.stdout
    assert "- in every row: two\\_layer, cpu, float32, 64×1000×100×10\n" in result.stdout
    assert result.stdout.startswith("### sidebyside compare\n")


def test_terminal_table_fits_80_columns_and_never_cuts_a_name(quick_run, tmp_path):
    from sidebyside import implementations

    document = load(quick_run)
    long_name = max(implementations.names(), key=len)  # keras_tensorflow_xla
    document["results"][0].update(implementation=long_name, dtype="float64")
    document["results"][1]["size"] = {"N": 1024, "D_in": 1000, "H": 1000, "D_out": 10}
    path = write(tmp_path / "named.json", document)
    result = sidebyside("compare", str(path), str(path), env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout
    assert any(long_name in line for line in lines)
    # The fields that differ between rows title a table each (the implementation varies within one).
    titles = [line.strip() for line in lines if line.startswith("float")]
    assert len(titles) == len(set(titles)) >= 2 and any(title.startswith("float64, ") for title in titles)
    assert any(title.endswith(", 1024×1000×1000×10") for title in titles)


def test_cases_in_one_file_only_and_runs_not_ok(quick_run, tmp_path):
    before = load(quick_run)
    after = json.loads(json.dumps(before))
    numpy_entry = next(entry for entry in after["results"] if entry["implementation"] == "numpy_manual")
    torch_entry = next(entry for entry in after["results"] if entry["implementation"] == "torch_manual")
    after["results"].remove(numpy_entry)
    torch_entry.update(status="failed", reason="RuntimeError: simulated", step_time=None)
    extra = json.loads(json.dumps(numpy_entry))
    extra["dtype"] = "float64"
    after["results"].append(extra)
    path = write(tmp_path / "after.json", after)
    result = sidebyside("compare", str(quick_run), str(path), "--fail-on", "median:5%", env={"COLUMNS": "120"})
    assert result.returncode == 0, result.stderr  # a failure is not a slowdown: --strict on the run catches it
    text = result.stdout
    assert "ok → failed" in text and "after: failed: RuntimeError: simulated" in text
    assert "only before (vanished): 1\n  numpy_manual (two_layer, cpu, float32, 64×1000×100×10)" in text
    assert "only after (appeared): 1\n  numpy_manual (two_layer, cpu, float64, 64×1000×100×10)" in text
    rows = read_csv(sidebyside("compare", str(quick_run), str(path), "--format", "csv").stdout)
    where = {(row["implementation"], row["dtype"]): row for row in rows}
    assert where["torch_manual", "float32"]["in"] == "both"
    assert where["torch_manual", "float32"]["change_percent"] == ""
    assert where["numpy_manual", "float32"]["in"] == "before only"
    assert where["numpy_manual", "float64"]["in"] == "after only"


def test_cases_not_run_in_either_file_are_counted_not_listed(quick_run, tmp_path):
    document = load(quick_run)
    for entry in list(document["results"]):
        idle = json.loads(json.dumps(entry))
        idle.update(device="cuda", status="n/a", reason="no CUDA device", step_time=None)
        document["results"].append(idle)
    path = write(tmp_path / "with-cuda.json", document)
    result = sidebyside("compare", str(path), str(path))
    assert result.returncode == 0, result.stderr
    assert "n/a in both files, not in the table: 2 cases (n/a: no CUDA device: 2)" in result.stdout
    assert "cuda" not in result.stdout.split("n/a in both files")[0].split("in every row")[1]
    rows = read_csv(sidebyside("compare", str(path), str(path), "--format", "csv").stdout)
    assert len(rows) == 4  # the CSV keeps them


def test_csv_cells_that_could_be_formulas_are_defused(quick_run, tmp_path):
    document = load(quick_run)
    document["results"][0]["implementation"] = "=HYPERLINK(\"http://example.invalid\")"
    path = write(tmp_path / "formula.json", document)
    result = sidebyside("compare", str(path), str(path), "--format", "csv")
    assert result.returncode == 0, result.stderr
    names = [row["implementation"] for row in read_csv(result.stdout)]
    assert "'=HYPERLINK(\"http://example.invalid\")" in names


def test_pytest_benchmark_json_shows_the_change_but_gives_no_verdict(tmp_path):
    """One pytest process times each benchmark: its calls are steps of one process, not rounds."""
    saved = make_benchmark_json()  # as --benchmark-save-data writes it: every call's seconds in stats.data
    for benchmark in saved["benchmarks"]:
        median = benchmark["stats"]["median"]
        benchmark["stats"]["data"] = [median * (1 + 0.01 * (i % 7 - 3)) for i in range(50)]
    slow = json.loads(json.dumps(saved))
    for benchmark in slow["benchmarks"]:
        if benchmark["extra_info"]["implementation"] == "torch_manual":
            benchmark["stats"]["data"] = [2 * x for x in benchmark["stats"]["data"]]
            benchmark["stats"]["median"] *= 2
    result = sidebyside("compare", str(write(tmp_path / "saved.json", saved)),
                        str(write(tmp_path / "slow.json", slow)), "--format", "csv", "--fail-on", "median:5%")
    assert result.returncode == 0, result.stderr  # no verdict, so no failure: a doubled median is not evidence
    rows = {row["implementation"]: row for row in read_csv(result.stdout)}
    assert float(rows["torch_manual"]["change_percent"]) == pytest.approx(100.0)
    assert all(row["verdict"] == "n/a: no rounds (before)" and row["p_value"] == "" for row in rows.values())


def test_pytest_benchmark_data_is_validated():
    document = make_benchmark_json()
    document["benchmarks"][1]["stats"]["data"] = [1e-4, -1e-4]
    with pytest.raises(Exception) as raised:
        parse_results(json.dumps(document), "bench.json")
    assert "benchmarks[1].stats.data[1]" in str(raised.value)


# ----------------------------------------------------------------------------
# Bad input: one line, exit 2
# ----------------------------------------------------------------------------


def test_bad_files_are_one_line_errors(quick_run, tmp_path):
    good = str(quick_run)
    truncated = tmp_path / "truncated.json"
    truncated.write_text((quick_run / "results.json").read_text()[:500])
    invalid = load(quick_run)
    invalid["results"][0]["step_time"]["median"] = -1
    invalid_path = write(tmp_path / "invalid.json", invalid)
    empty_folder = tmp_path / "empty"
    empty_folder.mkdir()
    cases = [
        ((str(tmp_path / "missing.json"), good), "missing.json: no such file"),
        ((good, str(truncated)), "not valid JSON"),
        ((str(empty_folder), good), "empty: a folder without results.json"),
        ((good, str(invalid_path)), "field results[0].step_time.median: must be a positive finite number"),
    ]
    for arguments, expected in cases:
        line = one_line_error(sidebyside("compare", *arguments))
        assert line.startswith("sidebyside: error: ") and expected in line, line


@pytest.mark.parametrize("threshold", ["median:5", "mean:5%", "median:x%", "median:-5%", "5%", "median:%"])
def test_bad_fail_on_syntax_is_a_usage_error(quick_run, threshold):
    line = one_line_error(sidebyside("compare", str(quick_run), str(quick_run), "--fail-on", threshold))
    assert "is not median:<number>% (for example median:5%)" in line


def test_fail_on_accepts_decimals():
    from sidebyside.report.compare_cli import fail_on

    assert fail_on("median:5%") == 5.0 and fail_on("median:2.5%") == 2.5 and fail_on("median:0%") == 0.0


def test_help_does_not_import_the_heavy_libraries():
    code = ("import sys, sidebyside.cli; sidebyside.cli.build_parser(); "
            "print([m for m in ('scipy', 'pandas', 'rich', 'matplotlib') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    help_text = sidebyside("compare", "--help").stdout
    assert "--fail-on median:N%" in help_text and "--format {terminal,markdown,csv}" in help_text


def test_a_change_counts_only_where_every_round_lies_beyond():
    overlapping = timed_change(1.1, 1.3, [1.0, 1.1, 1.25, 1.05, 1.12], [1.2, 1.3, 1.35, 1.28, 1.33])
    assert not overlapping.significant and overlapping.verdict == "~" and not overlapping.slower_than(5)
    separated = timed_change(1.1, 1.3, [1.0, 1.1, 1.15, 1.05, 1.12], [1.2, 1.3, 1.35, 1.28, 1.33])
    assert separated.significant and separated.verdict == "1.18× slower" and separated.slower_than(5)
