"""Where the time goes: `--profile`'s breakdown of a steady step under each framework's profiler.

Shown only where some entry has a profile. Per case: the time inside
matrix-product kernels, inside every other kernel, and everything else
(dispatch, Python, allocation, synchronization: the profiled step's wall
time less its kernels), each as a share of the profiled step; beside them
the unprofiled step (the timed steps' median) and the profiler's overhead.
The parts are measured under the profiler, so where it slowed the step by
more than CHECK they describe a slowed step, and the table says so. A row
whose framework has no profiler (numpy) says so instead.
"""

import math

import pandas as pd

from sidebyside import frameworks
from sidebyside.report import formatting as fmt
from sidebyside.report.merge import value
from sidebyside.report.tables import GROUP, Section, Table, Text, case_columns, ordered

ORDER = 42  # after the timing (40)
CHECK = 0.10  # the parts sum to the unprofiled step within this share, or the profiler slowed it
PARTS = ("matmul_s", "other_kernels_s", "rest_s")
KEYS = ("machine", "device", "size_label", "dtype", "implementation")


def sections(context):
    if not any(isinstance(value(cell), dict) for cell in context.collection.frame["profile"]):
        return None
    intro = Text(["One steady-state step of each implementation under its framework's profiler (--profile), "
                  "averaged over the middle half of the profiled steps: the time inside matrix-product "
                  "kernels, inside every other kernel, and everything else (dispatch, Python, allocation, "
                  "synchronization: the profiled step less its kernels). The profiler's overhead is the "
                  "profiled step against the median of the same process's unprofiled steps."])
    table = context.table(lambda rows: profile_table(rows.only(context.main)))
    return Section("profile", "Where the time goes: profiler", [intro, table], nav="Profiler")


def number(x):
    """A finite, non-negative number from a file's free-form profile, else None (a string, a bool, NaN ...)."""
    x = value(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
        return None
    return float(x)


def figures(cell):
    """(profile dict or None, {field: number or None}) of one row's profile cell."""
    profile = value(cell)
    if not isinstance(profile, dict):
        return None, {}
    fields = {key: number(profile.get(key)) for key in ("wall_s", "unprofiled_s", "steps", *PARTS)}
    return profile, fields


def overhead(fields):
    wall, unprofiled = fields.get("wall_s"), fields.get("unprofiled_s")
    return wall / unprofiled - 1 if wall is not None and unprofiled else None


def check(profile, fields, status, reason, diverged_at, framework, backend):
    """The verdict of one row: the 10 % check, or why the row has no breakdown."""
    if profile is None:
        if value(status) != "ok":
            return fmt.status_text(status, reason, diverged_at)
        return "not profiled" if profiles(framework, backend) else "no profiler: see the fit"
    if value(profile.get("error")) is not None:
        return f"n/a: the profiler failed: {fmt.text(profile.get('error'))}"
    ratio = overhead(fields)
    if ratio is None or any(fields.get(key) is None for key in PARTS):
        return "n/a: the file's profile is incomplete"
    if abs(ratio) <= CHECK:
        return f"parts sum within {CHECK * 100:.0f} %"
    if ratio > 0:
        return f"profiler overhead {ratio * 100:.0f} %: the parts describe a slowed step"
    return f"profiled step {-ratio * 100:.0f} % faster than unprofiled: the parts describe a different step"


def profiles(framework, backend):
    """Whether the framework that computes a row (a Keras row's backend) has a profiler this suite reads."""
    computing = value(framework) if frameworks.computes(str(value(framework))) else value(backend)
    return frameworks.computes(str(computing)) and hasattr(frameworks.adapter(str(computing)), "profile")


def part_cell(part, wall):
    if part is None:
        return fmt.MISSING
    return f"{fmt.seconds(part)} ({fmt.percent(part / wall)})" if wall else fmt.seconds(part)


def profile_table(collection):
    """Every row of a case (machine, workload, device, size, dtype) in which some row has a profile."""
    frame = collection.frame
    profiled = frame["profile"].map(lambda cell: isinstance(value(cell), dict))
    cases = {tuple(row) for row in frame.loc[profiled, GROUP].itertuples(index=False)}
    shown = pd.Series([tuple(row) in cases for row in frame[GROUP].itertuples(index=False)], index=frame.index,
                      dtype=bool)
    frame = ordered(frame[shown], collection.labels)
    parsed = [figures(cell) for cell in frame["profile"]]
    fields = [numbers for _, numbers in parsed]
    verdicts = [check(profile, numbers, *row) for (profile, numbers), row in
                zip(parsed, zip(frame["status"], frame["reason"], frame["diverged_at"], frame["framework"],
                                frame["backend"]))]
    profilers = [fmt.text(profile.get("profiler"), 100) if profile else fmt.MISSING for profile, _ in parsed]
    data = pd.DataFrame({
        **case_columns(frame, keys=KEYS), "profiler": [None if p == fmt.MISSING else p for p in profilers],
        **{key: [numbers.get(key) for numbers in fields] for key in ("wall_s", *PARTS, "unprofiled_s")},
        "steps": pd.array([None if n.get("steps") is None else round(n["steps"]) for n in fields], dtype="Int64"),
        "overhead": [overhead(numbers) for numbers in fields],
        "check": verdicts,
    })
    display = pd.DataFrame({
        **case_columns(frame, titled=True, keys=KEYS), "Profiler": profilers,
        "Matrix products": [part_cell(n.get("matmul_s"), n.get("wall_s")) for n in fields],
        "Other kernels": [part_cell(n.get("other_kernels_s"), n.get("wall_s")) for n in fields],
        "Everything else": [part_cell(n.get("rest_s"), n.get("wall_s")) for n in fields],
        "Profiled step": [fmt.seconds(n.get("wall_s")) for n in fields],
        "Unprofiled step (median)": [fmt.seconds(n.get("unprofiled_s")) for n in fields],
        "Profiler overhead": [fmt.percent(overhead(n)) for n in fields],
        "Check": verdicts,
    })
    classes = ["" if verdict.startswith("parts sum") else "status-na" for verdict in verdicts]
    return Table(
        "profile", "Where the time goes in one steady step, under each framework's profiler", data, display,
        classes, facet="Machine",
        note="Matrix products: kernels named as products (mm, addmm, dot, gemm, MatMul, XLA's dot fusions); "
             "on the CPU an op's kernel is its own time, less the ops it calls. Everything else: the "
             "profiled step's wall time less the kernels. Profiler overhead: the profiled step over the "
             f"unprofiled median, less one; beyond {CHECK * 100:.0f} % the parts describe a step the profiler slowed.",
    )
