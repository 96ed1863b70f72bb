"""Where the time goes: each implementation's step time fitted as a fixed cost plus arithmetic.

Over the sizes an implementation ran (the full sizes and the sweep), its
median step time t is fitted against the step's FLOPs F as

    t = overhead + F / throughput

the overhead being what a step costs whatever its size (dispatch, Python,
graph calls, allocation, synchronization) and the throughput the rate at
which it does arithmetic once that no longer matters. The fit minimizes the
relative residuals (every size counts alike, however long its steps) with a
robust loss (scipy's soft L1), so one disturbed size cannot pull the line;
both parameters are kept non-negative.

The uncertainty comes from the rounds: a round ran every size of an
implementation in one fresh process, so each round is fitted on its own,
and the spread of those fits is the interval. A fit is called poor when a
size's residual exceeds what the rounds' own spread at that size (and a
floor of POOR_FLOOR) can explain, or where a size between the smallest and
the largest, held out, is predicted by the fit of the others more than
HELD_OUT off (the check that the two numbers describe the implementation
rather than the points): the report then says so and prints no figures
for it.
"""

from dataclasses import dataclass, field

import numpy as np

from sidebyside.report.merge import value

MIN_SIZES = 3  # two parameters and one size to spare
POOR_FLOOR = 0.10  # a residual within this share of the step time is never called poor
RATE_CHANGE = 0.2  # a poor fit names both rates where the smallest sizes' and the largest sizes' differ by this
RAMP = 0.3  # cores: CPU use that grows this much from the smallest size to the largest is named in a poor fit
HELD_OUT = 0.15  # a fit that misses a held-out size by more is poor, whatever the rounds' spread
WITHIN = 0.10  # "within 10 % of the fastest"
KEYS = ["machine", "workload", "device", "dtype", "family", "implementation"]
BATCH = "N"  # the dimension a family of sizes varies


@dataclass
class Fit:
    """One implementation's line on one machine, device and dtype; seconds and FLOP/s."""

    machine: str
    workload: str
    device: str
    dtype: str
    family: str  # what its sizes share: "N×1000×100×10", the batch N varying
    implementation: str
    flops: np.ndarray  # per size, ascending
    sizes: list  # their labels
    batches: list  # their N (None where a size has none)
    medians: np.ndarray  # seconds per step
    overhead_s: float
    throughput: float  # FLOP/s
    overhead_range: tuple | None  # (low, high) over the rounds' own fits
    throughput_range: tuple | None
    residuals: np.ndarray  # (fit - median) / median per size
    noise: np.ndarray  # the rounds' spread per size: twice their median absolute deviation over the median
    held_out: np.ndarray  # leave-one-out: (prediction - median) / median per size between the smallest and the
    #                       largest, NaN at those two (the fit is not claimed beyond the sizes run)
    peak_gflops: float | None = None
    busy: np.ndarray | None = None  # cores busy per size (CPU seconds over wall seconds), NaN where unknown
    poor: str = ""  # why the fit is not shown, "" where it is

    def time(self, flops):
        return self.overhead_s + np.asarray(flops, dtype=float) / self.throughput

    @property
    def worst_held_out(self):
        finite = np.abs(self.held_out[np.isfinite(self.held_out)])
        return float(finite.max()) if finite.size else None

    @property
    def peak_share(self):
        return self.throughput / 1e9 / self.peak_gflops if self.peak_gflops else None


def fit_line(flops, times):
    """(overhead s, seconds per FLOP) of times ≈ overhead + flops · rate, robust in relative terms; None where
    it cannot be fitted (fewer than two sizes, or no FLOPs that grow)."""
    flops, times = np.asarray(flops, dtype=float), np.asarray(times, dtype=float)
    good = np.isfinite(flops) & np.isfinite(times) & (times > 0) & (flops > 0)
    flops, times = flops[good], times[good]
    if len(np.unique(flops)) < 2:
        return None
    from scipy.optimize import least_squares  # its 0.4 s import only where a fit is drawn

    f_unit, t_unit = np.median(flops), np.median(times)  # scaled, so both parameters are near 1
    x, y = flops / f_unit, times / t_unit
    # A start from the weighted least squares (weights 1/t: relative residuals), then the robust fit.
    design = np.column_stack([np.ones_like(x), x]) / y[:, None]
    start, *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    start = np.clip(start, 1e-9, None)
    result = least_squares(lambda p: (p[0] + p[1] * x - y) / y, start, bounds=([0.0, 1e-12], [np.inf, np.inf]),
                           loss="soft_l1", f_scale=0.05)
    overhead, slope = result.x
    return float(overhead * t_unit), float(slope * t_unit / f_unit)


def round_medians(cell, median):
    """A row's round medians as floats (NaN where one is missing), or [median] where it kept none."""
    rounds = value(cell)
    if isinstance(rounds, (list, tuple)) and rounds:
        return [float(r) if value(r) is not None else np.nan for r in rounds]
    return [median]


def fit_rows(rows):
    """A Fit of one implementation's rows (one per size; ok, timed, with FLOPs), or None below MIN_SIZES."""
    rows = rows.sort_values("flops")
    flops = np.array([float(value(f)) for f in rows["flops"]])
    medians = np.array([float(value(m)) for m in rows["median"]])
    if len(np.unique(flops)) < MIN_SIZES:
        return None
    line = fit_line(flops, medians)
    if line is None:
        return None
    overhead, rate = line
    first = rows.iloc[0]
    fit = Fit(first["machine"], first["workload"], first["device"], first["dtype"], first["family"],
              first["implementation"],
              flops, list(rows["size_label"]), [batch(size) for size in rows["size"]], medians, overhead, 1 / rate, None, None,
              (overhead + flops * rate - medians) / medians, np.full(len(flops), np.nan),
              np.full(len(flops), np.nan), value(first["peak_gflops"]))
    rounds = [round_medians(cell, median) for cell, median in zip(rows["round_medians"], medians)]
    fit.busy = np.array([np.nan if value(u) is None else float(value(u)) for u in rows["cpu_utilization"]])
    fit.noise = np.array([spread(r, m) for r, m in zip(rounds, medians)])
    fits = [fit_line(flops, [r[k] for r in rounds]) for k in range(min(len(r) for r in rounds))]
    fits = [one for one in fits if one is not None]
    if len(fits) > 1:
        fit.overhead_range = (min(o for o, _ in fits), max(o for o, _ in fits))
        fit.throughput_range = (min(1 / r for _, r in fits), max(1 / r for _, r in fits))
    for left in range(1, len(flops) - 1):
        kept = np.arange(len(flops)) != left
        other = fit_line(flops[kept], medians[kept])
        if other is not None:  # None below two distinct sizes
            fit.held_out[left] = (other[0] + flops[left] * other[1] - medians[left]) / medians[left]
    fit.poor = poor_reason(fit)
    return fit


def spread(rounds, median):
    """Twice the rounds' median absolute deviation over their median: one disturbed round does not widen it
    (NaN with fewer than three rounds)."""
    rounds = np.asarray(rounds, dtype=float)
    if len(rounds) < 3 or not np.all(np.isfinite(rounds)) or not median:
        return np.nan
    return float(2 * np.median(np.abs(rounds - np.median(rounds))) / median)


def poor_reason(fit):
    """Why the line does not describe the points, or "": a residual beyond the rounds' spread and the floor, or
    a held-out size missed by more than HELD_OUT; then how the rate of arithmetic changes (`rate_change`) and the
    CPU use where it grows with the size (`ramp`)."""
    reason = miss(fit)
    return reason + rate_change(fit) + ramp(fit) if reason else ""


def rate_change(fit):
    """Where the rate of arithmetic between the two smallest sizes and between the two largest differs by
    RATE_CHANGE or more, both rates (added FLOPs over added seconds): what a poor fit's line would have hidden."""
    if len(fit.flops) < 4:
        return ""
    (low, high) = (float((fit.flops[j] - fit.flops[i]) / (fit.medians[j] - fit.medians[i]))
                   if fit.medians[j] > fit.medians[i] else np.nan for i, j in ((0, 1), (-2, -1)))
    if not (np.isfinite(low) and np.isfinite(high) and abs(high - low) >= RATE_CHANGE * min(low, high)):
        return ""

    def span(i, j):
        if fit.batches[i] is None or fit.batches[j] is None:
            return f"{fit.sizes[i]} to {fit.sizes[j]}"
        return f"N = {fit.batches[i]} to {fit.batches[j]}"

    return (f"; its arithmetic runs at {low / 1e9:.0f} GFLOP/s from {span(0, 1)} and at {high / 1e9:.0f} GFLOP/s "
            f"from {span(-2, -1)}")


def ramp(fit):
    """Where the cores busy grow by RAMP or more from the smallest size to the largest: the implementation
    runs more of its work in parallel as the size grows (Eigen, under TensorFlow, splits only costly ops), so its
    rate of arithmetic is no constant, and a line through all sizes misses the middle ones."""
    busy = fit.busy if fit.busy is not None else np.array([np.nan])
    if not (np.isfinite(busy[0]) and np.isfinite(busy[-1]) and busy[-1] - busy[0] >= RAMP):
        return ""
    return (f"; its CPU use grows from {busy[0]:.1f} to {busy[-1]:.1f} cores with the size (more of its work "
            f"runs in parallel at the larger sizes)")


def miss(fit):
    """The worst size off the line beyond its noise, or the worst held-out size, in words; "" for neither."""
    allowed = np.fmax(np.nan_to_num(fit.noise, nan=0.0), POOR_FLOOR)
    beyond = np.abs(fit.residuals) > allowed
    if beyond.any():
        worst = int(np.argmax(np.abs(fit.residuals) - allowed))
        return (f"poor fit: at {fit.sizes[worst]} the line is {100 * fit.residuals[worst]:+.0f} % off the median "
                f"(the rounds spread {100 * np.nan_to_num(fit.noise[worst]):.0f} %)")
    missed = np.nan_to_num(np.abs(fit.held_out), nan=0.0)
    if missed.max(initial=0.0) > HELD_OUT:
        worst = int(np.argmax(missed))
        return (f"poor fit: {fit.sizes[worst]} held out is predicted {100 * fit.held_out[worst]:+.0f} % off its "
                f"median")
    return ""


def fits(frame):
    """[Fit] for every implementation, machine, device and dtype with MIN_SIZES sizes or more (`frame`: a
    merge.Collection's)."""
    usable = frame[(frame["status"] == "ok") & frame["median"].notna() & frame["flops"].notna()]
    usable = usable.assign(family=[family(size, label) for size, label in zip(usable["size"], usable["size_label"])])
    found = []
    for key, rows in usable.groupby(KEYS, sort=False):
        rows = rows.drop_duplicates("size_label")
        if rows["size_label"].nunique() < MIN_SIZES:
            continue
        try:
            fit = fit_rows(rows)
        except (ValueError, TypeError, ArithmeticError):  # a foreign file's absurd numbers: no fit, no crash
            fit = None
        if fit is not None:
            found.append(fit)
    return found


def family(size, label):
    """The sizes fitted together: those that differ in the batch N alone ("N×1000×100×10")."""
    if not isinstance(size, dict) or BATCH not in size:
        return str(label)
    return "×".join(BATCH if key == BATCH else str(dimension) for key, dimension in size.items())


def batch(size):
    """N of a size, where the size has one."""
    return size.get(BATCH) if isinstance(size, dict) else None


@dataclass
class Reach:
    """From which size run an implementation's measured median stays within WITHIN of the fastest one."""

    fit: Fit
    from_flops: float | None  # the FLOPs of that size; None: not within at the largest size run
    from_size: tuple | None  # (label, N) of that size
    everywhere: bool = False


@dataclass
class Crossing:
    faster_small: str  # the faster at the smallest size
    faster_large: str  # ... and at the largest
    flops: float  # where their lines cross
    size: tuple | None  # (label, N) of the first size run at or above it


@dataclass
class Group:
    """The fits of one machine, workload, device and dtype, compared."""

    key: tuple  # (machine, workload, device, dtype, family)
    fits: list  # [Fit], good and poor
    reach: list = field(default_factory=list)  # [Reach], every fit's
    crossings: list = field(default_factory=list)  # [Crossing] of good fits that change order


def first_size_at(fit_list, flops):
    """(label, N) of the first size run (by any of the fits) with at least `flops` FLOPs per step."""
    points = sorted({(f, s, n) for fit in fit_list for f, s, n in zip(fit.flops, fit.sizes, fit.batches)},
                    key=lambda point: point[0])
    return next(((s, n) for f, s, n in points if f >= flops * (1 - 1e-9)), None)


def compared(fit_list):
    """[Group]: for each machine, workload, device and dtype, from which size each implementation stays within
    WITHIN of the fastest (measured medians, every fit), and which good fits change order (each at least WITHIN
    faster at one end of the sizes run)."""
    groups = {}
    for fit in fit_list:
        groups.setdefault((fit.machine, fit.workload, fit.device, fit.dtype, fit.family), []).append(fit)
    result = []
    for key, members in groups.items():
        group = Group(key, members)
        if len(members) >= 2:
            group.reach = [reach(fit, members) for fit in members]
        good = [fit for fit in members if not fit.poor]
        if len(good) >= 2:
            group.crossings = crossings(good, min(fit.flops[0] for fit in good), max(fit.flops[-1] for fit in good))
        result.append(group)
    return result


def reach(fit, members):
    """Where `fit`'s medians come within WITHIN of the fastest median at each of its sizes, to the largest."""
    fastest = {}
    for other in members:
        for flops, median in zip(other.flops, other.medians):
            fastest[flops] = min(median, fastest.get(flops, np.inf))
    inside = [median <= fastest[flops] * (1 + WITHIN) for flops, median in zip(fit.flops, fit.medians)]
    if all(inside):
        return Reach(fit, float(fit.flops[0]), (fit.sizes[0], fit.batches[0]), everywhere=True)
    last_outside = max(index for index, ok in enumerate(inside) if not ok)
    if last_outside == len(inside) - 1:
        return Reach(fit, None, None)
    first = last_outside + 1
    return Reach(fit, float(fit.flops[first]), (fit.sizes[first], fit.batches[first]))


def crossings(good, low, high):
    found = []
    for index, one in enumerate(good):
        for other in good[index + 1:]:
            small = one.time(low) / other.time(low)
            large = one.time(high) / other.time(high)
            if not ((small < 1 / (1 + WITHIN) and large > 1 + WITHIN) or (small > 1 + WITHIN and large < 1 / (1 + WITHIN))):
                continue
            # overhead_a + F/ra = overhead_b + F/rb
            slope = 1 / one.throughput - 1 / other.throughput
            flops = (other.overhead_s - one.overhead_s) / slope
            first, second = (one, other) if small < 1 else (other, one)
            found.append(Crossing(first.implementation, second.implementation, float(flops),
                                  first_size_at(good, flops)))
    return sorted(found, key=lambda crossing: crossing.flops)
