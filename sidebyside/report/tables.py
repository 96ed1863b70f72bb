"""What a report section is made of, and the cells its tables share.

A `Section` is one part of the report: a heading and its blocks in order.
A block is a `Table`, a `Text`, a `Figures` or a code.CodeSection, and says
its `kind`; html.py and markdown.py each render every section with one loop
over its blocks. The built-in sections (sidebyside/report/sections/) and the
workloads' own are all Sections.

A Table keeps two DataFrames with the same rows: `data`, the raw values
written to CSV (seconds as seconds, bytes as bytes), and `display`, the same
rows formatted for people, which the HTML and Markdown show. A table can be
faceted by machine: one HTML table per machine, one CSV for all.
"""

from dataclasses import dataclass, field

import pandas as pd

from sidebyside import implementations, ranking
from sidebyside.peak import UNSOUND, beats
from sidebyside.report import formatting as fmt
from sidebyside.report.merge import value

DEVICE_ORDER = {"cpu": 0, "cuda": 1}
NOT_AVAILABLE = "n/a"


@dataclass
class Table:
    kind = "table"
    name: str  # CSV file stem and HTML id
    title: str
    data: pd.DataFrame  # raw values, for CSV
    display: pd.DataFrame  # formatted strings, same rows
    classes: list = field(default_factory=list)  # one CSS class string per row
    facet: str | None = None  # display column that splits the HTML into one table per value
    note: str = ""
    css: str = ""  # the HTML table's class besides "data"
    markdown: bool = True  # shown in report.md too

    def parts(self):
        """[(heading or None, columns, [(css class, cells)])] for the templates."""
        # A value a result file left out (null, NaN) shows as "n/a", never as a crash or "nan".
        texts = [[cell if isinstance(cell, str) else "n/a" if cell is None or cell != cell else str(cell) for cell in cells]
                 for cells in self.display.itertuples(index=False)]
        rows = list(zip(self.classes or [""] * len(self.display), texts))
        columns = list(self.display.columns)
        if not self.facet or self.facet not in columns:
            return [(None, columns, [(css, list(cells)) for css, cells in rows])]
        position = columns.index(self.facet)
        kept = columns[:position] + columns[position + 1 :]
        parts, order = {}, []
        for css, cells in rows:
            cells = list(cells)
            heading = cells[position]
            if heading not in parts:
                parts[heading] = []
                order.append(heading)
            parts[heading].append((css, cells[:position] + cells[position + 1 :]))
        return [(heading, kept, parts[heading]) for heading in order]

    @property
    def empty(self):
        return self.display.empty


@dataclass
class Text:
    """Lines of text: paragraphs of class `css`, or with css "heading" sub-headings, "findings" a list,
    "warning" boxed warnings each led by `lead` in bold."""

    kind = "text"
    lines: list
    css: str = "note"
    lead: str = ""
    markdown: bool = True  # shown in report.md too


@dataclass
class Figures:
    """Charts: figures.Chart (PNG, listed at the end of report.md) or interactive.InteractiveChart (HTML only)."""

    kind = "figures"
    charts: list
    interactive: bool = False


@dataclass
class Section:
    """One part of the report, where `order` puts it (lowest first), rendered from its blocks in order.

    `markdown` False shows it on the page only. `failed`: the one line shown instead of a section that
    could not be drawn.
    """

    id: str  # the HTML id and the navigation's anchor
    title: str
    blocks: list = field(default_factory=list)
    order: int = 100
    nav: str = ""  # the navigation's link text, where shorter than the title
    markdown: bool = True
    failed: str = ""
    css: str = ""  # the <section>'s class

    @property
    def tables(self):
        return [block for block in self.blocks if block is not None and block.kind == "table"]

CASE = {"machine": "Machine", "workload": "Workload", "device": "Device", "size_label": "Size", "dtype": "Dtype",
        "implementation": "Implementation"}


def case_columns(frame, titled=False, keys=tuple(CASE)):
    """The columns that name a case: for a table's `data` (size_label as "size"), or titled for its `display`."""
    return {CASE[key] if titled else key.replace("size_label", "size"): frame[key] for key in keys}


def status_class(status):
    """A row's CSS class for a status other than ok: "status-na", "status-failed", ..."""
    return "status-" + {"n/a": "na"}.get(status, status)


def ordered(frame, labels):
    """Rows sorted by machine, workload, device, size, dtype; ok rows fastest first."""
    if frame.empty:
        return frame
    keys = pd.DataFrame(
        {
            "machine": frame["machine"].map(lambda label: labels.index(label) if label in labels else len(labels)),
            "device": frame["device"].map(lambda device: (DEVICE_ORDER.get(device, 2), device)),
            "flops": frame["flops"].map(lambda x: value(x) or 0),
            "not_ok": frame["status"] != "ok",
            "median": frame["median"].map(lambda x: value(x) if value(x) is not None else float("inf")),
        },
        index=frame.index,
    )
    frame = frame.assign(**{f"_{key}": column for key, column in keys.items()})
    frame = frame.sort_values(
        ["_machine", "workload", "_device", "_flops", "size_label", "dtype", "_not_ok", "_median", "implementation"],
        kind="stable",
    )
    return frame.drop(columns=[f"_{key}" for key in keys])


GROUP = ["machine", "workload", "device", "size_label", "dtype"]


def ranking_entry(row):
    """A frame row as the mapping sidebyside.ranking reads (plain Python values, no NaN)."""
    return {
        "status": value(row["status"]), "agrees": value(row["agrees"]),
        "threads": value(row["threads"]), "cpu_utilization": value(row["cpu_utilization"]),
        "step_time": {"median": value(row["median"]), "iqr": value(row["iqr"]),
                      "round_medians": value(row["round_medians"])},
        "extra": {"runnable_threads": value(row["runnable_threads"]),
                  "threads_read_back": value(row["threads_read_back"])},
    }


def rows_separated(a, b):
    """sidebyside.ranking.separated for two frame rows: whether their timing rounds tell them apart."""
    return ranking.separated(ranking_entry(a), ranking_entry(b))


def versus(ratio, apart):
    """A ratio of two step times, "1.50×"; where the two are not separated (`apart` false), the tie after
    it: "1.02×, tie (within noise)"."""
    return fmt.times(ratio) if apart else f"{fmt.times(ratio)}, {ranking.TIE}"


def hardware(device):
    """What a result on `device` is a result about: "CPU", "GPU"."""
    return {"cpu": "CPU", "cuda": "GPU"}.get(device, str(device))


def group_starts(frame):
    """CSS classes: "group-start" where a new comparison group begins, plus row status."""
    classes, previous = [], None
    for row in frame.itertuples(index=False):
        key = tuple(getattr(row, column) for column in GROUP)
        css = []
        if key != previous:
            css.append("group-start")
        previous = key
        if row.status != "ok":
            css.append(status_class(row.status))
        if row.unstable:
            css.append("unstable")
        classes.append(" ".join(css))
    return classes


TIMED = ("ok", "disagrees", "unchecked")  # statuses whose step time is shown, ranked ("ok") or not


def step_cell(median, unstable):
    text = fmt.seconds(median)
    return text + " ±" if unstable and text != fmt.MISSING else text


def over_peak(fraction):
    """Whether a share of peak (a frame's cell) is above 100 %: the step beat the measured peak (peak.beats)."""
    return beats(value(fraction))


def cores_cell(used, threads):
    """Cores kept busy against the threads asked for: "1.96 of 2"."""
    used, threads = value(used), value(threads)
    if used is None:
        return fmt.MISSING if threads is None else f"{fmt.MISSING} of {threads}"
    return f"{used:.2f}" + (f" of {threads}" if threads is not None else "")


def peak_cell(fraction):
    """A share of peak; above 100 % no number but UNSOUND, since no step can beat a sound peak."""
    return UNSOUND if over_peak(fraction) else fmt.percent(fraction)


# ----------------------------------------------------------------------------
# Each tuned variant and its idiomatic sibling (the summary's table, the findings' sentences)
# ----------------------------------------------------------------------------


def registry():
    """This checkout's registry of implementations: what the report says of them beyond the file
    (tuned pairs, why a first step is slow) is this checkout's."""
    return implementations.REGISTRY

def tuned_pairs():
    """{tuned name: (idiomatic sibling, what the tuned one changes)}, from the registry's `tuned_from` and `tuning`."""
    return {name: (spec.tuned_from, getattr(spec, "tuning", "") or "")
            for name, spec in registry().items() if getattr(spec, "tuned_from", None)}


def comparable_median(row):
    """The median step time of a row that may be compared (sidebyside.ranking's rule), else None."""
    if row is None or not ranking.rankable(ranking_entry(row)):
        return None
    return value(row["median"])


def limit_ratio(row):
    """Step time over the compute limit (FLOPs / measured peak): 1 / share of peak."""
    fraction = value(row["peak_fraction"]) if row is not None else None
    return 1.0 / fraction if fraction else None


def tuned_step_cell(row):
    """The step time of a row beside its pair, or why there is none to compare."""
    if row is None:
        return NOT_AVAILABLE
    if comparable_median(row) is not None:
        return step_cell(row["median"], row["unstable"])
    if row["status"] == "ok" and value(row["agrees"]) is not False:
        return NOT_AVAILABLE  # ran, but no timing
    status = "disagrees" if row["status"] == "ok" else row["status"]
    return fmt.status_text(status, row["reason"], row["diverged_at"])


def tuned_rows(collection, pairs):
    """One record per tuned row in the files: the row, its sibling's row in the same group (or None)."""
    frame = ordered(collection.frame, collection.labels)
    order = {name: index for index, name in enumerate(pairs)}
    records = []
    for _, group in frame.groupby(GROUP, sort=False):
        by_name = {}
        for _, row in group.iterrows():
            by_name.setdefault(row["implementation"], row)  # the first (fastest ok) row of a name
        for name in sorted((n for n in by_name if n in pairs), key=order.get):
            idiom, tuning = pairs[name]
            records.append((by_name[name], idiom, by_name.get(idiom), tuning))
    return records


def speedup(tuned, idiom):
    """Idiomatic step time over tuned step time, where both may be compared; else None."""
    mine, theirs = comparable_median(tuned), comparable_median(idiom)
    return theirs / mine if mine and theirs is not None else None
