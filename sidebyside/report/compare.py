"""Two result files compared case by case: what `sidebyside compare BASE NEW` computes.

A case is (workload, implementation, device, dtype, size). For every case in
both files, `case_change` gives the change of the median step time and a
verdict from the timed steps themselves (`step_time.samples`): the
two-sided Mann–Whitney U test of scipy at ALPHA, and, where both runs had
several rounds, rounds that do not overlap (`rounds_overlap`). A change
that is not significant reads "~" ("~ (rounds overlap)" where only the
rounds say so), as pyperf's compare_to writes it; a significant
one "2.00× slower" or "1.25× faster". Where a side has no samples, or too few
for the test ever to reach ALPHA, the verdict says so ("n/a: no samples
(before)"); where a side did not run cleanly (status not ok), the statuses
stand in place of the change ("ok → failed") and the verdict says why. The HTML report of two files uses the same
`case_change` for its change column.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sidebyside.report import formatting as fmt
from sidebyside.report.merge import merge, value
from sidebyside.results import ResultsError, load_results, one_line

ALPHA = 0.05
# Below 4 steps a side, no arrangement of the samples gives a two-sided p under 0.05
# (n = 3 and 3: at least 2 / C(6, 3) = 0.1); 5 leaves some margin.
MIN_SAMPLES = 5
CASE = ("workload", "implementation", "device", "dtype", "size_label")
NOT_SIGNIFICANT = "~"
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class Change:
    """How one case changed from before to after."""

    fraction: float | None  # (after − before) / before of the median step times
    p_value: float | None  # Mann–Whitney U, two-sided; None where not tested
    significant: bool  # p < ALPHA (and the medians differ)
    verdict: str  # "~", "2.00× slower", "1.25× faster", "n/a: ...", or a status

    @property
    def percent(self):
        return None if self.fraction is None else 100 * self.fraction

    def slower_than(self, threshold_percent):
        """A significant slowdown of more than `threshold_percent` of the median."""
        return self.significant and self.fraction is not None and self.percent > threshold_percent


def significance(before, after):
    """(p value, None), or (None, why the test cannot be made) for two lists of step times."""
    for side, samples in (("before", before), ("after", after)):
        if not samples:
            return None, f"n/a: no samples ({side})"
        if len(samples) < MIN_SAMPLES:
            return None, f"n/a: too few samples ({side}: {len(samples)}, {MIN_SAMPLES} needed)"
    from scipy.stats import mannwhitneyu  # imported here: a second at start-up, and only this needs it

    p_value = float(mannwhitneyu(before, after, alternative="two-sided").pvalue)
    # Every step time equal on both sides: no difference at all (scipy's statistic is then undefined).
    return (1.0 if p_value != p_value else p_value), None


def rounds_overlap(rounds_before, rounds_after):
    """Whether two runs' round medians overlap; None where either has fewer than two rounds.

    The steps of one run are not independent draws between runs: each round is
    a fresh process, and processes differ (placement, frequency, neighbours)
    more than steps within one do. Two runs of the same code read as "significant"
    by the steps alone (measured: 19 of 19 cases of two --quick runs); the rounds
    carry that between-process noise, so a change counts only where every round
    of one run lies beyond every round of the other, the rule sidebyside.ranking
    uses for a tie.
    """
    if len(rounds_before or ()) < 2 or len(rounds_after or ()) < 2:
        return None
    return not (max(rounds_before) < min(rounds_after) or max(rounds_after) < min(rounds_before))


def timed_change(median_before, median_after, samples_before, samples_after, rounds_before=(), rounds_after=()):
    """The Change of two timed runs: their medians' ratio, the test on their samples, and their rounds."""
    fraction = (median_after - median_before) / median_before
    p_value, untested = significance(samples_before, samples_after)
    if untested:
        return Change(fraction, None, False, untested)
    overlap = rounds_overlap(rounds_before, rounds_after)
    significant = p_value < ALPHA and median_after != median_before and not overlap
    if not significant:
        verdict = NOT_SIGNIFICANT + (" (rounds overlap)" if overlap and p_value < ALPHA else "")
    elif median_after > median_before:
        verdict = f"{fmt.times(median_after / median_before)} slower"
    else:
        verdict = f"{fmt.times(median_before / median_after)} faster"
    return Change(fraction, p_value, significant, verdict)


def status_change(status_before, status_after):
    """What the change column shows where a side did not run cleanly: "ok → failed"."""
    return f"{status_before} → {status_after}"


def case_change(before, after):
    """The Change from row `before` to row `after` (mappings with status, reason, median, samples)."""
    statuses = (value(before["status"]), value(after["status"]))
    if statuses != ("ok", "ok"):
        bad = before if statuses[0] != "ok" else after
        side = "before" if bad is before else "after"
        detail = fmt.status_text(bad["status"], bad["reason"], bad.get("diverged_at"))
        return Change(None, None, False, f"{side}: {one_line(detail, 120)}")
    medians = (value(before["median"]), value(after["median"]))
    if None in medians:
        side = "before" if medians[0] is None else "after"
        return Change(None, None, False, f"n/a: not timed ({side})")
    rounds = [value(row.get("round_medians")) if hasattr(row, "get") else None for row in (before, after)]
    return timed_change(*medians, value(before["samples"]) or [], value(after["samples"]) or [],
                        rounds[0] or (), rounds[1] or ())


# ----------------------------------------------------------------------------
# Two files
# ----------------------------------------------------------------------------


def resolve(path):
    """The result file a command-line argument names: the file itself, or a run folder's results.json."""
    path = Path(path)
    if path.is_dir():
        inside = path / RESULTS_FILE
        if not inside.is_file():
            raise ResultsError(os.fspath(path), f"a folder without {RESULTS_FILE}")
        return inside
    return path


@dataclass
class Comparison:
    """Every case of two result files: those in both (`frame`), and those in one only."""

    before: dict  # the normalized documents
    after: dict
    frame: pd.DataFrame  # one row per case in both files, columns ROW_COLUMNS
    appeared: list  # cases (tuples of CASE) only in `after`
    vanished: list  # cases only in `before`

    def slower_than(self, threshold_percent):
        """The rows whose significant slowdown exceeds the threshold."""
        return self.frame[[change.slower_than(threshold_percent) for change in self.frame["change"]]]


ROW_COLUMNS = CASE + ("status_before", "status_after", "median_before", "median_after",
                      "samples_before", "samples_after", "agrees_before", "agrees_after", "change")


def by_case(frame):
    """{case: row} for one file's rows; a case written twice keeps its first entry."""
    cases = {}
    for _, row in frame.iterrows():
        cases.setdefault(tuple(row[column] for column in CASE), row)
    return cases


def agreement(row):
    """Whether the run agrees with the reference: "yes", "no", or "n/a" where not judged."""
    if row["status"] == "disagrees":
        return "no"
    agrees = value(row["agrees"])
    return "n/a" if agrees is None else "yes" if agrees else "no"


def compare_documents(before, after):
    """The Comparison of two normalized documents (sidebyside.results.load_results)."""
    collection = merge([before, after])
    label_before, label_after = collection.labels
    frame = collection.frame
    cases_before = by_case(frame[frame["machine"] == label_before])
    cases_after = by_case(frame[frame["machine"] == label_after])
    rows = []
    for case, old in cases_before.items():
        new = cases_after.get(case)
        if new is None:
            continue
        samples = [len(value(row["samples"]) or []) for row in (old, new)]
        rows.append(dict(zip(CASE, case)) | {
            "status_before": old["status"], "status_after": new["status"],
            "median_before": value(old["median"]), "median_after": value(new["median"]),
            "samples_before": samples[0], "samples_after": samples[1],
            "agrees_before": agreement(old), "agrees_after": agreement(new),
            "change": case_change(old, new),
        })
    return Comparison(
        before, after, pd.DataFrame(rows, columns=list(ROW_COLUMNS)),
        appeared=[case for case in cases_after if case not in cases_before],
        vanished=[case for case in cases_before if case not in cases_after],
    )


def compare_files(base, new):
    """The Comparison of two result files or run folders; ResultsError (one line) for a bad one."""
    return compare_documents(load_results(resolve(base)), load_results(resolve(new)))


def case_name(case):
    """"torch_manual (two_layer, cpu, float32, 64×1000×100×10)"."""
    fields = dict(zip(CASE, case))
    rest = ", ".join(one_line(fields[key], 80) for key in CASE if key != "implementation")
    return f"{one_line(fields['implementation'], 200)} ({rest})"


def change_text(change, status_before, status_after):
    """The change column: "+3.1%", or the statuses where a side did not run cleanly."""
    if value(status_before) != "ok" or value(status_after) != "ok":
        return status_change(value(status_before), value(status_after))
    return fmt.MISSING if change.percent is None else f"{change.percent:+.1f}%"


def p_text(change):
    return fmt.MISSING if change.p_value is None else f"{change.p_value:.2g}"
