"""The report's tables, built with pandas.

Each table keeps two DataFrames with the same rows: `data`, the raw values
written to CSV (seconds as seconds, bytes as bytes), and `display`, the same
rows formatted for people, which the HTML and Markdown show. A table can be
faceted by machine: one HTML table per machine, one CSV for all.
"""

import json
import math
from dataclasses import dataclass, field

import pandas as pd

from sidebyside import ranking, rounds
from sidebyside.peak import UNSOUND, beats
from sidebyside.report import compare
from sidebyside.report import formatting as fmt
from sidebyside.report.merge import value

DEVICE_ORDER = {"cpu": 0, "cuda": 1}


@dataclass
class Table:
    name: str  # CSV file stem and HTML id
    title: str
    data: pd.DataFrame  # raw values, for CSV
    display: pd.DataFrame  # formatted strings, same rows
    classes: list = field(default_factory=list)  # one CSS class string per row
    facet: str | None = None  # display column that splits the HTML into one table per value
    note: str = ""

    def parts(self):
        """[(heading or None, columns, [(css class, cells)])] for the templates."""
        rows = list(zip(self.classes or [""] * len(self.display), self.display.itertuples(index=False)))
        columns = list(self.display.columns)
        if not self.facet or self.facet not in columns:
            return [(None, columns, [(css, list(cells)) for css, cells in rows])]
        position = columns.index(self.facet)
        kept = columns[:position] + columns[position + 1 :]
        parts, order = {}, []
        for css, cells in rows:
            cells = list(cells)
            heading = cells[position]
            if heading not in parts:
                parts[heading] = []
                order.append(heading)
            parts[heading].append((css, cells[:position] + cells[position + 1 :]))
        return [(heading, kept, parts[heading]) for heading in order]

    @property
    def empty(self):
        return self.display.empty


def ordered(frame, labels):
    """Rows sorted by machine, workload, device, size, dtype; ok rows fastest first."""
    if frame.empty:
        return frame
    keys = pd.DataFrame(
        {
            "machine": frame["machine"].map(lambda label: labels.index(label) if label in labels else len(labels)),
            "device": frame["device"].map(lambda device: (DEVICE_ORDER.get(device, 2), device)),
            "flops": frame["flops"].map(lambda x: value(x) or 0),
            "not_ok": frame["status"] != "ok",
            "median": frame["median"].map(lambda x: value(x) if value(x) is not None else float("inf")),
        },
        index=frame.index,
    )
    frame = frame.assign(**{f"_{key}": column for key, column in keys.items()})
    frame = frame.sort_values(
        ["_machine", "workload", "_device", "_flops", "size_label", "dtype", "_not_ok", "_median", "implementation"],
        kind="stable",
    )
    return frame.drop(columns=[f"_{key}" for key in keys])


GROUP = ["machine", "workload", "device", "size_label", "dtype"]


def ranking_entry(row):
    """A frame row as the mapping sidebyside.ranking reads (plain Python values, no NaN)."""
    return {
        "status": value(row["status"]), "agrees": value(row["agrees"]),
        "threads": value(row["threads"]), "cpu_utilization": value(row["cpu_utilization"]),
        "step_time": {"median": value(row["median"]), "iqr": value(row["iqr"]),
                      "round_medians": value(row["round_medians"])},
        "extra": {"runnable_threads": value(row["runnable_threads"]),
                  "threads_read_back": value(row["threads_read_back"])},
    }


def rows_separated(a, b):
    """sidebyside.ranking.separated for two frame rows: whether their timing rounds tell them apart."""
    return ranking.separated(ranking_entry(a), ranking_entry(b))


def versus(ratio, apart):
    """A ratio of two step times, "1.50×"; where the two are not separated (`apart` false), the tie after
    it: "1.02×, tie (within noise)"."""
    return fmt.times(ratio) if apart else f"{fmt.times(ratio)}, {ranking.TIE}"


def hardware(device):
    """What a result on `device` is a result about: "CPU", "GPU"."""
    return {"cpu": "CPU", "cuda": "GPU"}.get(device, str(device))


def with_group_ratios(frame):
    """Add each row's rank in its group (ties within noise share one), its ratio to the fastest, and
    whether it is separated from the fastest.

    Only rankable rows (ok, agreeing with the reference, timed) get a rank and
    a ratio; the rule is sidebyside.ranking's, the same as the console's.
    """
    frame = frame.copy()
    places, fastest, apart = {}, {}, {}
    for key, group in frame.groupby(GROUP, sort=False):
        entries = {index: ranking_entry(row) for index, row in group.iterrows()}
        rankable = {index: entry for index, entry in entries.items() if ranking.rankable(entry)}
        by_identity = {id(entry): index for index, entry in rankable.items()}
        ranked = ranking.rank(list(rankable.values()))
        for item in ranked:
            places[by_identity[id(item.entry)]] = item
            if item is not ranked[0]:
                apart[by_identity[id(item.entry)]] = ranking.separated(item.entry, ranked[0].entry)
        if ranked:
            fastest[key] = ranking.median(ranked[0].entry)
    frame["rank"] = pd.array([places[index].rank if index in places else None for index in frame.index],
                             dtype="Int64")  # integers with gaps, so the CSV says 1, not 1.0
    frame["tied"] = [places[index].tied if index in places else None for index in frame.index]
    frame["separated"] = [apart.get(index) for index in frame.index]
    frame["fastest_s"] = [fastest.get(tuple(row)) for row in frame[GROUP].itertuples(index=False)]
    frame["ratio"] = [
        None if index not in places or value(f) is None or value(f) == 0 else value(m) / value(f)
        for index, m, f in zip(frame.index, frame["median"], frame["fastest_s"])
    ]
    return frame


def group_starts(frame):
    """CSS classes: "group-start" where a new comparison group begins, plus row status."""
    classes, previous = [], None
    for row in frame.itertuples(index=False):
        key = tuple(getattr(row, column) for column in GROUP)
        css = []
        if key != previous:
            css.append("group-start")
        previous = key
        if row.status != "ok":
            css.append("status-" + {"n/a": "na"}.get(row.status, row.status))
        if row.unstable:
            css.append("unstable")
        classes.append(" ".join(css))
    return classes


TIMED = ("ok", "disagrees", "unchecked")  # statuses whose step time is shown, ranked ("ok") or not


def step_cell(median, unstable):
    text = fmt.seconds(median)
    return text + " ±" if unstable and text != fmt.MISSING else text


def notes(row):
    parts = []
    if row["status"] != "ok":
        parts.append(fmt.status_text(row["status"], row["reason"], row["diverged_at"]))
    if row["unstable"] and value(row["iqr"]) is not None and value(row["median"]):
        parts.append(f"unstable: IQR {100 * row['iqr'] / row['median']:.0f}% of median")
    elif row["unstable"]:
        parts.append("unstable")
    over, off = ranking.oversubscribed(ranking_entry(row)), ranking.pools_off(ranking_entry(row))
    if over:
        parts.append(f"oversubscribed: {over}")
    if off:
        parts.append(f"thread pools not as asked: {', '.join(off)}")
    return "; ".join(parts)


def over_peak(fraction):
    """Whether a share of peak (a frame's cell) is above 100 %: the step beat the measured peak (peak.beats)."""
    return beats(value(fraction))


def cores_cell(used, threads):
    """Cores kept busy against the threads asked for: "1.96 of 2"."""
    used, threads = value(used), value(threads)
    if used is None:
        return fmt.MISSING if threads is None else f"{fmt.MISSING} of {threads}"
    return f"{used:.2f}" + (f" of {threads}" if threads is not None else "")


def peak_cell(fraction):
    """A share of peak; above 100 % no number but UNSOUND, since no step can beat a sound peak."""
    return UNSOUND if over_peak(fraction) else fmt.percent(fraction)


def rounds_cell(round_medians):
    """The range of the rounds' medians, "412–430 µs (3 rounds)", where the file recorded them."""
    rounds = value(round_medians)
    if not isinstance(rounds, (list, tuple)) or not rounds:
        return fmt.MISSING
    low, high = min(rounds), max(rounds)
    span = fmt.seconds(low) if low == high else f"{fmt.seconds(low)} – {fmt.seconds(high)}"
    return f"{span} ({len(rounds)} round{'s' if len(rounds) != 1 else ''})"


def rank_cell(rank, tied):
    rank = value(rank)
    if rank is None:
        return fmt.MISSING
    return f"{int(rank)} (tie)" if value(tied) else str(int(rank))


def first_step_cell(first, median):
    text = fmt.seconds(first)
    first, median = value(first), value(median)
    if first is not None and median:
        text += f" ({fmt.times(first / median)})"
    return text


def multi(collection, column):
    """Whether a column has more than one value (otherwise it is left out of the display)."""
    return collection.frame[column].nunique(dropna=False) > 1


# ----------------------------------------------------------------------------
# The ranked workloads' tables (build.py passes their rows only)
# ----------------------------------------------------------------------------


def summary_data(frame, lines_of_code):
    loc = [lines_of_code.get(w, {}).get(i) for w, i in zip(frame["workload"], frame["implementation"])]
    return pd.DataFrame(
        {
            "machine": frame["machine"],
            "workload": frame["workload"],
            "device": frame["device"],
            "size": frame["size_label"],
            "dtype": frame["dtype"],
            "implementation": frame["implementation"],
            "framework": frame["framework"],
            "backend": frame["backend"],
            "status": frame["status"],
            "detail": [fmt.status_text(s, r, d) if s != "ok" else "" for s, r, d in
                       zip(frame["status"], frame["reason"], frame["diverged_at"])],
            "median_step_s": frame["median"],
            "rank": frame["rank"],
            "tied": frame["tied"],
            "ratio_to_fastest": frame["ratio"],
            "separated_from_fastest": frame["separated"],
            "threads": frame["threads"],
            "cpu_utilization": frame["cpu_utilization"],
            "gflops": frame["gflops"],
            "peak_fraction": frame["peak_fraction"],
            "beats_peak": [over_peak(x) for x in frame["peak_fraction"]],  # then peak_fraction is no share
            "first_step_s": frame["first_step_s"],
            "peak_memory_bytes": frame["peak_memory_bytes"],
            "agreement": frame["agreement"],
            "agreement_tolerance": frame["agreement_tolerance"],
            "agrees": frame["agrees"],
            "unstable": frame["unstable"],
            "lines_of_code": loc,
        }
    )


def collapse_unavailable(frame):
    """One row for a group whose runs are all n/a for the same reason ("all 6: ...")."""
    keep, names = [], {}
    for _, group in frame.groupby(GROUP, sort=False):
        reasons = group["reason"].map(value)
        if len(group) > 1 and (group["status"] == "n/a").all() and reasons.nunique(dropna=False) == 1:
            keep.append(group.index[0])
            names[group.index[0]] = f"all {len(group)}: " + ", ".join(group["implementation"])
        else:
            keep.extend(group.index)
    frame = frame.loc[keep].copy()
    for index, name in names.items():
        frame.loc[index, "implementation"] = name
    return frame


def summary_table(collection, lines_of_code):
    """The top table. Its CSV keeps every run; the page folds groups that are all n/a for one reason."""
    frame = with_group_ratios(ordered(collection.frame, collection.labels))
    data = summary_data(frame, lines_of_code)
    frame = collapse_unavailable(frame)
    display = pd.DataFrame(
        {
            "Machine": frame["machine"],
            "Workload": frame["workload"],
            "Device": frame["device"],
            "Size": frame["size_label"],
            "Dtype": frame["dtype"],
            "Implementation": frame["implementation"],
            # A disagreeing or unchecked run was timed: its time is shown, but it is never ranked.
            "Step (median)": [step_cell(m, u) if s in TIMED and value(m) is not None else s
                              for m, u, s in zip(frame["median"], frame["unstable"], frame["status"])],
            "Rank": [rank_cell(r, t) for r, t in zip(frame["rank"], frame["tied"])],
            "vs fastest": [ratio_cell(r, s, k, t, a) for r, s, k, t, a in
                           zip(frame["ratio"], frame["status"], frame["rank"], frame["tied"], frame["separated"])],
            # GFLOP/s and the first step are in the timing table, lines of code in the code section's:
            # this table stays narrow enough for a laptop's screen.
            "Share of peak": [peak_cell(x) for x in frame["peak_fraction"]],
            "Peak memory": [fmt.memory(x) for x in frame["peak_memory_bytes"]],
            "Agreement": [fmt.agreement_text(a, g, t) if h or value(a) is not None else "n/a"
                          for a, g, t, h in zip(frame["agrees"], frame["agreement"],
                                                frame["agreement_tolerance"], frame["has_losses"])],
            "Notes": [notes(row) for _, row in frame.iterrows()],
        }
    )
    if frame["workload"].nunique() <= 1:
        display = display.drop(columns=["Workload"])
    return Table(
        "summary", "Summary: fastest per device, size and dtype", data, display, group_starts(frame),
        facet="Machine",
        note="Within each group (device, size, dtype) rows run fastest first; “vs fastest” is the ratio of "
             "median step times, with the tie after it where the row is not separated from the fastest. "
             "Runs share a rank, a “" + ranking.TIE + "”, unless every round median of "
             f"the faster lies below every round median of the slower and the medians differ by over "
             f"{ranking.NOISE_MARGIN:.0%} (without rounds: their IQRs do not overlap). Runs that disagree with "
             "the float64 reference are shown but never ranked. ± marks an unstable timing (IQR over 10% of "
             "the median). GFLOP/s and the first step are in the timing table, lines of code in the code "
             "section. " + MEMORY_NOTE,
    )


# The memory column's one meaning (sidebyside/timing.py case_memory, job_results.py for the jobs).
MEMORY_NOTE = ("Peak memory is the most a case adds above what its process held at the case's start: resident "
               "memory (the kernel's high-water mark, reset as the case starts), on a GPU the framework's allocated "
               "device memory. The cases of an implementation share a process, the largest first, so a reset that "
               "did nothing would show. A data-parallel job counts it in each of its processes, above that "
               "process's memory after its imports, and sums them. n/a where the peak cannot be reset (JAX on a "
               "GPU).")


def ratio_cell(ratio, status, rank=None, tied=None, apart=True):
    """"fastest" for a lone first rank, the tie for a shared one, else the ratio (the tie after it where
    the row is not separated from the fastest); never for unranked rows."""
    if status in ("disagrees", "unchecked"):
        return "not ranked"
    ratio, rank = value(ratio), value(rank)
    if status != "ok" or ratio is None:
        return fmt.MISSING
    if rank == 1 and value(tied):
        return ranking.TIE if ratio == 1.0 else versus(ratio, False)
    if rank == 1 or (rank is None and ratio == 1.0):
        return "fastest"
    return versus(ratio, value(apart) is not False)


# ----------------------------------------------------------------------------
# Idiom vs ceiling: each speed-written variant beside its idiomatic sibling
# ----------------------------------------------------------------------------

NOT_AVAILABLE = "n/a"


def registry():
    """This checkout's registry of implementations, or {} where it cannot be read.

    The result files name implementations only; what the report says of
    them beyond the file (tuned pairs, why a first step is slow) is this
    checkout's registry's.
    """
    try:
        from sidebyside import implementations

        return implementations.REGISTRY
    except Exception:  # absent or half-written: nothing said from it
        return {}


def tuned_pairs():
    """{tuned name: (idiomatic sibling, what the tuned one changes)}, from the registry's `tuned_from` and `tuning`."""
    return {name: (spec.tuned_from, getattr(spec, "tuning", "") or "")
            for name, spec in registry().items() if getattr(spec, "tuned_from", None)}


def comparable_median(row):
    """The median step time of a row that may be compared (sidebyside.ranking's rule), else None."""
    if row is None or not ranking.rankable(ranking_entry(row)):
        return None
    return value(row["median"])


def limit_ratio(row):
    """Step time over the compute limit (FLOPs / measured peak): 1 / share of peak."""
    fraction = value(row["peak_fraction"]) if row is not None else None
    return 1.0 / fraction if fraction else None


def limit_cell(row):
    """× limit of a comparable row: the ratio, UNSOUND where the step beat the peak (never below 1×), else n/a."""
    if comparable_median(row) is None or limit_ratio(row) is None:
        return NOT_AVAILABLE
    return UNSOUND if over_peak(row["peak_fraction"]) else fmt.times(limit_ratio(row))


def tuned_step_cell(row):
    """The step time of a row beside its pair, or why there is none to compare."""
    if row is None:
        return NOT_AVAILABLE
    if comparable_median(row) is not None:
        return step_cell(row["median"], row["unstable"])
    if row["status"] == "ok" and value(row["agrees"]) is not False:
        return NOT_AVAILABLE  # ran, but no timing
    status = "disagrees" if row["status"] == "ok" else row["status"]
    return fmt.status_text(status, row["reason"], row["diverged_at"])


def tuned_rows(collection, pairs):
    """One record per tuned row in the files: the row, its sibling's row in the same group (or None)."""
    frame = ordered(collection.frame, collection.labels)
    order = {name: index for index, name in enumerate(pairs)}
    records = []
    for _, group in frame.groupby(GROUP, sort=False):
        by_name = {}
        for _, row in group.iterrows():
            by_name.setdefault(row["implementation"], row)  # the first (fastest ok) row of a name
        for name in sorted((n for n in by_name if n in pairs), key=order.get):
            idiom, tuning = pairs[name]
            records.append((by_name[name], idiom, by_name.get(idiom), tuning))
    return records


def speedup(tuned, idiom):
    """Idiomatic step time over tuned step time, where both may be compared; else None."""
    mine, theirs = comparable_median(tuned), comparable_median(idiom)
    return theirs / mine if mine and theirs is not None else None


def speedup_cell(tuned, idiom):
    """The ratio, with the tie where the rounds do not separate the pair; a separated slower tuned variant says so."""
    ratio = speedup(tuned, idiom)
    if ratio is None:
        return NOT_AVAILABLE
    apart = rows_separated(tuned, idiom)
    if apart and ratio < 1:
        return f"{fmt.times(ratio)}: tuned {fmt.times(1 / ratio)} slower on this {hardware(tuned['device'])}"
    return versus(ratio, apart)


def tuned_table(collection, pairs=None):
    """Idiom vs ceiling: each tuned variant beside its idiomatic sibling, with the ratio of step times.

    None when the files hold no tuned variant. A sibling that is missing from
    the group, did not run, or may not be compared (n/a, failed, diverged,
    disagreeing) makes the ratio "n/a". A pair that sidebyside.ranking does
    not separate is a tie: its cell reads the ratio and "tie (within noise)",
    and its CSV row `separated` False beside the raw ratio.
    """
    pairs = tuned_pairs() if pairs is None else pairs
    records = tuned_rows(collection, pairs)
    if not records:
        return None
    tuned = [record[0] for record in records]
    idioms = [record[2] for record in records]
    ratios = [speedup(t, i) for t, i in zip(tuned, idioms)]
    data = pd.DataFrame(
        {
            "machine": [t["machine"] for t in tuned], "workload": [t["workload"] for t in tuned],
            "device": [t["device"] for t in tuned], "size": [t["size_label"] for t in tuned],
            "dtype": [t["dtype"] for t in tuned], "framework": [t["framework"] for t in tuned],
            "idiomatic": [record[1] for record in records],
            "idiomatic_status": [i["status"] if i is not None else "missing" for i in idioms],
            "idiomatic_median_s": [comparable_median(i) for i in idioms],
            "tuned": [t["implementation"] for t in tuned],
            "tuned_status": [t["status"] for t in tuned],
            "tuned_median_s": [comparable_median(t) for t in tuned],
            "idiomatic_over_tuned": ratios,
            # Whether the timing rounds tell the two apart (sidebyside.ranking); where not, the ratio is a tie.
            "separated": [rows_separated(t, i) if r is not None else None for t, i, r in zip(tuned, idioms, ratios)],
            "idiomatic_over_limit": [limit_ratio(i) if comparable_median(i) is not None else None for i in idioms],
            "tuned_over_limit": [limit_ratio(t) if comparable_median(t) is not None else None for t in tuned],
            # Where True, the step beat the measured peak: its ratio below 1 is no distance from the limit.
            "idiomatic_beats_peak": [over_peak(i["peak_fraction"]) if comparable_median(i) is not None else None
                                     for i in idioms],
            "tuned_beats_peak": [over_peak(t["peak_fraction"]) if comparable_median(t) is not None else None
                                 for t in tuned],
            "tuning": [record[3] for record in records],
        }
    )
    display = pd.DataFrame(
        {
            "Machine": data["machine"], "Workload": data["workload"], "Device": data["device"],
            "Size": data["size"], "Dtype": data["dtype"], "Framework": data["framework"],
            "Idiomatic": data["idiomatic"],
            "Idiomatic step": [tuned_step_cell(i) for i in idioms],
            "Tuned": data["tuned"],
            "Tuned step": [tuned_step_cell(t) for t in tuned],
            "Idiomatic ÷ tuned": [speedup_cell(t, i) for t, i in zip(tuned, idioms)],
            "Idiomatic × limit": [limit_cell(i) for i in idioms],
            "Tuned × limit": [limit_cell(t) for t in tuned],
        }
    )
    if display["Workload"].nunique() <= 1:
        display = display.drop(columns=["Workload"])
    classes = ["" if r is not None else "status-na" for r in ratios]
    return Table(
        "tuned", "Idiom vs ceiling: each framework's tuned variant beside its idiomatic code", data, display,
        classes, facet="Machine",
        note="Each speed-written variant (registry field tuned_from) beside the idiomatic variant it rewrites, "
             "in the same group (device, size, dtype). Idiomatic ÷ tuned is the ratio of their median step "
             "times: above 1× the tuned code is faster, below 1× slower on this machine, both only where "
             "the timing rounds separate the two (the summary's rule); otherwise “" + ranking.TIE + "” "
             "follows the ratio. × limit is the step time over the compute limit, the "
             "FLOPs of a step over the measured peak; a step faster than that peak reads “" + UNSOUND + "” "
             "instead. n/a: no comparable timing (missing, not run, failed, diverged or disagreeing with the "
             "reference).",
    )


def timing_table(collection):
    frame = ordered(collection.frame, collection.labels)
    columns = ["machine", "workload", "device", "size_label", "dtype", "implementation", "status", "median",
               "iqr", "min", "max", "mean", "stddev", "rounds", "unstable", "first_step_s", "loop_time_s",
               "loop_steps", "loop_per_step", "flops", "gflops", "peak_gflops", "peak_fraction",
               "threads", "cpu_utilization"]
    data = frame[columns].rename(columns={"size_label": "size", "median": "median_s", "iqr": "iqr_s",
                                          "min": "min_s", "max": "max_s", "mean": "mean_s", "stddev": "stddev_s",
                                          "loop_per_step": "loop_per_step_s", "flops": "flops_per_step"})
    data.insert(data.columns.get_loc("peak_fraction") + 1, "beats_peak",
                [over_peak(x) for x in frame["peak_fraction"]])  # then peak_fraction is no share
    # The rounds' medians as a JSON array per cell (empty where the file has none), for re-analysis.
    data["round_medians_s"] = [json.dumps(value(x)) if isinstance(value(x), list) else None
                               for x in frame["round_medians"]]
    display = pd.DataFrame(
        {
            "Machine": frame["machine"],
            "Device": frame["device"],
            "Size": frame["size_label"],
            "Dtype": frame["dtype"],
            "Implementation": frame["implementation"],
            "Median": [median_cell(m, u, s, r, d) for m, u, s, r, d in
                       zip(frame["median"], frame["unstable"], frame["status"], frame["reason"],
                           frame["diverged_at"])],
            "IQR": [fmt.seconds(x) for x in frame["iqr"]],
            "Min": [fmt.seconds(x) for x in frame["min"]],
            "Mean ± sd": [mean_sd(m, s) for m, s in zip(frame["mean"], frame["stddev"])],
            "Rounds": [fmt.general(x) for x in frame["rounds"]],
            "Round medians": [rounds_cell(x) for x in frame["round_medians"]],
            "Cores used": [cores_cell(u, t) + (" (oversubscribed)" if ranking.oversubscribed(ranking_entry(row))
                                               else "")
                           for u, t, (_, row) in zip(frame["cpu_utilization"], frame["threads"], frame.iterrows())],
            "Loop (per step)": [loop_cell(p, n) for p, n in zip(frame["loop_per_step"], frame["loop_steps"])],
            "GFLOP/s": [fmt.rate(x) for x in frame["gflops"]],
            "Share of peak": [peak_cell(x) for x in frame["peak_fraction"]],
            "First step": [first_step_cell(f, m) for f, m in zip(frame["first_step_s"], frame["median"])],
        }
    )
    return Table(
        "timing", "Timing, every run", data, display, group_starts(frame), facet="Machine",
        note="Per-step times are synchronized each step (the loss is copied to the host); the loop column "
             "is a training loop that syncs once at the end, divided by its number of steps. Round medians: "
             "the range of the medians of the timed rounds, each in a fresh process. Cores used: CPU "
             "seconds of the process and its children over the wall seconds of the timed steps, against "
             "the threads asked for; “oversubscribed” marks more threads runnable than CPUs to run them, "
             "sampled during the timed steps (pinned to its CPUs, a process never keeps more cores busy "
             "than it has, however many threads wait). First step includes tracing, compilation and "
             "start-up; in brackets, its ratio to a steady step.",
    )


def median_cell(median, unstable, status, reason, diverged_at):
    """The median; a run that did not finish shows why instead, a disagreeing or unchecked one both."""
    if status == "ok":
        return step_cell(median, unstable)
    if status in TIMED and value(median) is not None:
        return f"{step_cell(median, unstable)}; {fmt.status_text(status, reason, diverged_at)}"
    return fmt.status_text(status, reason, diverged_at)


def mean_sd(mean, stddev):
    if value(mean) is None:
        return fmt.MISSING
    return f"{fmt.seconds(mean)} ± {fmt.seconds(stddev)}" if value(stddev) is not None else fmt.seconds(mean)


def loop_cell(per_step, steps):
    if value(per_step) is None:
        return fmt.MISSING
    return f"{fmt.seconds(per_step)} ({fmt.general(steps)} steps)"


def machines_table(collection):
    """One column per machine: the median step time of each case (only with several machines).

    With exactly two files, the change from the first to the second and its
    verdict follow (sidebyside.report.compare.case_change, the one `sidebyside compare` prints).
    """
    frame = ordered(collection.frame, collection.labels)
    if frame.empty:
        return None
    index = ["workload", "device", "size_label", "dtype", "implementation"]
    machines = [label for label in collection.labels if label in set(frame["machine"])]
    medians, cells, runs, keys = {}, {}, {}, []
    for row in frame.itertuples(index=False):
        key = tuple(getattr(row, column) for column in index)
        if key not in cells:
            cells[key], medians[key], runs[key] = {}, {}, {}
            keys.append(key)
        if row.machine in cells[key]:
            continue
        medians[key][row.machine] = value(row.median)
        runs[key][row.machine] = row._asdict()
        if row.status not in ("ok", "unchecked"):  # an unchecked run's time, beside the others'
            cells[key][row.machine] = fmt.status_text(row.status, row.reason, row.diverged_at)
        else:
            cells[key][row.machine] = step_cell(row.median, row.unstable)
    header = ["workload", "device", "size", "dtype", "implementation"] + machines
    data = pd.DataFrame([list(key) + [medians[key].get(m) for m in machines] for key in keys], columns=header)
    display = pd.DataFrame(
        [list(key) + [cells[key].get(m, "not in this file") for m in machines] for key in keys],
        columns=["Workload", "Device", "Size", "Dtype", "Implementation"] + machines,
    )
    note = "One column per machine; a case one file does not contain reads “not in this file”."
    if len(collection.labels) == 2 and len(machines) == 2:
        add_change_columns(data, display, [runs[key] for key in keys], machines)
        note += (f" Change: of the median step time (the median of its rounds), from {machines[0]} to "
                 f"{machines[1]}; verdict: a change only where every round of one lies beyond every round of "
                 f"the other by more than the noise margin (exact Mann–Whitney U on the rounds, p < "
                 f"{compare.ALPHA:g}), “~” where there is no significant difference; a change must show in the "
                 "rounds and in the rounds over their drift canaries alike, and where the canary moved by more "
                 "than 10% the machine's change is named and the rounds over their canaries alone decide "
                 "(`sidebyside compare`, the same rule).")
    return Table("machines", "Median step time on each machine", data, display, [""] * len(display), note=note)


def add_change_columns(data, display, runs, machines):
    """The change from the first machine to the second and its verdict, where both ran the case."""
    before, after = machines
    changes = [compare.case_change(run[before], run[after]) if before in run and after in run else None
               for run in runs]
    data["change_percent"] = [change and change.percent for change in changes]
    data["canary_change_percent"] = [None if change is None or change.canary is None else 100 * change.canary
                                     for change in changes]
    data["normalized_change_percent"] = [None if change is None or change.normalized is None
                                         else 100 * change.normalized for change in changes]
    data["p_value"] = [change and change.p_value for change in changes]
    data["verdict"] = [change.verdict if change else None for change in changes]
    display["Change"] = [compare.change_text(change, run[before]["status"], run[after]["status"]) if change
                         else fmt.MISSING for change, run in zip(changes, runs)]
    display["Verdict"] = [change.verdict if change else fmt.MISSING for change in changes]


def agreement_table(collection):
    frame = collection.frame
    compared = frame["has_losses"] & (frame["agreement"].notna() | frame["agrees"].notna() | (frame["status"] != "ok"))
    frame = ordered(frame[compared], collection.labels)
    final = [last_loss(collection.losses[row]) for row in frame["row"]]
    data = pd.DataFrame(
        {
            "machine": frame["machine"], "workload": frame["workload"], "device": frame["device"],
            "size": frame["size_label"], "dtype": frame["dtype"], "implementation": frame["implementation"],
            "status": frame["status"], "steps": [len(collection.losses[row]) for row in frame["row"]],
            "final_loss": final, "agreement": frame["agreement"],
            "agreement_tolerance": frame["agreement_tolerance"], "agrees": frame["agrees"],
        }
    )
    display = pd.DataFrame(
        {
            "Machine": frame["machine"], "Workload": frame["workload"], "Device": frame["device"],
            "Size": frame["size_label"], "Dtype": frame["dtype"], "Implementation": frame["implementation"],
            "Steps": [fmt.general(x) for x in data["steps"]],
            "Final loss": [fmt.general(x, 6) for x in final],
            "Max rel. difference": [fmt.scientific(x) for x in frame["agreement"]],
            "Tolerance": [fmt.scientific(x) for x in frame["agreement_tolerance"]],
            "Verdict": [verdict(s, a, r, d) for s, a, r, d in
                        zip(frame["status"], frame["agrees"], frame["reason"], frame["diverged_at"])],
        }
    )
    if display["Workload"].nunique() <= 1:
        display = display.drop(columns=["Workload"])
    classes = ["" if v == "agrees" else "status-disagrees" if s == "disagrees" else
               "status-failed" if v == "differs" else "status-na"
               for v, s in zip(display["Verdict"], frame["status"])]
    return Table(
        "agreement", "Agreement with the float64 reference", data, display, classes, facet="Machine",
        note="Max rel. difference: the largest |loss − reference| / |reference| over the compared steps.",
    )


def verdict(status, agrees, reason, diverged_at):
    if status != "ok":
        return fmt.status_text(status, reason, diverged_at)
    agrees = value(agrees)
    return "n/a" if agrees is None else "agrees" if agrees else "differs"


def last_loss(losses):
    finite = [x for x in losses if x is not None]
    return finite[-1] if finite else None


def status_table(collection):
    frame = ordered(collection.frame[collection.frame["status"] != "ok"], collection.labels)
    details = [fmt.status_text(s, r, d) for s, r, d in zip(frame["status"], frame["reason"], frame["diverged_at"])]
    data = pd.DataFrame(
        {
            "machine": frame["machine"], "workload": frame["workload"], "device": frame["device"],
            "size": frame["size_label"], "dtype": frame["dtype"], "implementation": frame["implementation"],
            "status": frame["status"], "reason": frame["reason"], "diverged_at": frame["diverged_at"],
        }
    )
    display = pd.DataFrame(
        {
            "Machine": frame["machine"], "Workload": frame["workload"], "Device": frame["device"],
            "Size": frame["size_label"], "Dtype": frame["dtype"], "Implementation": frame["implementation"],
            "Status": frame["status"], "Detail": details,
        }
    )
    classes = ["status-" + {"n/a": "na"}.get(s, s) for s in frame["status"]]
    return Table(
        "not_ok", "Runs not ranked: skipped (n/a), diverged, failed, disagreeing with the reference, or "
                  "unchecked (pytest-benchmark JSON)",
        data, display, classes,
        facet="Machine",
    )


# ----------------------------------------------------------------------------
# Code and environment
# ----------------------------------------------------------------------------


def code_table(sections):
    rows = []
    for section in sections:
        for column in section.columns:
            rows.append(
                {
                    "workload": section.workload, "module": column.module,
                    "implementations": ", ".join(column.names), "framework": column.framework,
                    "lines_of_code": column.lines_of_code,
                    "lines_differing_from_base": column.changed if column.module != section.base else None,
                    "base": section.base,
                }
            )
    data = pd.DataFrame(rows, columns=["workload", "module", "implementations", "framework", "lines_of_code",
                                       "lines_differing_from_base", "base"])
    display = pd.DataFrame(
        {
            "Workload": data["workload"], "Module": data["module"], "Registered as": data["implementations"],
            "Framework": data["framework"], "Lines of code": [fmt.general(x) for x in data["lines_of_code"]],
            "Code lines not in the base": [fmt.general(x) if value(x) is not None else "(base)"
                                           for x in data["lines_differing_from_base"]],
        }
    )
    return Table(
        "lines_of_code", "Lines of code", data, display, [""] * len(display),
        note="Lines of code leave out blank lines, comments and docstrings (counted with tokenize and ast).",
    )


def blas_owner(filepath):
    """The Python package a shared library ships in: numpy for .../numpy.libs/libopenblas.so."""
    if not filepath:
        return "unknown"
    parts = filepath.replace("\\", "/").split("/")
    for index, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages"):
            name = parts[index + 1]
            return name[: -len(".libs")] if name.endswith(".libs") else name
    return parts[-1]


def blas_text(library):
    bits = [library.get("internal_api") or library.get("user_api") or "?"]
    if library.get("version"):
        bits.append(library["version"])
    details = []
    if library.get("architecture"):
        details.append(f"{library['architecture']} kernel")
    if library.get("num_threads") is not None:
        details.append(f"{library['num_threads']} threads")
    if library.get("threading_layer"):
        details.append(library["threading_layer"])
    return " ".join(bits) + (f" ({', '.join(details)})" if details else "")


def canary_text(document):
    """"355 to 371 µs over 40 processes (the slowest 1.05× the fastest)", or None without a canary."""
    spread = rounds.drift([(entry.get("step_time") or {}).get("canary") for entry in document["results"]])
    if spread is None:
        return None
    low, high, ratio = spread
    count = sum(len([x for x in (entry.get("step_time") or {}).get("canary") or () if x])
                for entry in document["results"])
    return (f"{fmt.seconds(low)} to {fmt.seconds(high)} over {count} rounds (the slowest {fmt.times(ratio)} the "
            f"fastest: how far the machine's own speed moved during the run)")


def environment_rows(label, machine, document):
    gpu = machine["gpu"]
    config = document["config"] if isinstance(document["config"], dict) else {}
    rows = {
        "File": document["source"],
        "Format": document["tool"] or document["format"],
        "Created": document["created"],
        "OS": " ".join(filter(None, (machine["system"], machine["release"]))) or None,
        "Architecture": machine["arch"],
        "CPU": machine["cpu"] + (f" ({machine['cpu_count']} logical cores)" if machine["cpu_count"] else "")
        if machine["cpu"] else (f"{machine['cpu_count']} logical cores" if machine["cpu_count"] else None),
        "GPU": gpu_text(gpu),
        "Python": machine["python"],
    }
    for name, version in machine["frameworks"].items():
        rows[f"Version: {name}"] = version
    for library in machine["blas"]:
        rows[f"Library: {blas_owner(library.get('filepath'))} · {library.get('user_api') or '?'}"] = blas_text(library)
    for key, setting in machine["threads"].items():
        rows[f"Threads: {key}"] = setting
    for key, setting in machine["env"].items():
        rows[f"Env: {key}"] = setting
    rows["TF32 allowed"] = machine["tf32"]
    rows.update(peak_rows(machine))
    rows["Drift canary"] = canary_text(document)
    rows["Commit"] = machine["commit"]
    for name, record in (machine.get("environments") or {}).items():
        if name == machine.get("environment"):
            rows["Environment"] = (f"{name}: {record.get('executable')}, sidebyside {record.get('sidebyside')} "
                                   f"at {record.get('location')} (commit {record.get('commit')})")
            for framework, version in (record.get("frameworks") or {}).items():
                rows[f"Version in {name}: {framework}"] = version
    for key in ("threads", "steps", "quick", "devices", "dtypes", "tf32", "seed", "warmup"):
        if key in config:
            rows[f"Run setting: {key}"] = config[key]
    return rows


# ----------------------------------------------------------------------------
# The measured peak, per device and dtype, and how much it moved during the run
# ----------------------------------------------------------------------------

# The peak is measured at the start and at the end of a run. If the two differ
# by more than this share, the machine's speed changed while it ran (other
# load, thermal or frequency scaling), and so may the timings in between.
PEAK_SPREAD_WARNING = 0.10


def detail_number(x):
    x = value(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def peak_detail_value(detail, key, device, dtype):
    """One number from machine.peak_detail, a free-form object, or None.

    "start" and "end" have the shape of peak_gflops ({device: {dtype: x}});
    "spread" the same, as a fraction (|start - end| / the larger);
    "theoretical" is the CPU's {"float32": x, "float64": y, ...}.
    """
    item = detail.get(key) if isinstance(detail, dict) else None
    if key == "theoretical" and isinstance(item, dict) and dtype in item:
        return detail_number(item[dtype]) if device == "cpu" else None
    if isinstance(item, dict):
        item = item.get(device)
    if isinstance(item, dict):
        return detail_number(item.get(dtype))
    return None


def peak_drift(machine, device, dtype):
    """(start, end, spread) of one device and dtype's peak; spread worked out when only both ends are given."""
    detail = machine.get("peak_detail") or {}
    start, end = (peak_detail_value(detail, key, device, dtype) for key in ("start", "end"))
    spread = peak_detail_value(detail, "spread", device, dtype)
    if spread is None and start and end:
        spread = abs(start - end) / max(start, end)
    return start, end, spread


def peak_devices(machine):
    """(device, dtype) pairs with a peak measured, or noted in peak_detail."""
    pairs = []
    for device, by_dtype in (machine.get("peak_gflops") or {}).items():
        for dtype in (by_dtype or {}):
            pairs.append((device, dtype))
    return pairs


ABOVE_THEORETICAL = "below the measured peak, so what it assumes (clock, FMA units per core) does not hold here"


def over_theoretical(machine):
    """{(device, dtype): (measured, theoretical)} where the measured peak is above the theoretical one."""
    detail = machine.get("peak_detail") or {}
    found = {}
    for device, dtype in peak_devices(machine):
        measured = detail_number(machine["peak_gflops"][device].get(dtype))
        theoretical = peak_detail_value(detail, "theoretical", device, dtype)
        if measured is not None and theoretical is not None and measured > theoretical:
            found[(device, dtype)] = (measured, theoretical)
    return found


def peak_rows(machine):
    """Environment rows: each measured peak, its start and end values and spread, the theoretical peak.

    A theoretical peak below the measured one reads as such (ABOVE_THEORETICAL), not as a bare number.
    """
    rows = {}
    detail = machine.get("peak_detail") or {}
    beaten = over_theoretical(machine)
    for device, by_dtype in (machine.get("peak_gflops") or {}).items():
        if by_dtype is None:
            rows[f"Measured peak, {device} (GFLOP/s)"] = None
            continue
        for dtype, peak in by_dtype.items():
            rows[f"Measured peak, {device} {dtype} (GFLOP/s)"] = peak
            start, end, spread = peak_drift(machine, device, dtype)
            if start is not None or end is not None:
                text = f"{fmt.rate(start)} at the start, {fmt.rate(end)} at the end"
                if spread is not None:
                    text += f" (spread {fmt.percent(spread)}"
                    text += ": over 10%, the machine's speed changed)" if spread > PEAK_SPREAD_WARNING else ")"
                rows[f"Peak drift, {device} {dtype} (GFLOP/s)"] = text
            theoretical = peak_detail_value(detail, "theoretical", device, dtype)
            if theoretical is not None:
                rows[f"Theoretical peak, {device} {dtype} (GFLOP/s)"] = (
                    f"{fmt.rate(theoretical)}: {ABOVE_THEORETICAL}" if (device, dtype) in beaten else theoretical)
    return rows


def gpu_text(gpu):
    if gpu is None:
        return "none"
    bits = [gpu.get("name") or "unknown GPU"]
    if gpu.get("memory_bytes"):
        bits.append(fmt.memory(gpu["memory_bytes"]))
    if gpu.get("driver"):
        bits.append(f"driver {gpu['driver']}")
    if gpu.get("cuda"):
        bits.append(f"CUDA {gpu['cuda']}")
    return ", ".join(bits)


def environment_table(collection):
    columns = [(label, environment_rows(label, machine, doc)) for label, machine, doc in collection.machines]
    keys = list(dict.fromkeys(key for _, rows in columns for key in rows))
    labels = [label for label, _ in columns]

    def show(cell):
        cell = value(cell)
        if isinstance(cell, (list, tuple)):
            return ", ".join(fmt.text(item) for item in cell)
        if isinstance(cell, dict):
            return ", ".join(f"{key}={fmt.text(item)}" for key, item in cell.items())
        return fmt.general(cell)

    def raw(cell):
        if isinstance(cell, (list, tuple, dict)):
            return show(cell)
        return cell

    data = pd.DataFrame([[key] + [raw(rows.get(key)) for _, rows in columns] for key in keys],
                        columns=["field"] + labels)
    display = pd.DataFrame([[key] + [show(rows.get(key)) for _, rows in columns] for key in keys],
                           columns=[""] + labels)
    return Table("environment", "Environment, per machine", data, display, [""] * len(display))
