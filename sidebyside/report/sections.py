"""A workload's own section of the report, and the plain one a workload gets by default.

The ranked workloads (sidebyside.workloads, `main`) fill the summary,
agreement and timing sections. Every other workload in the files gets a
section of its own, after the timing: its heading, its PNG figures, its
tables (also saved as CSV) and its code side by side. A workload that says
nothing more (`Workload.section`'s default, and a workload a result file
names that is not installed here) gets `entries_section`: one row per
entry with its status, step time, agreement and memory.
"""

from dataclasses import dataclass, field

import pandas as pd

from sidebyside.report import formatting as fmt
from sidebyside.report.tables import Table, ordered, step_cell


@dataclass
class Section:
    workload: str  # the HTML id is "workload-<name>"
    title: str
    charts: list = field(default_factory=list)  # [figures.Chart]: PNG figures, embedded as data URIs
    tables: list = field(default_factory=list)  # [tables.Table | None]
    code: object = None  # code.CodeSection, set by build.py
    note: str = ""

    @property
    def id(self):
        return f"workload-{self.workload}"


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
    classes = ["" if s == "ok" else "status-" + {"n/a": "na"}.get(s, s) for s in frame["status"]]
    table = Table(f"workload_{name}", title, data, display, classes, facet="Machine",
                  note="Every entry of this workload, in the order of the files.")
    return Section(name, title, tables=[table])
