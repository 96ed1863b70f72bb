"""The report's PNG figures, drawn with matplotlib.figure.Figure (never pyplot).

The loss, timing and sweep figures draw the panels of chartdata.py (the
numbers the page's interactive charts show too) as PNG files for the
Markdown export; a workload's own figures (sidebyside/workloads/) are embedded in the page as a base64 data
URI. Every implementation keeps one colour in every figure; devices are told
apart by line style. Labels pass through `plot_label`, so a name from a
foreign file cannot switch on matplotlib's mathtext.
"""

import base64
import io
from dataclasses import dataclass

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from sidebyside.report.formatting import plot_label
from sidebyside.report.formatting import seconds as seconds_text

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
    png: bytes

    @property
    def data_uri(self):
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class FigurePanel:
    """What a workload's own figure is called (its id, title, caption and alt text)."""

    id: str
    title: str
    caption: str
    alt: str


def render(figure, panel):
    """The figure as a PNG Chart; `panel` gives its id, title, caption and alt text."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return Chart(panel.id, panel.title, panel.caption, panel.alt, buffer.getvalue())


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


def loss_png(panel):
    with matplotlib.rc_context(STYLE):
        figure = new_figure(11, 3.8)
        loss_axes, difference_axes = figure.subplots(1, 2)
        if panel.reference is not None:
            loss_axes.plot(panel.reference, color="black", linestyle=":", linewidth=1.2,
                           label=plot_label(panel.reference_name))
        for curve in panel.curves:
            label = plot_label(curve.implementation) + (f"\n({curve.note})" if curve.note else "")
            loss_axes.plot(curve.losses, color=curve.colour, linewidth=1.2, label=label)
            if curve.last_finite is not None:
                loss_axes.plot(curve.last_finite, curve.losses[curve.last_finite], marker="x", color=curve.colour,
                               markersize=9)
            if curve.difference is not None:
                difference_axes.plot(curve.difference, color=curve.colour, linewidth=1.0)
        log_scale(loss_axes)
        loss_axes.set_xlabel("step")
        loss_axes.set_ylabel("loss (sum of squared errors)")
        loss_axes.set_title("Loss per step")
        if panel.reference is not None:
            log_scale(difference_axes)
            difference_axes.set_title(plot_label(f"Relative difference from {panel.reference_name}", 80))
        else:
            difference_axes.text(0.5, 0.5, "no reference trajectory in this file", ha="center",
                                 va="center", transform=difference_axes.transAxes)
            difference_axes.set_title("Relative difference")
        difference_axes.set_xlabel("step")
        difference_axes.set_ylabel("|loss − reference| / reference")
        legend_outside(loss_axes, figure)
        figure.suptitle(plot_label(panel.title, 120))
        return render(figure, panel)


# ----------------------------------------------------------------------------
# Timing bars: per step and loop, side by side
# ----------------------------------------------------------------------------


def timing_png(panel):
    with matplotlib.rc_context(STYLE):
        height = max(2.2, 0.32 * max(len(bars.implementations) for bars in panel.bars) + 1.2)
        labels = [plot_label(name) + " ±" for bars in panel.bars for name in bars.implementations]
        figure = new_figure(11, height * len(panel.bars), legend=False, left_labels=labels)
        grid = np.atleast_2d(figure.subplots(len(panel.bars), 2, squeeze=False))
        for line, bars in enumerate(panel.bars):
            names = [plot_label(n) + (" ±" if u else "") for n, u in zip(bars.implementations, bars.unstable)]
            positions = np.arange(len(names))
            step_axes, loop_axes = grid[line]
            drawn = step_axes.barh(positions, bars.medians, xerr=[bars.lower, bars.upper], color=bars.colours,
                                   capsize=3, error_kw={"elinewidth": 1})
            for bar, unstable in zip(drawn, bars.unstable):
                if unstable:
                    bar.set_hatch("//")
            step_axes.set_yticks(positions, names)
            log_scale(step_axes, "x")
            seconds_axis(step_axes)
            step_axes.set_xlabel("time per step (median, IQR bars)")
            step_axes.set_title(plot_label(f"{bars.device}: per step, synchronized", 60))
            loop_axes.barh(positions, bars.loops, color=bars.colours)
            loop_axes.set_yticks(positions, names)
            log_scale(loop_axes, "x")
            seconds_axis(loop_axes)
            loop_axes.set_xlabel("time per step in a loop that syncs once")
            loop_axes.set_title(plot_label(f"{bars.device}: loop throughput", 60))
            if np.isnan(bars.loops).all():
                loop_axes.text(0.5, 0.5, "no loop timings", ha="center", va="center",
                               transform=loop_axes.transAxes)
        figure.suptitle(plot_label(panel.title, 120))
        return render(figure, panel)


# ----------------------------------------------------------------------------
# The sweep: step time and GFLOP/s against problem size
# ----------------------------------------------------------------------------


def sweep_png(panel):
    with matplotlib.rc_context(STYLE):
        figure = new_figure(11, 4.0)
        time_axes, rate_axes = figure.subplots(1, 2)
        for line in panel.lines:
            style = LINE_STYLES.get(line.device, ":")
            time_axes.plot(line.flops, line.medians, style, marker="o", markersize=3, color=line.colour,
                           label=plot_label(f"{line.implementation} ({line.device})"))
            rate_axes.plot(line.flops, line.gflops, style, marker="o", markersize=3, color=line.colour)
            if line.fitted is not None:
                time_axes.plot(*line.fitted, ":", linewidth=0.9, color=line.colour, alpha=0.8)
        for device, peak in panel.peaks:
            rate_axes.axhline(peak, color="black", linestyle=LINE_STYLES.get(device, ":"), linewidth=1)
            rate_axes.annotate(plot_label(f"measured {device} {panel.dtype} peak {peak:.4g} GFLOP/s", 60),
                               (0.01, peak), xycoords=("axes fraction", "data"), va="bottom", fontsize=8)
        crossing = panel.crossing
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
        figure.suptitle(plot_label(panel.title, 120))
        return render(figure, panel)


# ----------------------------------------------------------------------------
# At a glance, and where the time goes
# ----------------------------------------------------------------------------


def glance_png(panel):
    with matplotlib.rc_context(STYLE):
        names = [plot_label(bar.implementation) + (" ±" if bar.unstable else "") for bar in panel.bars]
        figure = new_figure(9, max(2.2, 0.3 * len(names) + 1.3), legend=False, left_labels=names)
        axes = figure.subplots()
        positions = np.arange(len(names))[::-1]  # the first bar on top
        medians = np.array([bar.median for bar in panel.bars])
        lower = np.array([max(bar.median - bar.low, 0) for bar in panel.bars])
        upper = np.array([max(bar.high - bar.median, 0) for bar in panel.bars])
        drawn = axes.barh(positions, medians, xerr=[lower, upper], color=[bar.colour for bar in panel.bars],
                          capsize=3, error_kw={"elinewidth": 1})
        for bar, shown in zip(drawn, panel.bars):
            if shown.tuned_from:
                bar.set_hatch("//")
        axes.set_yticks(positions, names)
        if panel.limit_s:
            axes.axvline(panel.limit_s, color="black", linestyle="--", linewidth=1)
            axes.annotate("compute limit", (panel.limit_s, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                          va="bottom")
        log_scale(axes, "x")
        seconds_axis(axes)
        axes.set_xlabel("time per step (median; whiskers: fastest and slowest round)")
        figure.suptitle(plot_label(panel.title, 120))
        return render(figure, panel)


def overhead_png(panel):
    with matplotlib.rc_context(STYLE):
        names = [plot_label(bar.implementation) for bar in panel.bars]
        figure = new_figure(9, max(2.2, 0.3 * len(names) + 1.5), legend=False, left_labels=names)
        axes = figure.subplots()
        positions = np.arange(len(names))[::-1]
        colours = [bar.colour for bar in panel.bars]
        fixed = np.array([bar.overhead_s for bar in panel.bars])
        axes.barh(positions, fixed, color=colours, label="fixed cost per step")
        axes.barh(positions, [bar.arithmetic_s for bar in panel.bars], left=fixed, color=colours, alpha=0.45,
                  label="arithmetic")
        axes.plot([bar.median for bar in panel.bars], positions, "D", color="black", markersize=4,
                  label="measured median")
        axes.set_yticks(positions, names)
        axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: seconds_text(x) if x > 0 else "0"))
        axes.set_xlabel("time per step")
        axes.legend(loc="lower right")
        figure.suptitle(plot_label(panel.title, 120))
        return render(figure, panel)


def png_charts(panels):
    """The interactive charts' panels as PNG figures: {kind: [Chart]} ("glance", "overhead", "loss", ...)."""
    draw = {"glance": glance_png, "overhead": overhead_png, "loss": loss_png, "timing": timing_png,
            "sweep": sweep_png}
    return {kind: [draw[kind](panel) for panel in kind_panels] for kind, kind_panels in panels.items()}
