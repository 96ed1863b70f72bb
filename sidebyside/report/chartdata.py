"""The numbers every chart draws, taken once from the merged pandas frame.

One panel per chart: the loss curves with their relative differences, the
timing bars, the size sweep. figures.py draws panels with matplotlib (the
PNGs of the Markdown export), interactive.py with plotly (the page's
charts); both read the same panels, so a chart and its PNG cannot show
different numbers. Values pass through `series` and `positive`: None,
non-finite and absurd values become gaps (NaN), and what goes on a log axis
is positive. Names are kept as the result files give them; each renderer
makes them safe for itself.
"""

from dataclasses import dataclass, field

import matplotlib
import numpy as np

from sidebyside.report import overhead
from sidebyside.report.merge import value
from sidebyside.report.tables import DEVICE_ORDER, tuned_pairs
from sidebyside.results import peak_for

PLOT_LIMIT = 1e100  # values beyond this (a diverging loss, an absurd timing) are left out of plots
EXACT = 1e-17  # identical losses give a relative difference of 0, which a log axis cannot show
DEVICE_DASH = {"cpu": "solid", "cuda": "dash"}  # devices are told apart by line style


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


class Palette:
    """One colour per implementation (a hex string), the same in every chart."""

    def __init__(self, names):
        colours = matplotlib.colormaps["tab10"].colors + matplotlib.colormaps["Dark2"].colors
        self.colours = {name: matplotlib.colors.to_hex(colours[index % len(colours)])
                        for index, name in enumerate(dict.fromkeys(names))}

    def __call__(self, name):
        return self.colours.get(name, "#4d4d4d")


def sorted_groups(groups, collection):
    def key(item):
        (machine, workload, device, dtype, size), group = item
        flops = value(group["flops"].iloc[0]) or 0
        order = collection.labels.index(machine) if machine in collection.labels else 0
        return (order, workload, DEVICE_ORDER.get(device, 2), device, flops, size, dtype)

    return sorted(groups, key=key)


# ----------------------------------------------------------------------------
# Loss curves and agreement
# ----------------------------------------------------------------------------


@dataclass
class LossCurve:
    implementation: str
    note: str | None  # "diverged at step k" or "disagrees with the reference"
    colour: str
    losses: np.ndarray  # per step, positive (gaps elsewhere)
    difference: np.ndarray | None  # |loss - reference| / reference per step, exact agreement at EXACT
    last_finite: int | None  # where a diverged curve ends, to be marked


@dataclass
class LossPanel:
    id: str
    title: str
    caption: str
    alt: str
    reference: np.ndarray | None
    reference_name: str | None
    curves: list = field(default_factory=list)


def reference_for(collection, machine, workload, size):
    references = collection.references.get((machine, workload, size), {})
    if "float64" in references:
        return references["float64"], "the float64 reference"
    if references:
        dtype, losses = next(iter(references.items()))
        return losses, f"the {dtype} reference"
    return None, None


def loss_curve(collection, row, reference, colour):
    losses = series(collection.losses[row["row"]])
    note = None
    if row["status"] == "diverged" and value(row["diverged_at"]) is not None:
        note = f"diverged at step {int(row['diverged_at'])}"
    elif row["status"] == "disagrees":
        note = "disagrees with the reference"
    finite = np.flatnonzero(np.isfinite(losses))
    last_finite = int(finite[-1]) if row["status"] == "diverged" and finite.size else None
    difference = None
    if reference is not None:
        steps = min(len(losses), len(reference))
        ref = series(reference[:steps])
        with np.errstate(divide="ignore", invalid="ignore"):
            difference = np.abs(losses[:steps] - ref) / np.abs(ref)
        difference = positive(np.where(difference == 0, EXACT, difference))
    return LossCurve(row["implementation"], note, colour, positive(losses), difference, last_finite)


def loss_panels(collection, palette):
    frame = collection.frame
    frame = frame[frame["has_losses"]]
    panels = []
    groups = frame.groupby(["machine", "workload", "device", "dtype", "size_label"], sort=False)
    for (machine, workload, device, dtype, size), group in sorted_groups(groups, collection):
        reference, reference_name = reference_for(collection, machine, workload, size)
        judged = group["agreement"].notna().any() or (group["status"] != "ok").any()
        if reference is None and not judged:
            continue  # losses never compared: no panel
        title = f"{machine} · {device} · {dtype} · {size}"
        panel = LossPanel(
            f"loss-{len(panels)}", title,
            "Left: every implementation's loss, log scale; the reference dotted. Right: each one's "
            "relative difference from the reference, step by step (exact agreement is drawn at 1e-17).",
            f"Loss curves and relative differences for {title}",
            positive(series(reference)) if reference is not None else None, reference_name,
        )
        for _, row in group.sort_values("implementation", kind="stable").iterrows():
            panel.curves.append(loss_curve(collection, row, reference, palette(row["implementation"])))
        panels.append(panel)
    return panels


# ----------------------------------------------------------------------------
# Timing bars: per step and loop, side by side
# ----------------------------------------------------------------------------


@dataclass
class TimingBars:
    """One device's bars, slowest first (drawn bottom up, so the fastest is on top)."""

    device: str
    implementations: list
    unstable: list
    colours: list
    medians: np.ndarray  # seconds per step
    iqr: np.ndarray  # seconds, 0 where not recorded
    lower: np.ndarray  # the error bar below the median
    upper: np.ndarray  # and above it
    loops: np.ndarray  # seconds per step in the loop that syncs once


@dataclass
class TimingPanel:
    id: str
    title: str
    caption: str
    alt: str
    bars: list = field(default_factory=list)


def primary_size(frame):
    """The size to draw bars for: the first size run in full, else the one with loss curves, else the most
    common one."""
    full = frame[frame["full"] == True]  # noqa: E712 (None where the file does not say)
    if not full.empty:
        return full["size_label"].iloc[0]
    with_losses = frame[frame["has_losses"]]
    source = with_losses if not with_losses.empty else frame
    counts = source["size_label"].value_counts()
    return counts.index[0] if len(counts) else None


def timing_bars(rows, device, palette):
    rows = rows.sort_values("median", ascending=False)
    medians = positive(rows["median"])
    iqr = np.nan_to_num(series(rows["iqr"]))
    # Only the IQR's width is recorded: it is drawn centred on the median, the lower
    # whisker cut at a third of the median so one noisy run cannot stretch the log axis.
    return TimingBars(
        device, list(rows["implementation"]), [bool(u) for u in rows["unstable"]],
        [palette(name) for name in rows["implementation"]], medians, iqr,
        np.minimum(iqr / 2, medians * (2 / 3)), np.minimum(iqr / 2, PLOT_LIMIT), positive(rows["loop_per_step"]),
    )


def timing_panels(collection, palette):
    frame = collection.frame
    frame = frame[(frame["status"] == "ok") & frame["median"].notna()]
    panels = []
    for (machine, dtype), group in frame.groupby(["machine", "dtype"], sort=False):
        size = primary_size(group)
        group = group[group["size_label"] == size]
        devices = sorted(group["device"].unique(), key=lambda d: (DEVICE_ORDER.get(d, 2), d))
        title = f"{machine} · {dtype} · {size}"
        panel = TimingPanel(
            f"timing-{len(panels)}", title,
            "Median time per step, shortest at the top; the error bars span the interquartile range centred "
            "on the median (lower whisker cut at a third of the median), hatched bars (±) are unstable. "
            "Right: the same steps in a loop that synchronizes once.",
            f"Step time bars for {title}",
        )
        panel.bars = [timing_bars(group[group["device"] == device], device, palette) for device in devices]
        panels.append(panel)
    return panels


# ----------------------------------------------------------------------------
# The sweep: step time and GFLOP/s against problem size
# ----------------------------------------------------------------------------


@dataclass
class SweepLine:
    implementation: str
    device: str
    colour: str
    sizes: list  # size labels, by FLOPs
    flops: np.ndarray
    medians: np.ndarray
    gflops: np.ndarray
    fitted: tuple | None = None  # (FLOPs, seconds): the fitted overhead + arithmetic, where the fit is good


@dataclass
class SweepPanel:
    id: str
    title: str
    caption: str
    alt: str
    dtype: str
    machine: str = ""
    lines: list = field(default_factory=list)
    peaks: list = field(default_factory=list)  # [(device, GFLOP/s)]: the measured peak in this dtype
    crossing: dict | None = None


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


def sweep_panels(collection, palette):
    """The sweep panels, and the crossovers found per (machine, dtype)."""
    frame = collection.frame
    frame = frame[(frame["status"] == "ok") & frame["median"].notna()
                  & frame["flops"].notna()]
    panels, found = [], {}
    for (machine, dtype), group in frame.groupby(["machine", "dtype"], sort=False):
        if group["size_label"].nunique() < 2:
            continue
        title = f"{machine} · {dtype} · size sweep"
        panel = SweepPanel(
            f"sweep-{len(panels)}", title,
            "Solid lines: CPU, dashed: GPU; thin dotted lines on the left: each implementation's fitted fixed "
            "cost plus arithmetic, where the fit is good. The horizontal lines are the machine's measured matmul peak in "
            "this dtype; a dotted vertical line marks where the GPU overtakes the CPU.",
            f"Size sweep for {title}", dtype, machine,
        )
        for (name, device), rows in group.groupby(["implementation", "device"], sort=True):
            rows = rows.sort_values("flops")
            panel.lines.append(SweepLine(name, device, palette(name), list(rows["size_label"]),
                                         positive(rows["flops"]), positive(rows["median"]),
                                         positive(rows["gflops"])))
        peaks = collection.machine(machine)["peak_gflops"]
        for device in peaks:
            peak = peak_for(peaks, device, dtype)  # this chart's dtype's peak
            if peak and 1 / PLOT_LIMIT < peak < PLOT_LIMIT and device in set(group["device"]):
                panel.peaks.append((device, peak))
        panel.crossing = crossovers(group)
        if panel.crossing:
            found[(machine, dtype)] = panel.crossing
        panels.append(panel)
    return panels, found


def all_panels(collection, palette=None):
    """({"glance", "overhead", "loss", "timing", "sweep": [...]}, crossovers, the fits compared (overhead.Group),
    and the palette they share."""
    palette = palette or Palette(collection.frame["implementation"].tolist())
    sweep, crossings = sweep_panels(collection, palette)
    groups = overhead.compared(overhead.fits(collection.frame))
    fit_list = [fit for group in groups for fit in group.fits]
    for panel in sweep:
        fitted_lines(panel, fit_list)
    pairs = {name: sibling for name, (sibling, _) in tuned_pairs().items()}
    panels = {"glance": glance_panels(collection, palette, pairs),
              "overhead": overhead_panels(groups, collection, palette),
              "loss": loss_panels(collection, palette), "timing": timing_panels(collection, palette),
              "sweep": sweep}
    return panels, crossings, groups, palette


# ----------------------------------------------------------------------------
# At a glance: one device's step times at one size, tuned variants beside their siblings
# ----------------------------------------------------------------------------


@dataclass
class GlanceBar:
    implementation: str
    colour: str
    median: float  # seconds per step
    low: float  # the fastest round's median (the median where one round ran)
    high: float  # the slowest round's
    tuned_from: str | None  # the idiomatic sibling of a tuned variant
    unstable: bool


@dataclass
class GlancePanel:
    id: str
    title: str
    caption: str
    alt: str
    bars: list = field(default_factory=list)  # [GlanceBar], drawn top down
    limit_s: float | None = None  # the step's FLOPs over the measured peak: no step can be faster


def round_range(row):
    median = value(row["median"])
    rounds = [r for r in overhead.round_medians(row["round_medians"], median)
              if r is not None and np.isfinite(r) and 0 < r < PLOT_LIMIT]
    return (min(rounds), max(rounds)) if rounds else (median, median)


def paired_order(rows, pairs):
    """Implementations fastest first, each tuned variant right after its idiomatic sibling where both ran."""
    names = list(rows.sort_values("median")["implementation"])
    siblings = {name: pairs[name] for name in names if pairs.get(name) in names}
    order = []
    for name in names:
        if name in siblings:
            continue
        order.append(name)
        order += [tuned for tuned, sibling in siblings.items() if sibling == name]
    return order


def glance_panels(collection, palette, pairs):
    """One panel per machine, workload, device and dtype at its primary size; `pairs` {tuned: its sibling}."""
    frame = collection.frame
    frame = frame[(frame["status"] == "ok") & frame["median"].notna()]
    panels = []
    groups = frame.groupby(["machine", "workload", "device", "dtype"], sort=False)
    for (machine, workload, device, dtype), group in sorted(
            groups, key=lambda item: (collection.labels.index(item[0][0]) if item[0][0] in collection.labels else 0,
                                      item[0][1], DEVICE_ORDER.get(item[0][2], 2), item[0][2], item[0][3])):
        size = primary_size(group)
        rows = group[group["size_label"] == size].drop_duplicates("implementation")
        if rows.empty:
            continue
        by_name = {row["implementation"]: row for _, row in rows.iterrows()}
        title = f"{machine} · {workload} · {device} · {dtype} · {size}"
        panel = GlancePanel(
            f"glance-{len(panels)}", title,
            "Median time per step, fastest at the top; each tuned variant (hatched) right below its idiomatic "
            "sibling. The whiskers span the fastest and the slowest round; the dashed line is the compute "
            "limit, the step's FLOPs at the measured matmul peak, which no step can beat.",
            f"Step time per implementation for {title}",
        )
        for name in paired_order(rows, pairs):
            row = by_name[name]
            low, high = round_range(row)
            panel.bars.append(GlanceBar(name, palette(name), float(value(row["median"])), low, high,
                                        pairs.get(name) if pairs.get(name) in by_name else None,
                                        bool(row["unstable"])))
        flops, peak = value(rows["flops"].iloc[0]), value(rows["peak_gflops"].iloc[0])
        if flops and peak and peak > 0:
            limit = flops / (peak * 1e9)
            panel.limit_s = limit if 1 / PLOT_LIMIT < limit < PLOT_LIMIT else None
        panels.append(panel)
    return panels


# ----------------------------------------------------------------------------
# Where the time goes: the fitted overhead and arithmetic, and the fitted lines
# ----------------------------------------------------------------------------


@dataclass
class OverheadBar:
    implementation: str
    colour: str
    overhead_s: float
    arithmetic_s: float  # the size's FLOPs at the fitted throughput
    median: float  # the measured step, for comparison


@dataclass
class OverheadPanel:
    id: str
    title: str
    caption: str
    alt: str
    size: str
    bars: list = field(default_factory=list)  # [OverheadBar], largest overhead last
    poor: list = field(default_factory=list)  # [(implementation, why)]: left out


def overhead_panels(groups, collection, palette):
    """One stacked-bar panel per compared group (overhead.Group) at the group's primary size."""
    frame = collection.frame
    panels = []
    for group in groups:
        machine, workload, device, dtype, family = group.key
        rows = frame[(frame["machine"] == machine) & (frame["workload"] == workload) & (frame["device"] == device)
                     & (frame["dtype"] == dtype)]
        size = primary_size(rows)
        title = f"{machine} · {workload} · {device} · {dtype} · where the time goes at {size}"
        panel = OverheadPanel(
            f"overhead-{len(panels)}", title,
            f"Each step at {size} split by the fit over the sizes {family}: the fixed cost per step (dark) "
            "and the arithmetic, the step's FLOPs at the fitted throughput (light); the diamond is the "
            "measured median. Implementations whose fit is poor are left out (the Where the time goes table says why).",
            f"Overhead against arithmetic for {title}", size)
        for fit in sorted(group.fits, key=lambda fit: fit.overhead_s):
            if fit.poor:
                panel.poor.append((fit.implementation, fit.poor))
                continue
            at = [index for index, label in enumerate(fit.sizes) if label == size]
            flops = fit.flops[at[0]] if at else None
            if flops is None:
                continue
            panel.bars.append(OverheadBar(fit.implementation, palette(fit.implementation), fit.overhead_s,
                                          flops / fit.throughput, float(fit.medians[at[0]])))
        if panel.poor:
            panel.caption += f" Left out: {', '.join(name for name, _ in panel.poor)}."
        if panel.bars:
            panels.append(panel)
    return panels


def fitted_lines(panel, fit_list):
    """Give each sweep line its fitted curve (FLOPs grid, seconds), where its fit is good."""
    good = {}  # where several families of sizes were fitted, the one with the most sizes
    for fit in sorted((fit for fit in fit_list if not fit.poor), key=lambda fit: len(fit.flops)):
        good[(fit.machine, fit.implementation, fit.device, fit.dtype)] = fit
    for line in panel.lines:
        fit = good.get((panel.machine, line.implementation, line.device, panel.dtype))
        if fit is not None:
            grid = np.geomspace(fit.flops[0], fit.flops[-1], 40)
            line.fitted = (grid, fit.time(grid))
