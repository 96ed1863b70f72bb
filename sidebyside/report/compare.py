"""Two result files compared case by case: what `sidebyside compare BASE NEW` computes.

A case is (workload, implementation, device, dtype, size). For every case in
both files, `case_change` gives the change of the median step time and a
verdict made of rounds, never of steps (sidebyside/rounds.py): a change
counts only where every round of one run lies beyond every round of the
other and the medians differ by more than the noise margin, the rule the
ranking uses for a tie; its p value is the exact Mann–Whitney U test on the
round values, so no p is smaller than the rounds can support. A change
that is not significant reads "~", as pyperf's compare_to writes it; a
significant one "2.00× slower" or "1.25× faster".

Each round carries the drift canary timed beside it (sidebyside/canary.py),
and the rounds divided by their canaries are the "normalized" ones. Where
the canary itself moved between the two runs by more than MACHINE_MOVED with
its rounds apart (the machine changed speed: another minute, another
runner), the verdict says so and is decided on the normalized rounds alone:
"machine 1.80× slower in after: normalized +0.4%, ~". Otherwise a change
must show in both the rounds and the normalized rounds: the canary's own
process-to-process noise (a few percent) then neither makes nor hides one. Where a side has too few rounds the
verdict says so ("n/a: too few rounds (before: 1, 4 needed)"); where a side
did not run cleanly (status not ok), the statuses stand in place of the
change ("ok → failed") and the verdict says why. The HTML report of two
files or two environments uses the same `case_change` for its change column.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sidebyside import rounds as round_stats
from sidebyside.report import formatting as fmt
from sidebyside.report.merge import merge, value
from sidebyside.results import ResultsError, by_environment, load_results, one_line

ALPHA = round_stats.ALPHA
# Fewer rounds than this a side and no arrangement of them gives a two-sided p under ALPHA
# (3 and 3: at least 2 / C(6, 3) = 0.1; 4 and 4: 2 / C(8, 4) = 0.029).
MIN_ROUNDS = 4
CASE = ("workload", "implementation", "device", "dtype", "size_label")
# Statuses whose step time compares: a run that finished ("unchecked": pytest-benchmark's, its agreement
# never judged, is timed all the same).
TIMED = ("ok", "unchecked")
NOT_SIGNIFICANT = "~"
RESULTS_FILE = "results.json"


@dataclass(frozen=True)
class Change:
    """How one case changed from before to after."""

    fraction: float | None  # (after − before) / before of the median step times
    p_value: float | None  # exact Mann–Whitney U on the deciding round values, two-sided; None where not tested
    significant: bool  # the deciding rounds are apart (sidebyside.rounds.apart)
    verdict: str  # "~", "2.00× slower", "1.25× faster", "machine ... : ...", "n/a: ...", or a status
    canary: float | None = None  # the change of the canary's median: how much the machine itself moved
    normalized: float | None = None  # the change of the round medians over their canaries
    machine_moved: bool = False  # the canary's rounds are apart: decided on `normalized`

    @property
    def deciding(self):
        """The change the verdict was decided on: normalized where the machine moved, else the raw one."""
        return self.normalized if self.machine_moved else self.fraction

    @property
    def percent(self):
        return None if self.fraction is None else 100 * self.fraction

    def slower_than(self, threshold_percent):
        """A significant slowdown of more than `threshold_percent` (of the deciding change)."""
        return self.significant and self.deciding is not None and 100 * self.deciding > threshold_percent


def speed_text(fraction):
    """"2.00× slower" / "1.25× faster" for a change of the median by `fraction`."""
    return f"{fmt.times(1 + fraction)} slower" if fraction > 0 else f"{fmt.times(1 / (1 + fraction))} faster"


def change_of(before, after):
    """(after − before) / before of two sets' medians, or None."""
    before, after = round_stats.median(before), round_stats.median(after)
    return None if not before or after is None else (after - before) / before


def timed_change(median_before, median_after, rounds_before, rounds_after, canary_before=None, canary_after=None):
    """The Change of two timed runs from their round medians and their rounds' canaries."""
    fraction = (median_after - median_before) / median_before
    rounds_before, rounds_after = round_stats.usable(rounds_before) or [], round_stats.usable(rounds_after) or []
    for side, values in (("before", rounds_before), ("after", rounds_after)):
        if not values:  # pytest-benchmark JSON: one process, no rounds
            return Change(fraction, None, False, f"n/a: no rounds ({side})")
        if len(values) < MIN_ROUNDS:
            return Change(fraction, None, False, f"n/a: too few rounds ({side}: {len(values)}, {MIN_ROUNDS} needed)")
    normalized = [round_stats.normalized(r, c) for r, c in
                  ((rounds_before, canary_before), (rounds_after, canary_after))]
    canary_change = normalized_change = None
    moved = False
    deciding = (rounds_before, rounds_after)
    confirmed = True  # the normalized rounds agree, where there are any
    if None not in normalized:
        canaries = [round_stats.usable(c) for c in (canary_before, canary_after)]
        canary_change, normalized_change = change_of(*canaries), change_of(*normalized)
        moved = abs(canary_change) > round_stats.MACHINE_MOVED and round_stats.apart(*canaries)
        if moved:
            deciding = tuple(normalized)
        else:
            confirmed = round_stats.apart(*normalized) and (normalized_change > 0) == (fraction > 0)
    p_value = round_stats.p_value(*deciding)
    significant = p_value < ALPHA and round_stats.apart(*deciding) and confirmed
    decided = normalized_change if moved else fraction
    verdict = speed_text(decided) if significant else NOT_SIGNIFICANT
    if moved:
        verdict = (f"machine {speed_text(canary_change)} in after: normalized {100 * normalized_change:+.1f}%, "
                   f"{verdict}")
    return Change(fraction, p_value, significant, verdict, canary_change, normalized_change, moved)


def status_change(status_before, status_after):
    """What the change column shows where a side did not run cleanly: "ok → failed"."""
    return f"{status_before} → {status_after}"


def case_change(before, after):
    """The Change from row `before` to row `after` (mappings with status, reason, median, samples)."""
    statuses = (value(before["status"]), value(after["status"]))
    if not all(status in TIMED for status in statuses):
        bad = before if statuses[0] not in TIMED else after
        side = "before" if bad is before else "after"
        detail = fmt.status_text(bad["status"], bad["reason"], bad.get("diverged_at"))
        return Change(None, None, False, f"{side}: {one_line(detail, 120)}")
    medians = (value(before["median"]), value(after["median"]))
    if None in medians:
        side = "before" if medians[0] is None else "after"
        return Change(None, None, False, f"n/a: not timed ({side})")
    rounds, canaries = ([value(row.get(key)) if hasattr(row, "get") else None for row in (before, after)]
                        for key in ("round_medians", "canary"))
    return timed_change(*medians, rounds[0] or (), rounds[1] or (), canaries[0], canaries[1])


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
                      "rounds_before", "rounds_after", "agrees_before", "agrees_after", "change")


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
        counts = [len(value(row["round_medians"]) or []) for row in (old, new)]
        rows.append(dict(zip(CASE, case)) | {
            "status_before": old["status"], "status_after": new["status"],
            "median_before": value(old["median"]), "median_after": value(new["median"]),
            "rounds_before": counts[0], "rounds_after": counts[1],
            "agrees_before": agreement(old), "agrees_after": agreement(new),
            "change": case_change(old, new),
        })
    return Comparison(
        before, after, pd.DataFrame(rows, columns=list(ROW_COLUMNS)),
        appeared=[case for case in cases_after if case not in cases_before],
        vanished=[case for case in cases_before if case not in cases_after],
    )


def compare_files(base, new=None, between=None):
    """The Comparison of two result files or run folders, or of two environments of one run (`new` None).

    `between`: the two environments' names (default: the run's first two).
    ResultsError (one line) for a bad file, or a file that does not hold what is asked.
    """
    if new is None:
        source = resolve(base)
        parts = {part["machine"]["environment"]: part for part in by_environment(load_results(source))
                 if "environment" in part["machine"]}
        if len(parts) < 2:
            raise ResultsError(os.fspath(source), "holds no two environments (sidebyside run --env NAME=PYTHON, "
                                                  "twice); to compare two runs, give two files")
        names = list(between or list(parts)[:2])
        unknown = [name for name in names if name not in parts]
        if unknown:
            raise ResultsError(os.fspath(source), f"no environment {unknown[0]!r}; it holds {', '.join(parts)}")
        return compare_documents(parts[names[0]], parts[names[1]])
    documents = []
    for path in (base, new):
        source = resolve(path)
        parts = by_environment(load_results(source))
        if len(parts) > 1:
            names = ", ".join(part["machine"]["environment"] for part in parts)
            raise ResultsError(os.fspath(source), f"holds several environments ({names}): compare them with "
                                                  f"`sidebyside compare {path}`")
        documents += parts
    return compare_documents(*documents)


def case_name(case):
    """"torch_manual (two_layer, cpu, float32, 64×1000×100×10)"."""
    fields = dict(zip(CASE, case))
    rest = ", ".join(one_line(fields[key], 80) for key in CASE if key != "implementation")
    return f"{one_line(fields['implementation'], 200)} ({rest})"


def change_text(change, status_before, status_after):
    """The change column: "+3.1%", or the statuses where a side did not run cleanly."""
    if value(status_before) not in TIMED or value(status_after) not in TIMED:
        return status_change(value(status_before), value(status_after))
    return fmt.MISSING if change.percent is None else f"{change.percent:+.1f}%"


def p_text(change):
    return fmt.MISSING if change.p_value is None else f"{change.p_value:.2g}"
