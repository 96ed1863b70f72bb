"""Versions: the environments of one run side by side (`sidebyside run --env` twice or more).

Shown only where a run has two environments or more: per case, one column
per environment (the median step time), then for each environment after the
first the change against the first and its verdict, made by the same
function as `sidebyside compare` (sidebyside.report.compare.case_change):
a change only where every round of one lies beyond every round of the other
by more than the noise margin, "tie (within noise)" where they do not
separate. Above the table, each environment's requirements and the versions
they installed; below it, a chart of the medians with their rounds' range.
"""

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

from sidebyside.report import compare
from sidebyside.report import formatting as fmt
from sidebyside.report.figures import STYLE, FigurePanel, legend_outside, new_figure, plot_label, render
from sidebyside.report.merge import value
from sidebyside.report.tables import Figures, Section, Table, Text, ordered, step_cell

ORDER = 45
TIE = "tie (within noise)"
CASE_COLUMNS = ("workload", "device", "size_label", "dtype", "implementation")
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def sections(context):
    groups = environment_groups(context.collection)
    if not groups:
        return None
    blocks = []
    for number, (source, members) in enumerate(groups):
        if len(groups) > 1:
            blocks.append(Text([f"From {source}"], css="heading"))
        blocks.append(Text(version_lines(members)))
        name = "versions" if number == 0 else f"versions-{number + 1}"
        table = context.table(lambda collection, members=members, name=name: versions_table(collection, members, name))
        blocks.append(table)
        chart = versions_chart(context.collection, members, name)
        if chart is not None:
            blocks.append(Figures([chart]))
    return Section("versions", "Versions side by side", blocks, nav="Versions")


def environment_groups(collection):
    """[(source, [(label, environment name, its record)])]: each run's environments, where it has two or more."""
    groups = {}
    for label, machine, document in collection.machines:
        name = machine.get("environment")
        if name is None:
            continue
        record = (machine.get("environments") or {}).get(name) or {}
        source = str(document["source"])  # "results.json [np2]": each environment's part of one file
        source = source[: -len(f" [{name}]")] if source.endswith(f" [{name}]") else source
        groups.setdefault(source, []).append((label, name, record))
    return [(source, members) for source, members in groups.items() if len(members) >= 2]


def version_lines(members):
    """One line per environment: its requirements and what they installed, or its interpreter."""
    lines = []
    for _, name, record in members:
        installed = ", ".join(f"{key} {fmt.text(version)}" for key, version in (record.get("installed") or {}).items())
        if record.get("error"):
            lines.append(f"{name}: {record.get('requirements')}: could not be built: {record['error']}")
        elif record.get("requirements"):
            lines.append(f"{name}: {record['requirements']} → {installed or 'installed'}"
                         + (" (from the cache)" if record.get("cached") else ""))
        else:
            frameworks = ", ".join(f"{key} {fmt.text(version)}" for key, version in
                                   (record.get("frameworks") or {}).items())
            lines.append(f"{name}: {record.get('executable') or 'its interpreter'}"
                         + (f" ({frameworks})" if frameworks else ""))
    return lines


def cases(collection, members):
    """[(case, {environment name: row dict})] in the report's order: the rows of these environments by case."""
    labels = {label: name for label, name, _ in members}
    frame = ordered(collection.frame[collection.frame["machine"].isin(list(labels))], collection.labels)
    found = {}
    for row in frame.itertuples(index=False):
        case = tuple(getattr(row, column) for column in CASE_COLUMNS)
        found.setdefault(case, {}).setdefault(labels[row.machine], row._asdict())
    return list(found.items())


def verdict_text(change):
    return TIE if change.verdict == compare.NOT_SIGNIFICANT else change.verdict


def cell(row):
    if row is None:
        return "not run"
    if row["status"] not in compare.TIMED:
        return fmt.status_text(row["status"], row["reason"], row.get("diverged_at"))
    return step_cell(row["median"], row["unstable"])


def versions_table(collection, members, name="versions"):
    names = [environment for _, environment, _ in members]
    first, later = names[0], names[1:]
    unbuilt = {environment for _, environment, record in members if record.get("error")}
    data_rows, display_rows = [], []
    for case, rows in cases(collection, members):
        data = dict(zip(("workload", "device", "size", "dtype", "implementation"), case))
        display = dict(zip(("Workload", "Device", "Size", "Dtype", "Implementation"), case))
        for environment in names:
            row = None if environment in unbuilt else rows.get(environment)
            data[f"{environment}_median_s"] = value(row["median"]) if row and row["status"] in compare.TIMED else None
            display[environment] = "not built (see above)" if environment in unbuilt else cell(row)
        for environment in later:
            before, after = rows.get(first), rows.get(environment)
            if unbuilt & {first, environment}:
                before = after = None
            change = compare.case_change(before, after) if before and after else None
            data[f"{environment}_change_percent"] = change and change.percent
            data[f"{environment}_p_value"] = change and change.p_value
            data[f"{environment}_verdict"] = change and verdict_text(change)
            display[f"{environment}: change"] = (compare.change_text(change, before["status"], after["status"])
                                                 if change else fmt.MISSING)
            display[f"{environment}: verdict"] = verdict_text(change) if change else fmt.MISSING
        data_rows.append(data)
        display_rows.append(display)
    if not display_rows:
        return None
    return Table(name, f"Median step time in each environment, against {first}", pd.DataFrame(data_rows),
                 pd.DataFrame(display_rows), [""] * len(display_rows),
                 note=f"One column per environment: the median step time (the median of its rounds). Change: of "
                      f"the median from {first}; verdict: a change only where every round of one lies beyond every "
                      f"round of the other by more than the noise margin (exact Mann–Whitney U on the rounds, p < "
                      f"{compare.ALPHA:g}), in the rounds and in the rounds over their drift canaries alike; "
                      f"“{TIE}” where they do not separate; at least {compare.MIN_ROUNDS} rounds a side "
                      "(`sidebyside compare RUN --between`, the same rule).")


def versions_chart(collection, members, name="versions"):
    """Horizontal bars: each case's median in each environment, a line over its rounds' range; None if nothing ran."""
    names = [environment for _, environment, _ in members]
    legends = {environment: environment + (f" ({', '.join(f'{k} {v}' for k, v in record['installed'].items())})"
                                           if record.get("installed") else "") for _, environment, record in members}
    timed = [(case, rows) for case, rows in cases(collection, members)
             if any(row["status"] in compare.TIMED and value(row["median"]) for row in rows.values())]
    if not timed:
        return None
    several = len({case[:4] for case, _ in timed}) > 1
    labels = [plot_label(case[4] + (f" ({case[1]}, {case[3]}, {case[2]})" if several else ""), 60)
              for case, _ in timed]
    height = 0.8 / len(names)
    with matplotlib.rc_context(STYLE):
        figure = new_figure(10, 1.2 + 0.35 * len(timed) * len(names), left_labels=labels)
        axes = figure.subplots()
        for index, environment in enumerate(names):
            medians, low, high = [], [], []
            for _, rows in timed:
                row = rows.get(environment)
                median = value(row["median"]) if row and row["status"] in compare.TIMED else None
                spread = [x for x in (value(row["round_medians"]) or []) if x] if median else []
                medians.append(median or np.nan)
                low.append(median - min(spread) if spread else 0)
                high.append(max(spread) - median if spread else 0)
            positions = np.arange(len(timed)) - 0.4 + height * (index + 0.5)
            axes.barh(positions, medians, height, xerr=[np.maximum(low, 0), np.maximum(high, 0)],
                      color=COLOURS[index % len(COLOURS)], label=plot_label(legends[environment], 60), capsize=2)
        axes.set_yticks(np.arange(len(timed)), labels)
        axes.invert_yaxis()
        axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt.seconds(x)))
        axes.set_xlabel("median step time (lines: the range of the rounds' medians)")
        legend_outside(axes, figure)
        title = f"Step time in each environment: {', '.join(names)}"
        return render(figure, FigurePanel(name, title,
                                          "One bar per environment for each case: the median step time, and "
                                          "a line over the range of its rounds' medians. Shorter is faster.",
                                          f"Bar chart of the median step time of each case in {', '.join(names)}"))
