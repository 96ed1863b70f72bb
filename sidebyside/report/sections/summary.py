"""Which should I use?: the warnings, the choice table, the findings, the summary, idiom vs ceiling, and each
machine's medians side by side."""

import pandas as pd

from sidebyside import ranking
from sidebyside.peak import UNSOUND
from sidebyside.report import compare
from sidebyside.report import formatting as fmt
from sidebyside.report.findings import choice_table, findings, measurement_warnings
from sidebyside.report.merge import value
from sidebyside.report.tables import (GROUP, NOT_AVAILABLE, TIMED, Section, Table, Text, case_columns,
                                      comparable_median, group_starts, hardware, limit_ratio, ordered, over_peak,
                                      peak_cell, ranking_entry, rows_separated, speedup, step_cell, tuned_pairs,
                                      tuned_rows, tuned_step_cell, versus)

ORDER = 10


def sections(context):
    several = len(context.collection.labels) > 1
    blocks = [Text(lines, css="warning", lead=f"Warning ({machine}):" if several else "Warning:")
              for machine, lines in measurement_warnings(context.collection) if lines]
    blocks += [Text([f"{machine}: {line}" if several else line for line in lines], css="notice")
               for machine, lines in context.notices]
    blocks.append(context.table(choice_table))
    for machine, sentences, more in findings(context.collection, context.crossings, context.fits):
        blocks += [Text([machine], css="heading")] if several else []
        blocks.append(Text(sentences, css="findings"))
        if more:
            blocks.append(Text(more, css="details", lead=f"More findings ({len(more)})"))
    # The page's summary keeps the sizes run in full; the sweep sizes are in the timing table, and summary.csv.
    blocks.append(context.table(lambda rows: summary_table(rows.only(context.main), context.lines_of_code),
                                page=lambda rows: rows.in_full()))
    blocks.append(context.table(lambda rows: tuned_table(rows.only(context.main))))
    if several:
        blocks.append(context.table(machines_table))
    return Section("summary", "Which should I use?", blocks, nav="Summary")


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


def rank_cell(rank, tied):
    rank = value(rank)
    if rank is None:
        return fmt.MISSING
    return f"{int(rank)} (tie)" if value(tied) else str(int(rank))


def summary_data(frame, lines_of_code):
    data = pd.DataFrame(case_columns(frame)).assign(framework=frame["framework"], backend=frame["backend"],
                                                   status=frame["status"])
    data["detail"] = [fmt.status_text(s, r, d) if s != "ok" else "" for s, r, d in
                      zip(frame["status"], frame["reason"], frame["diverged_at"])]
    columns = {"median": "median_step_s", "rank": "rank", "tied": "tied", "ratio": "ratio_to_fastest",
               "separated": "separated_from_fastest", "threads": "threads", "cpu_utilization": "cpu_utilization",
               "gflops": "gflops", "peak_fraction": "peak_fraction"}
    data = data.join(frame[list(columns)].rename(columns=columns))
    data["beats_peak"] = [over_peak(x) for x in frame["peak_fraction"]]  # then peak_fraction is no share
    data = data.join(frame[["first_step_s", "peak_memory_bytes", "agreement", "agreement_tolerance", "agrees",
                            "unstable"]])
    data["lines_of_code"] = [lines_of_code.get(w, {}).get(i)
                             for w, i in zip(frame["workload"], frame["implementation"])]
    return data


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
            **case_columns(frame, titled=True),
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
             "section; the sizes of the sweep (timed within a budget) are in the timing table and in "
             "summary.csv. " + MEMORY_NOTE,
    )


# The memory column's one meaning (sidebyside/timing.py case_memory, sidebyside/jobs/shared.py for the jobs).
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


def limit_cell(row):
    """× limit of a comparable row: the ratio, UNSOUND where the step beat the peak (never below 1×), else n/a."""
    if comparable_median(row) is None or limit_ratio(row) is None:
        return NOT_AVAILABLE
    return UNSOUND if over_peak(row["peak_fraction"]) else fmt.times(limit_ratio(row))


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
