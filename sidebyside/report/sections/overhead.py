"""Where the time goes: each implementation's fitted fixed cost per step and throughput, where it comes within
10 % of the fastest, and where two change order (report/overhead.py fits them)."""

import pandas as pd

from sidebyside.report import formatting as fmt
from sidebyside.report import overhead
from sidebyside.report.tables import Section, Table, Text

ORDER = 41
METHOD = ("Each implementation's median step time t over the sizes it ran (the batch N varying) is fitted as "
          "t = overhead + FLOPs / throughput, by relative residuals with a robust loss; the ranges are the fits "
          "of each round alone. A fit is poor, and not used, where a size lies further from the line than its "
          "rounds' spread (and 10 %). Held out: each size between the smallest and the largest predicted by the "
          "fit of the others, the worst miss shown (over 15 %: poor). Within 10 % of the fastest: from which size "
          "on its measured median stays within 10 % of the fastest median at every size run.")


def sections(context):
    groups = context.fits or []
    if not groups:
        return None
    blocks = [Text([METHOD])]
    blocks.append(context.table(lambda _: fit_table(groups)))
    crossings = crossing_table(groups)
    if crossings is not None:
        blocks.append(crossings)
    return Section("overhead", "Where the time goes", blocks, nav="Overhead")


def size_text(size):
    """"N = 256" where the size has a batch, else its label."""
    if size is None:
        return fmt.MISSING
    label, batch = size
    return f"N = {batch}" if batch is not None else str(label)


def reach_text(reach):
    if reach is None:
        return "n/a"
    if reach.everywhere:
        return "at every size run"
    if reach.from_flops is None:
        return "not within the sizes run"
    return f"from {size_text(reach.from_size)} ({fmt.general(reach.from_flops / 1e6)} MFLOP) on"


def range_text(low_high, show):
    if not low_high:
        return ""
    low, high = low_high
    return f" ({show(low)} – {show(high)})"


def fit_table(groups):
    rows, display = [], []
    for group in groups:
        reach = {item.fit.implementation: item for item in group.reach}
        for fit in sorted(group.fits, key=lambda fit: (bool(fit.poor), fit.overhead_s)):
            found = reach.get(fit.implementation)
            held = fit.worst_held_out
            residual = float(abs(fit.residuals).max())
            rows.append({"machine": fit.machine, "workload": fit.workload, "device": fit.device, "dtype": fit.dtype,
                         "sizes": fit.family, "implementation": fit.implementation, "points": len(fit.flops),
                         "overhead_s": fit.overhead_s, "overhead_low_s": (fit.overhead_range or (None,))[0],
                         "overhead_high_s": (fit.overhead_range or (None, None))[1],
                         "throughput_gflops": fit.throughput / 1e9, "peak_share": fit.peak_share,
                         "worst_residual": residual, "worst_held_out": held, "poor": fit.poor or None,
                         "within_10pct_from_flops": found.from_flops if found else None,
                         "within_10pct_everywhere": found.everywhere if found else None})
            good = not fit.poor
            display.append({
                "Machine": fit.machine, "Device": fit.device, "Dtype": fit.dtype, "Sizes": fit.family,
                "Implementation": fit.implementation,
                "Fixed cost per step": (fmt.seconds(fit.overhead_s) + range_text(fit.overhead_range, fmt.seconds)
                                        if good else "n/a"),
                "Throughput": (f"{fmt.rate(fit.throughput / 1e9)} GFLOP/s"
                               + range_text(fit.throughput_range, lambda rate: fmt.rate(rate / 1e9))
                               if good else "n/a"),
                "Share of peak": fmt.percent(fit.peak_share) if good and fit.peak_share else "n/a",
                "Worst residual": f"{100 * residual:.0f} %",
                "Held out": f"{100 * held:.0f} %" if held is not None else "n/a",
                "Within 10 % of the fastest": reach_text(found),
                "Fit": "good" if good else fit.poor,
            })
    shown = pd.DataFrame(display)
    if shown["Machine"].nunique() <= 1:
        shown = shown.drop(columns="Machine")
    return Table("overhead", "Fixed cost and throughput, fitted", pd.DataFrame(rows), shown,
                 note="Fixed cost: what a step costs whatever its size (dispatch, Python, graph calls, allocation, "
                      "synchronization). Throughput: the rate of the arithmetic once that no longer matters, and "
                      "its share of the measured matmul peak. In brackets: the range of the rounds' own fits.")


def crossing_table(groups):
    pairs = [(group, crossing) for group in groups for crossing in group.crossings]
    if not pairs:
        return None
    data = pd.DataFrame([{"machine": group.key[0], "device": group.key[2], "dtype": group.key[3],
                          "sizes": group.key[4], "faster_small": crossing.faster_small,
                          "faster_large": crossing.faster_large, "crossing_flops": crossing.flops}
                         for group, crossing in pairs])
    display = pd.DataFrame([{
        "Device": group.key[2], "Dtype": group.key[3], "Sizes": group.key[4],
        "Faster at small sizes": crossing.faster_small, "Faster at large sizes": crossing.faster_large,
        "Lines cross at": f"{fmt.general(crossing.flops / 1e6)} MFLOP, first run at {size_text(crossing.size)}"}
        for group, crossing in pairs])
    return Table("crossings", "Where two implementations change order", data, display,
                 note=f"Pairs whose fitted lines cross between the smallest and the largest size run, each at least "
                      f"{100 * overhead.WITHIN:.0f} % faster than the other at one end.")
