"""A sidebyside.report.compare.Comparison as people and programs read it: a rich table, Markdown, CSV.

The terminal and the Markdown show the same table: one row per case in both
files (those "n/a" in both counted below it, not listed), the case's fields that are the same in every row said once above it
(so the table fits an 80-column terminal; the implementation name is never
cut, the other columns wrap), then the cases only one file has. The CSV
keeps every field of every case, those of one file only included, with raw
numbers (seconds, percent, p).
"""

import pandas as pd

from sidebyside.report import formatting as fmt
from sidebyside.report import markdown
from sidebyside.report.build import csv_safe
from sidebyside.report.compare import ALPHA, CASE, MIN_ROUNDS, NOT_SIGNIFICANT, TIMED, case_name, change_text, p_text
from sidebyside.rounds import MACHINE_MOVED
from sidebyside.results import one_line

CASE_HEADINGS = {"workload": "Workload", "implementation": "Implementation", "device": "Device",
                 "dtype": "Dtype", "size_label": "Size"}
LEGEND = (f"change: of the median of the round medians, before to after; canary: of the drift canary timed "
          f"beside each round (the machine's own change); normalized: of the rounds over their canaries. "
          f"{NOT_SIGNIFICANT}: no significant difference (the rounds of one side do not all lie beyond the other's "
          f"by the noise margin, or the exact Mann–Whitney U test on the rounds gives p ≥ {ALPHA:g}); a change "
          f"must show in the rounds and in the normalized rounds alike, but where the canary moved by more than "
          f"{MACHINE_MOVED:.0%} the normalized rounds alone decide. At least {MIN_ROUNDS} rounds a side.")


def percent_text(fraction):
    return fmt.MISSING if fraction is None else f"{100 * fraction:+.1f}%"


def median_text(median, status):
    """A side's median, or its status where it has none to compare."""
    return fmt.seconds(median) if status in (*TIMED, "disagrees") and median is not None else status


def shared_fields(frame):
    """{case field: value} of the fields every row has the same (the implementation always varies)."""
    if frame.empty:
        return {}
    return {key: frame[key].iloc[0] for key in CASE
            if key != "implementation" and frame[key].nunique(dropna=False) == 1}


def not_run_in_either(frame):
    """Which rows are "n/a" in both files (a device neither machine has, a framework neither installed)."""
    return (frame["status_before"] == "n/a") & (frame["status_after"] == "n/a")


def compared(comparison):
    """The rows of the tables: cases n/a in both files are left out (footer_lines counts them)."""
    frame = comparison.frame
    return frame[~not_run_in_either(frame)]


def display_frame(comparison, frame=None, said=()):
    """(the fields said once, the table of formatted cells) for the terminal and Markdown.

    `frame`: some of the compared rows (default all); `said`: case fields
    the caller names above the table (a group's heading), left out too.
    """
    frame = compared(comparison) if frame is None else frame
    shared = shared_fields(frame)
    columns = {CASE_HEADINGS[key]: frame[key] for key in CASE if key not in shared and key not in said}
    columns |= {
        "Before": [median_text(m, s) for m, s in zip(frame["median_before"], frame["status_before"])],
        "After": [median_text(m, s) for m, s in zip(frame["median_after"], frame["status_after"])],
        "Change": [change_text(c, b, a) for c, b, a in
                   zip(frame["change"], frame["status_before"], frame["status_after"])],
        "Canary": [percent_text(change.canary) for change in frame["change"]],
        "Normalized": [percent_text(change.normalized) for change in frame["change"]],
        "Verdict": [change.verdict for change in frame["change"]],
        "p": [p_text(change) for change in frame["change"]],
        "Agrees": [f"{b} → {a}" for b, a in zip(frame["agrees_before"], frame["agrees_after"])],
    }
    return shared, pd.DataFrame(columns)


def describe_source(side, document):
    machine = one_line(document["machine"]["name"] or "?", 120)
    created = f", {one_line(document['created'], 40)}" if document["created"] else ""
    return f"{side}: {one_line(document['source'], 300)} (machine {machine}{created})"


def header_lines(comparison, shared):
    lines = [describe_source("before", comparison.before), describe_source("after", comparison.after)]
    if shared:
        lines.append("in every row: " + ", ".join(one_line(x, 80) for x in shared.values()))
    return lines


def footer_lines(comparison):
    lines = [LEGEND]
    idle = comparison.frame[not_run_in_either(comparison.frame)]
    if not idle.empty:
        reasons = [change.verdict.removeprefix("before: ") for change in idle["change"]]
        counts = pd.Series(reasons).value_counts(sort=False)
        lines.append(f"n/a in both files, not in the table: {len(idle)} case{'s' if len(idle) != 1 else ''} ("
                     + "; ".join(f"{reason}: {count}" for reason, count in counts.items()) + ")")
    if comparison.vanished:
        lines.append(f"only before (vanished): {len(comparison.vanished)}")
        lines += [f"  {case_name(case)}" for case in comparison.vanished]
    if comparison.appeared:
        lines.append(f"only after (appeared): {len(comparison.appeared)}")
        lines += [f"  {case_name(case)}" for case in comparison.appeared]
    return lines


def print_terminal(comparison, console=None):
    """The rich table, with the sources above and the lone cases below."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = console or Console()
    frame = compared(comparison)
    shared = shared_fields(frame)
    for line in header_lines(comparison, shared):
        console.print(Text(line))
    if frame.empty:
        console.print(Text("no case ran in both files"))
    # One table per group of the fields that vary but the implementation (a workload and size,
    # say), titled by them: fewer columns, so that the rest fits 80 columns without folding.
    grouping = [key for key in CASE if key not in shared and key != "implementation"]
    groups = frame.groupby(grouping, sort=False, dropna=False) if grouping else [((), frame)]
    for values, part in groups:
        values = values if isinstance(values, tuple) else (values,)
        _, display = display_frame(comparison, part, said=grouping)
        title = ", ".join(one_line(str(value), 80) for value in values) or None
        # No outer padding or column rules, so that more of 80 columns is left to the cells.
        table = Table(*display.columns, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                      title=Text(title) if title else None, title_justify="left")
        for column in table.columns:
            # Names are never cut: the implementation keeps its width, the other columns wrap.
            column.no_wrap = column.header == "Implementation"
            column.overflow = "fold"
        for cells in display.itertuples(index=False):
            table.add_row(*(Text(str(cell)) for cell in cells))  # Text, not markup: names are data
        console.print(table)
    for line in footer_lines(comparison):
        console.print(Text(line))


def markdown_text(comparison):
    """GitHub-flavoured Markdown: a heading, the sources, the table, the lone cases."""
    shared, display = display_frame(comparison)
    blocks = ["### sidebyside compare"]
    blocks.append("\n".join(f"- {markdown.escape(line)}" for line in header_lines(comparison, shared)))
    if display.empty:
        blocks.append("No case ran in both files.")
    else:
        blocks.append(markdown.table(list(display.columns), display.itertuples(index=False)))
    legend, *lone = footer_lines(comparison)
    blocks.append(markdown.escape(legend))
    if lone:
        blocks.append("\n".join(f"- {markdown.escape(line.strip())}" for line in lone))
    return "\n\n".join(blocks) + "\n"


def csv_frame(comparison):
    """Every case with raw values; cases of one file only have `in` "before only" / "after only"."""
    frame = comparison.frame
    changes = frame["change"]
    rows = pd.DataFrame({key if key != "size_label" else "size": frame[key] for key in CASE})
    rows["in"] = "both"
    rows = rows.assign(
        status_before=frame["status_before"], status_after=frame["status_after"],
        median_before_s=frame["median_before"], median_after_s=frame["median_after"],
        change_percent=[change.percent for change in changes],
        canary_change_percent=[None if change.canary is None else 100 * change.canary for change in changes],
        normalized_change_percent=[None if change.normalized is None else 100 * change.normalized
                                   for change in changes],
        machine_moved=[change.machine_moved for change in changes],
        p_value=[change.p_value for change in changes],
        significant=[change.significant for change in changes],
        verdict=[change.verdict for change in changes],
        rounds_before=frame["rounds_before"], rounds_after=frame["rounds_after"],
        agrees_before=frame["agrees_before"], agrees_after=frame["agrees_after"],
    )
    lone = [dict(zip(rows.columns[:5], case), **{"in": where})
            for where, cases in (("before only", comparison.vanished), ("after only", comparison.appeared))
            for case in cases]
    if lone:
        rows = pd.concat([rows, pd.DataFrame(lone, columns=rows.columns)], ignore_index=True)
    return rows


def csv_text(comparison):
    """pandas' CSV, every cell that could start a spreadsheet formula defused (sidebyside.report.build.csv_safe)."""
    return csv_frame(comparison).map(csv_safe).to_csv(index=False)
