"""The report's figures, drawn with matplotlib.figure.Figure (never pyplot).

Each figure is rendered to PNG and embedded in the page as a base64 data
URI, so the report needs no other file and no network to be seen. Every
implementation keeps one colour in every figure; devices are told apart by
line style. Labels pass through `plot_label`, so a name from a foreign file
cannot switch on matplotlib's mathtext.
"""

import base64
import io
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from reports.formatting import seconds as seconds_text

from reports.formatting import plot_label
from reports.merge import value
from reports.schema import peak_for
from reports.tables import DEVICE_ORDER, DIGITS

DPI = 96
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "svg.fonttype": "none",
}
LINE_STYLES = {"cpu": "-", "cuda": "--"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LEGEND_AT = 0.79  # figure fraction where the legend column starts


@dataclass
class Chart:
    id: str
    title: str
    caption: str
    alt: str
    data_uri: str


def render(figure, id, title, caption, alt):
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return Chart(id, title, caption, alt, "data:image/png;base64," + encoded)


class Palette:
    """One colour per implementation, the same in every figure."""

    def __init__(self, names):
        colours = matplotlib.colormaps["tab10"].colors + matplotlib.colormaps["Dark2"].colors
        self.colours = {name: colours[index % len(colours)] for index, name in enumerate(dict.fromkeys(names))}

    def __call__(self, name):
        return self.colours.get(name, (0.3, 0.3, 0.3))


PLOT_LIMIT = 1e100  # values beyond this (a diverging loss, an absurd timing) are left out of plots


def series(values):
    """Floats for plotting: None, non-finite and absurd values become gaps (NaN)."""
    array = np.array([np.nan if value(x) is None else value(x) for x in values], dtype=float)
    array[~(np.abs(array) <= PLOT_LIMIT)] = np.nan
    return array


def positive(array):
    """`series` for a log axis: zero and negative values become gaps too."""
    array = series(array)
    array[~(array >= 1 / PLOT_LIMIT)] = np.nan
    return array


def legend_outside(axes, figure):
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="upper left", bbox_to_anchor=(LEGEND_AT, 0.92), frameon=False)


def log_scale(axes, which="y"):
    """Log scale on an axis, when something positive is drawn on it (else matplotlib refuses)."""
    data = []
    for line in axes.get_lines():
        data.append(np.asarray(line.get_ydata() if which == "y" else line.get_xdata(), dtype=float))
    for patch in axes.patches:
        data.append(np.array([patch.get_width() if which == "x" else patch.get_height()], dtype=float))
    values = np.concatenate(data) if data else np.array([])
    if np.any(np.isfinite(values) & (values > 0)):
        (axes.set_yscale if which == "y" else axes.set_xscale)("log")
        return True
    return False


def seconds_axis(axes, which="x"):
    """Ticks at 1, 2 and 5 of each decade, labelled 200 µs, 1 ms, ... (log axes only)."""
    axis = axes.xaxis if which == "x" else axes.yaxis
    if axis.get_scale() != "log":
        return
    low, high = axis.get_view_interval()
    decades = np.log10(high / low) if low > 0 and high > low else 0.0
    subs = (1.0, 2.0, 5.0) if decades < 1.6 else (1.0, 3.0) if decades < 2.5 else (1.0,)
    axis.set_major_locator(LogLocator(subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda x, _: seconds_text(x)))
    axis.set_minor_formatter(NullFormatter())


def new_figure(width, height, legend=True, left_labels=()):
    """A figure laid out by hand: constrained layout costs a second per figure with log axes.

    `legend` keeps the right quarter for a legend; `left_labels` are y tick
    labels whose length sets the left margin.
    """
    figure = Figure(figsize=(width, height))
    longest = max((len(label) for label in left_labels), default=0)
    left_inches = 0.75 + 0.065 * longest
    figure.subplots_adjust(
        left=left_inches / width, right=LEGEND_AT - 0.02 if legend else 0.98,
        bottom=0.55 / height + 0.02, top=1 - 0.6 / height, wspace=0.3 + (0.075 * longest / width * 2),
        hspace=0.55 if height > 5 else 0.45,
    )
    return figure


# ----------------------------------------------------------------------------
# Loss curves and agreement
# ----------------------------------------------------------------------------


def reference_for(collection, machine, workload, size):
    references = collection.references.get((machine, workload, size), {})
    if "float64" in references:
        return references["float64"], "the float64 reference"
    if references:
        dtype, losses = next(iter(references.items()))
        return losses, f"the {dtype} reference"
    return None, None


def loss_charts(collection, palette):
    frame = collection.frame
    frame = frame[frame["has_losses"] & (frame["workload"] != DIGITS)]
    charts = []
    groups = frame.groupby(["machine", "workload", "device", "dtype", "size_label"], sort=False)
    for (machine, workload, device, dtype, size), group in sorted_groups(groups, collection):
        reference, reference_name = reference_for(collection, machine, workload, size)
        judged = group["agreement"].notna().any() or (group["status"] != "ok").any()
        if reference is None and not judged:
            continue  # timing-only runs (the size sweep) record losses but are not compared
        number = len(charts)
        with matplotlib.rc_context(STYLE):
            figure = new_figure(11, 3.8)
            loss_axes, difference_axes = figure.subplots(1, 2)
            if reference is not None:
                loss_axes.plot(positive(series(reference)), color="black", linestyle=":", linewidth=1.2,
                               label=plot_label(reference_name))
            for _, row in group.sort_values("implementation", kind="stable").iterrows():
                losses = series(collection.losses[row["row"]])
                colour = palette(row["implementation"])
                label = plot_label(row["implementation"])
                if row["status"] == "diverged" and value(row["diverged_at"]) is not None:
                    label += f"\n(diverged at step {int(row['diverged_at'])})"
                elif row["status"] == "disagrees":
                    label += "\n(disagrees with the reference)"
                loss_axes.plot(positive(losses), color=colour, linewidth=1.2, label=label)
                finite = np.flatnonzero(np.isfinite(losses))
                if row["status"] == "diverged" and finite.size:
                    loss_axes.plot(finite[-1], losses[finite[-1]], marker="x", color=colour, markersize=9)
                if reference is not None:
                    steps = min(len(losses), len(reference))
                    ref = series(reference[:steps])
                    with np.errstate(divide="ignore", invalid="ignore"):
                        difference = np.abs(losses[:steps] - ref) / np.abs(ref)
                    # Identical losses give 0, which a log axis cannot show: draw them at 1e-17.
                    difference = np.where(difference == 0, 1e-17, difference)
                    difference_axes.plot(positive(difference), color=colour, linewidth=1.0)
            log_scale(loss_axes)
            loss_axes.set_xlabel("step")
            loss_axes.set_ylabel("loss (sum of squared errors)")
            loss_axes.set_title("Loss per step")
            if reference is not None:
                log_scale(difference_axes)
                difference_axes.set_title(plot_label(f"Relative difference from {reference_name}", 80))
            else:
                difference_axes.text(0.5, 0.5, "no reference trajectory in this file", ha="center",
                                     va="center", transform=difference_axes.transAxes)
                difference_axes.set_title("Relative difference")
            difference_axes.set_xlabel("step")
            difference_axes.set_ylabel("|loss − reference| / reference")
            legend_outside(loss_axes, figure)
            title = f"{machine} · {device} · {dtype} · {size}"
            figure.suptitle(plot_label(title, 120))
            charts.append(render(
                figure, f"loss-{number}", title,
                "Left: every implementation's loss, log scale; the reference dotted. Right: each one's "
                "relative difference from the reference, step by step (exact agreement is drawn at 1e-17).",
                f"Loss curves and relative differences for {title}",
            ))
    return charts


def sorted_groups(groups, collection):
    def key(item):
        (machine, workload, device, dtype, size), group = item
        flops = value(group["flops"].iloc[0]) or 0
        order = collection.labels.index(machine) if machine in collection.labels else 0
        return (order, workload, DEVICE_ORDER.get(device, 2), device, flops, size, dtype)

    return sorted(groups, key=key)


# ----------------------------------------------------------------------------
# Timing bars: per step and loop, side by side
# ----------------------------------------------------------------------------


def primary_size(frame):
    """The size to draw bars for: the one with loss curves, else the most common one."""
    with_losses = frame[frame["has_losses"]]
    source = with_losses if not with_losses.empty else frame
    counts = source["size_label"].value_counts()
    return counts.index[0] if len(counts) else None


def timing_charts(collection, palette):
    frame = collection.frame
    frame = frame[(frame["workload"] != DIGITS) & (frame["status"] == "ok") & frame["median"].notna()]
    charts = []
    for (machine, dtype), group in frame.groupby(["machine", "dtype"], sort=False):
        size = primary_size(group)
        group = group[group["size_label"] == size]
        devices = sorted(group["device"].unique(), key=lambda d: (DEVICE_ORDER.get(d, 2), d))
        with matplotlib.rc_context(STYLE):
            height = max(2.2, 0.32 * max(len(group[group["device"] == d]) for d in devices) + 1.2)
            labels = [plot_label(name) + " ±" for name in group["implementation"]]
            figure = new_figure(11, height * len(devices), legend=False, left_labels=labels)
            grid = np.atleast_2d(figure.subplots(len(devices), 2, squeeze=False))
            for line, device in enumerate(devices):
                rows = group[group["device"] == device].sort_values("median", ascending=False)
                names = [plot_label(n) + (" ±" if u else "") for n, u in zip(rows["implementation"], rows["unstable"])]
                colours = [palette(n) for n in rows["implementation"]]
                positions = np.arange(len(rows))
                medians = positive(rows["median"])
                iqr = np.nan_to_num(series(rows["iqr"]))
                # Only the IQR's width is recorded: it is drawn centred on the median, the lower
                # whisker cut at a third of the median so one noisy run cannot stretch the log axis.
                lower = np.minimum(iqr / 2, medians * (2 / 3))
                step_axes, loop_axes = grid[line]
                upper = np.minimum(iqr / 2, PLOT_LIMIT)
                bars = step_axes.barh(positions, medians, xerr=[lower, upper], color=colours, capsize=3,
                                      error_kw={"elinewidth": 1})
                for bar, unstable in zip(bars, rows["unstable"]):
                    if unstable:
                        bar.set_hatch("//")
                step_axes.set_yticks(positions, names)
                log_scale(step_axes, "x")
                seconds_axis(step_axes)
                step_axes.set_xlabel("time per step (median, IQR bars)")
                step_axes.set_title(plot_label(f"{device}: per step, synchronized", 60))
                loops = positive(rows["loop_per_step"])
                loop_axes.barh(positions, loops, color=colours)
                loop_axes.set_yticks(positions, names)
                log_scale(loop_axes, "x")
                seconds_axis(loop_axes)
                loop_axes.set_xlabel("time per step in a loop that syncs once")
                loop_axes.set_title(plot_label(f"{device}: loop throughput", 60))
                if np.isnan(loops).all():
                    loop_axes.text(0.5, 0.5, "no loop timings", ha="center", va="center",
                                   transform=loop_axes.transAxes)
            title = f"{machine} · {dtype} · {size}"
            figure.suptitle(plot_label(title, 120))
            charts.append(render(
                figure, f"timing-{len(charts)}", title,
                "Median time per step, shortest at the top; the error bars span the interquartile range centred "
                "on the median (lower whisker cut at a third of the median), hatched bars (±) are unstable. "
                "Right: the same steps in a loop that synchronizes once.",
                f"Step time bars for {title}",
            ))
    return charts


# ----------------------------------------------------------------------------
# The sweep: step time and GFLOP/s against problem size
# ----------------------------------------------------------------------------


def crossovers(group):
    """Where the fastest GPU run overtakes the fastest CPU run, by FLOPs per step.

    Returns a list of (FLOPs, size label, cpu seconds, cuda seconds) at the
    first size where cuda is faster, when a smaller common size had cpu faster,
    or at the smallest common size when cuda is faster everywhere.
    """
    best = group.groupby(["flops", "size_label", "device"])["median"].min().unstack("device")
    if "cpu" not in best.columns or "cuda" not in best.columns:
        return None
    best = best.dropna(subset=["cpu", "cuda"]).sort_index()
    if best.empty:
        return None
    faster = (best["cuda"] < best["cpu"]).to_numpy()
    index = list(best.index)
    if faster.all():
        flops, label = index[0]
        return {"kind": "everywhere", "flops": flops, "size": label}
    if not faster.any():
        flops, label = index[-1]
        return {"kind": "never", "flops": flops, "size": label}
    first = int(np.argmax(faster))
    flops, label = index[first]
    return {"kind": "crossover", "flops": flops, "size": label,
            "cpu": float(best["cpu"].iloc[first]), "cuda": float(best["cuda"].iloc[first])}


def sweep_charts(collection, palette):
    frame = collection.frame
    frame = frame[(frame["workload"] != DIGITS) & (frame["status"] == "ok") & frame["median"].notna()
                  & frame["flops"].notna()]
    charts, found = [], {}
    for (machine, dtype), group in frame.groupby(["machine", "dtype"], sort=False):
        if group["size_label"].nunique() < 2:
            continue
        machine_record = collection.machine(machine)
        with matplotlib.rc_context(STYLE):
            figure = new_figure(11, 4.0)
            time_axes, rate_axes = figure.subplots(1, 2)
            for (name, device), rows in group.groupby(["implementation", "device"], sort=True):
                rows = rows.sort_values("flops")
                style = LINE_STYLES.get(device, ":")
                label = plot_label(f"{name} ({device})")
                time_axes.plot(positive(rows["flops"]), positive(rows["median"]), style, marker="o", markersize=3,
                               color=palette(name), label=label)
                rate_axes.plot(positive(rows["flops"]), positive(rows["gflops"]), style, marker="o", markersize=3,
                               color=palette(name))
            for device in machine_record["peak_gflops"]:
                peak = peak_for(machine_record["peak_gflops"], device, dtype)  # this chart's dtype's peak
                if peak and 1 / PLOT_LIMIT < peak < PLOT_LIMIT and device in set(group["device"]):
                    rate_axes.axhline(peak, color="black", linestyle=LINE_STYLES.get(device, ":"), linewidth=1)
                    rate_axes.annotate(plot_label(f"measured {device} {dtype} peak {peak:.4g} GFLOP/s", 60),
                                       (0.01, peak), xycoords=("axes fraction", "data"), va="bottom", fontsize=8)
            crossing = crossovers(group)
            if crossing:
                found[(machine, dtype)] = crossing
            if crossing and crossing["kind"] == "crossover":
                for axes in (time_axes, rate_axes):
                    axes.axvline(crossing["flops"], color="grey", linestyle=":", linewidth=1.2)
                time_axes.annotate("GPU faster from here", (crossing["flops"], 0.95),
                                   xycoords=("data", "axes fraction"), fontsize=8, ha="left")
            for axes in (time_axes, rate_axes):
                log_scale(axes, "x")
                axes.set_xlabel("problem size (FLOPs per step)")
            log_scale(time_axes)
            seconds_axis(time_axes, "y")
            time_axes.set_ylabel("time per step (median)")
            time_axes.set_title("Step time")
            log_scale(rate_axes)
            rate_axes.set_ylabel("GFLOP/s")
            rate_axes.set_title("Throughput against the measured peak")
            legend_outside(time_axes, figure)
            title = f"{machine} · {dtype} · size sweep"
            figure.suptitle(plot_label(title, 120))
            charts.append(render(
                figure, f"sweep-{len(charts)}", title,
                "Solid lines: CPU, dashed: GPU. The horizontal lines are the machine's measured matmul peak in "
                "this dtype; "
                "a dotted vertical line marks where the GPU overtakes the CPU.",
                f"Size sweep for {title}",
            ))
    return charts, found


# ----------------------------------------------------------------------------
# Digits
# ----------------------------------------------------------------------------


def digits_charts(collection, palette):
    frame = collection.frame
    frame = frame[(frame["workload"] == DIGITS) & (frame["status"] == "ok")]
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
                accuracy = series([epoch["test_accuracy"] for epoch in epochs]) * 100
                name = row["implementation"] + (f" ({row['device']}, {row['dtype']})" if several else "")
                names.append(plot_label(name))
                colour = palette(row["implementation"])
                accuracy_axes.plot(times, accuracy, LINE_STYLES.get(row["device"], ":"),
                                   marker=MARKERS[index % len(MARKERS)], markersize=4, color=colour,
                                   label=plot_label(name))
                durations = series([epoch["time_s"] for epoch in epochs])
                width = 0.8 / max(len(durations), 1)
                for number, duration in enumerate(durations):
                    epoch_axes.bar(index - 0.4 + width * (number + 0.5), duration, width, color=colour,
                                   hatch="//" if number == 0 else None, edgecolor="white")
            accuracy_axes.set_xlabel("wall time, seconds (cumulative over epochs)")
            accuracy_axes.set_ylabel("test accuracy, %")
            accuracy_axes.set_title("Accuracy against wall time")
            epoch_axes.set_xticks(range(len(names)), names, rotation=20, ha="right")
            epoch_axes.set_ylabel("seconds")
            epoch_axes.set_title("Time of each epoch (first hatched)")
            legend_outside(accuracy_axes, figure)
            title = f"{machine} · digits"
            figure.suptitle(plot_label(title, 120))
            charts.append(render(
                figure, f"digits-{len(charts)}", title,
                "Left: test accuracy after each epoch against the time spent training. Right: each epoch's "
                "time, one bar per epoch in order; the first (hatched) includes tracing and compilation.",
                f"Digits accuracy and epoch times for {title}",
            ))
    return charts


def all_charts(collection):
    """{"loss": [...], "timing": [...], "sweep": [...], "digits": [...]} and the crossovers found."""
    palette = Palette(collection.frame["implementation"].tolist())
    sweep, crossings = sweep_charts(collection, palette)
    charts = {
        "loss": loss_charts(collection, palette),
        "timing": timing_charts(collection, palette),
        "sweep": sweep,
        "digits": digits_charts(collection, palette),
    }
    return charts, crossings

