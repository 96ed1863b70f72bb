"""Timing: the step-time charts (per step and in a loop) and every run's timing; the size sweep is at the top
(sections/glance.py)."""

import json

import pandas as pd

from sidebyside import ranking
from sidebyside.report import formatting as fmt
from sidebyside.report.merge import value
from sidebyside.report.tables import (TIMED, Figures, Section, Table, Text, case_columns, cores_cell, group_starts,
                                      ordered, over_peak, peak_cell, ranking_entry, step_cell)

ORDER = 40


def sections(context):
    charts = context.charts.get("timing") or []
    blocks = [Figures(charts, interactive=True)]
    if not charts:
        blocks.append(Text(["No successful timings in these files."], markdown=False))
    blocks.append(context.table(lambda rows: timing_table(rows.only(context.main))))
    return Section("timing", "Timing", blocks)


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
            **case_columns(frame, titled=True, keys=("machine", "device", "size_label", "dtype", "implementation")),
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


def rounds_cell(round_medians):
    """The range of the rounds' medians, "412–430 µs (3 rounds)", where the file recorded them."""
    rounds = value(round_medians)
    if not isinstance(rounds, (list, tuple)) or not rounds:
        return fmt.MISSING
    low, high = min(rounds), max(rounds)
    span = fmt.seconds(low) if low == high else f"{fmt.seconds(low)} – {fmt.seconds(high)}"
    return f"{span} ({len(rounds)} round{'s' if len(rounds) != 1 else ''})"


def first_step_cell(first, median):
    text = fmt.seconds(first)
    first, median = value(first), value(median)
    if first is not None and median:
        text += f" ({fmt.times(first / median)})"
    return text
