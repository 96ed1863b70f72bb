"""The digits classifier's report section: its table, its charts and its finding.

Apart from the workload's module so that the worker, which measures and
never reports, loads none of the report's libraries (pandas, matplotlib).
"""

import matplotlib
import numpy as np
import pandas as pd

from sidebyside.report import formatting as fmt
from sidebyside.report.chartdata import series
from sidebyside.report.figures import (LINE_STYLES, MARKERS, STYLE, FigurePanel, legend_outside, new_figure,
                                       plot_label, render)
from sidebyside.report.formatting import value
from sidebyside.report.tables import Figures, Section, Table, cores_cell, ordered, step_cell


def section(workload, title, collection, lines_of_code, palette):
    """The section: the charts, then the table."""
    return Section(f"workload-{workload}", title, [Figures(digits_charts(collection, palette, workload)),
                                                   digits_table(collection, lines_of_code, workload)])


def digits_table(collection, lines_of_code, workload="digits"):
    """The section's table: accuracy, time to target, epoch times, lines of code."""
    frame = collection.frame[collection.frame["workload"] == workload]
    if frame.empty:
        return None
    frame = ordered(frame.assign(median=frame["time_to_target_s"]).assign(step_median=frame["median"]),
                    collection.labels)
    later = [later_epochs_median(collection.epochs[row]) for row in frame["row"]]
    loc = [lines_of_code.get(name) for name in frame["implementation"]]
    data = pd.DataFrame(
        {
            "machine": frame["machine"], "device": frame["device"], "dtype": frame["dtype"],
            "implementation": frame["implementation"], "framework": frame["framework"],
            "backend": frame["backend"], "status": frame["status"], "reason": frame["reason"],
            "test_accuracy": frame["test_accuracy"], "target_accuracy": frame["target_accuracy"],
            "time_to_target_s": frame["time_to_target_s"], "first_step_s": frame["first_step_s"],
            "first_epoch_s": frame["first_epoch_s"], "later_epoch_median_s": later,
            "epochs": [len(collection.epochs[row]) for row in frame["row"]],
            "step_median_s": frame["step_median"], "cpu_utilization": frame["cpu_utilization"],
            "threads": frame["threads"], "lines_of_code": loc,
        }
    )
    display = pd.DataFrame(
        {
            "Machine": frame["machine"], "Device": frame["device"], "Dtype": frame["dtype"],
            "Implementation": frame["implementation"],
            "Test accuracy": [fmt.percent(x) if s == "ok" else fmt.status_text(s, r, d) for x, s, r, d in
                              zip(frame["test_accuracy"], frame["status"], frame["reason"], frame["diverged_at"])],
            "Time to target": [fmt.seconds(x) for x in frame["time_to_target_s"]],
            "Start": [fmt.seconds(x) for x in frame["first_step_s"]],
            "First epoch": [fmt.seconds(x) for x in frame["first_epoch_s"]],
            "Later epochs (median)": [fmt.seconds(x) for x in later],
            "Epochs": [fmt.general(x) for x in data["epochs"]],
            "Step (median)": [step_cell(m, u) for m, u in zip(frame["step_median"], frame["unstable"])],
            "Cores": [cores_cell(u, t) for u, t in zip(frame["cpu_utilization"], frame["threads"])],
            "LOC": [fmt.general(x) for x in loc],
        }
    )
    classes = ["" if s == "ok" else "status-" + {"n/a": "na"}.get(s, s) for s in frame["status"]]
    return Table(
        workload, "Digits: accuracy and time", data, display, classes, facet="Machine",
        note=("Rows run fastest first by time to target: the epoch time until the first epoch whose test "
              "accuracy reached the target shared by every implementation (none where no epoch did). "
              "It leaves out the start, the first step timed apart, which pays tracing and compilation; "
              "the first epoch includes it. Step is an epoch's time over its steps (the epochs after the "
              "first), the median of the timing rounds' medians; cores are CPU seconds over wall seconds "
              "of those epochs."),
    )


def later_epochs_median(epochs):
    times = [epoch["time_s"] for epoch in epochs[1:] if epoch["time_s"] is not None]
    return float(np.median(times)) if times else None


def digits_charts(collection, palette, workload="digits"):
    """Per machine: test accuracy against training time, and each epoch's time (PNG figures)."""
    frame = collection.frame
    frame = frame[(frame["workload"] == workload) & (frame["status"] == "ok")]
    frame = frame[frame["row"].map(lambda row: bool(collection.epochs[row])).astype(bool)]
    charts = []
    for machine, group in frame.groupby("machine", sort=False):
        several = group[["device", "dtype"]].drop_duplicates().shape[0] > 1
        with matplotlib.rc_context(STYLE):
            figure = new_figure(11, 4.2)
            accuracy_axes, epoch_axes = figure.subplots(1, 2)
            names = []
            for index, (_, row) in enumerate(group.iterrows()):
                epochs = collection.epochs[row["row"]]
                times = np.cumsum(np.nan_to_num(series([epoch["time_s"] for epoch in epochs])))
                accuracy_values = series([epoch["test_accuracy"] for epoch in epochs]) * 100
                name = row["implementation"] + (f" ({row['device']}, {row['dtype']})" if several else "")
                names.append(plot_label(name))
                colour = palette(row["implementation"])
                accuracy_axes.plot(times, accuracy_values, LINE_STYLES.get(row["device"], ":"),
                                   marker=MARKERS[index % len(MARKERS)], markersize=4, color=colour,
                                   label=plot_label(name))
                durations = series([epoch["time_s"] for epoch in epochs])
                width = 0.8 / max(len(durations), 1)
                for number, duration in enumerate(durations):
                    epoch_axes.bar(index - 0.4 + width * (number + 0.5), duration, width, color=colour,
                                   hatch="//" if number == 0 else None, edgecolor="white")
            accuracy_axes.set_xlabel("training time, seconds (cumulative over epochs, the start left out)")
            accuracy_axes.set_ylabel("test accuracy, %")
            accuracy_axes.set_title("Accuracy against training time")
            epoch_axes.set_xticks(range(len(names)), names, rotation=20, ha="right")
            epoch_axes.set_ylabel("seconds")
            epoch_axes.set_title("Time of each epoch (first hatched)")
            legend_outside(accuracy_axes, figure)
            title = f"{machine} · {workload}"
            figure.suptitle(plot_label(title, 120))
            charts.append(render(figure, FigurePanel(
                f"{workload}-{len(charts)}", title,
                "Left: test accuracy after each epoch against the time spent training, as time to target "
                "counts it. Right: each epoch's time, one bar per epoch in order; the first (hatched) is "
                "its steps after the first step, the start, which is timed apart.",
                f"Digits accuracy and epoch times for {title}",
            )))
    return charts


def time_to_target_sentence(frame):
    """One finding: each implementation's time to the shared accuracy target."""
    ok = frame[frame["status"] == "ok"]
    ok = ok[ok["time_to_target_s"].notna()].sort_values("time_to_target_s")
    if ok.empty:
        return None
    several = ok[["device", "dtype"]].drop_duplicates().shape[0] > 1

    def described(row):
        where = f" ({row.device}, {row.dtype})" if several else ""
        final = f" (final {fmt.percent(row.test_accuracy)})" if value(row.test_accuracy) is not None else ""
        return f"{row.implementation}{where} {fmt.seconds(row.time_to_target_s)}{final}"

    # One target is shared by every implementation of a run (DigitsProblem.target_accuracy).
    targets = ", ".join(fmt.percent(t) for t in sorted(ok["target_accuracy"].dropna().unique())) or "the target"
    return (f"Digits, time to reach {targets} test accuracy (epoch time after the first step; "
            f"the start and the evaluations left out): "
            + "; ".join(described(row) for row in ok.itertuples()) + ".")
