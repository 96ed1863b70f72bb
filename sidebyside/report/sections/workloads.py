"""The other workloads' own sections: one per workload in the files that the summary does not rank.

Each comes after the timing: what the workload's `section` returns (its
heading, figures and tables, also saved as CSV), then its code side by side.
A workload that says nothing more (`Workload.section`'s default, and a
workload a result file names that is not installed here) gets
`entries_section`: one row per entry with its status, step time, agreement
and memory. A workload whose section raises shows one line saying so.
"""

import pandas as pd

from sidebyside.report import formatting as fmt
from sidebyside.report.sections import drawn
from sidebyside.report.tables import Section, Table, Text, ordered, status_class, step_cell

ORDER = 50


def sections(context):
    in_files = set(context.everything.frame["workload"])
    return [section for workload in context.workloads if not workload.main and workload.name in in_files
            for section in drawn(workload.title or workload.name, lambda: own_section(context, workload))]


def own_section(context, workload):
    rows = context.collection.only([workload.name])
    section = (workload.section(rows, context.lines_of_code.get(workload.name, {}), context.palette)
               or entries_section(workload.name, workload.title or workload.name, rows))
    if section is not None:
        section.css = section.css or "workload"
        if context.code.get(workload.name):
            section.blocks += [Text(["Code side by side"], css="heading", markdown=False), context.code[workload.name]]
    return section


def entries_section(name, title, collection):
    """One row per entry: what ran, its status, its time, its agreement."""
    frame = ordered(collection.frame, collection.labels)
    if frame.empty:
        return None
    data = frame[["machine", "device", "dtype", "size_label", "implementation", "framework", "status", "reason",
                  "median", "agreement", "peak_memory_bytes"]].reset_index(drop=True)
    display = pd.DataFrame(
        {
            "Machine": frame["machine"], "Device": frame["device"], "Dtype": frame["dtype"],
            "Size": frame["size_label"], "Implementation": frame["implementation"],
            "Status": [fmt.status_text(s, r, d) for s, r, d in zip(frame["status"], frame["reason"],
                                                                     frame["diverged_at"])],
            "Step (median)": [step_cell(m, u) for m, u in zip(frame["median"], frame["unstable"])],
            "Agreement": [fmt.general(x) for x in frame["agreement"]],
        }
    )
    classes = ["" if s == "ok" else status_class(s) for s in frame["status"]]
    table = Table(f"workload_{name}", title, data, display, classes, facet="Machine",
                  note="Every entry of this workload, in the order of the files.")
    return Section(f"workload-{name}", title, [table])
