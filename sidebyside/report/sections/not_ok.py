"""Not ranked: every run that was skipped, diverged, failed, disagrees with the reference or was not checked."""

import pandas as pd

from sidebyside.report import formatting as fmt
from sidebyside.report.tables import Section, Table, Text, case_columns, ordered, status_class

ORDER = 60


def sections(context):
    table = context.table(status_table)
    empty = Text(["Every run in these files completed and agrees with the reference."]) if table.empty else None
    return Section("not-ok", "Not ranked: skipped, diverged, failed, disagreeing", [empty, table],
                   nav="Not ranked", markdown=False)


def status_table(collection):
    frame = ordered(collection.frame[collection.frame["status"] != "ok"], collection.labels)
    details = [fmt.status_text(s, r, d) for s, r, d in zip(frame["status"], frame["reason"], frame["diverged_at"])]
    data = pd.DataFrame({**case_columns(frame), "status": frame["status"], "reason": frame["reason"],
                         "diverged_at": frame["diverged_at"]})
    display = pd.DataFrame({**case_columns(frame, titled=True), "Status": frame["status"], "Detail": details})
    return Table("not_ok", "Runs not ranked: skipped (n/a), diverged, failed, disagreeing with the reference, or "
                           "unchecked (pytest-benchmark JSON)",
                 data, display, [status_class(s) for s in frame["status"]], facet="Machine")
