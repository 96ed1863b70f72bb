"""Numbers and statuses as people read them: 412 µs, 1.84×, 23%, 12.3 MiB."""

import math

from sidebyside.report.merge import value
from sidebyside.results import one_line

MISSING = "—"


def present(x):
    return value(x) is not None


def seconds(x):
    """A duration with a unit that keeps three significant digits."""
    x = value(x)
    if x is None:
        return MISSING
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x * 1e9:.3g} ns"


def memory(x):
    x = value(x)
    if x is None:
        return MISSING
    for unit in ("B", "KiB", "MiB", "GiB"):
        if x < 1024:
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{x:.1f} TiB"


def percent(x):
    x = value(x)
    return MISSING if x is None else f"{100 * x:.1f}%"


def times(x):
    """A ratio like 1.84×; the form is chosen by the rounded figure, so 9.999… reads 10× as 10 does."""
    x = value(x)
    if x is None:
        return MISSING
    return f"{x:.2f}×" if x < 9.995 else f"{x:.3g}×" if x < 999.5 else f"{x:,.0f}×"


def general(x, significant=3):
    x = value(x)
    if x is None:
        return MISSING
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float) and math.isfinite(x):
        if x.is_integer() and 1000 <= abs(x) < 1e15:
            return f"{x:,.0f}"
        return f"{x:.{significant}g}"
    return one_line(x, 300)


def rate(x):
    """GFLOP/s: three significant digits, thousands written out (6,760 rather than 6.76e+03)."""
    x = value(x)
    if x is None:
        return MISSING
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def scientific(x):
    x = value(x)
    return MISSING if x is None else f"{x:.1e}"


def text(x, limit=300):
    x = value(x)
    return MISSING if x is None else one_line(x, limit)


def status_text(status, reason=None, diverged_at=None):
    """What a row that did not run cleanly shows: nothing is silently missing."""
    status, reason, diverged_at = value(status), value(reason), value(diverged_at)
    if status == "ok":
        return "ok"
    if status == "diverged":
        diverged_at = int(diverged_at) if diverged_at is not None else None
        where = f" at step {diverged_at}" if diverged_at is not None else ""
        return f"diverged{where}" + (f": {one_line(reason, 300)}" if reason else "")
    return f"{status}: {one_line(reason, 300)}" if reason else status


def agreement_text(agrees, agreement, tolerance):
    agrees, agreement, tolerance = value(agrees), value(agreement), value(tolerance)
    if agrees is None:
        return "n/a" if agreement is None else f"{agreement:.1e} (no tolerance)"
    word = "agrees" if agrees else "differs"
    if agreement is None:
        return word
    sign = "≤" if agrees else ">"
    bound = f" {sign} {tolerance:.0e}" if tolerance is not None else ""
    return f"{word} ({agreement:.1e}{bound})"


def plot_label(x, limit=48):
    """Text safe for matplotlib: no mathtext, no hidden legend entries."""
    label = one_line(x, limit).replace("$", r"\$")
    return " " + label if label.startswith("_") else label
