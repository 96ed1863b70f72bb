"""A report section from outside the package: the one file a test-only section needs.

tests/test_report_sections.py names this module in SIDEBYSIDE_SECTIONS and
finds its section in index.html and report.md, after the timing (ORDER 40)
and before the other workloads' own sections (ORDER 50), and its table as
extra.csv. Its title needs escaping.
"""

from sidebyside.report.tables import Section, Table, Text

ORDER = 45
TITLE = "Entries <i>per</i> machine & status"


def sections(context):
    frame = context.collection.frame
    ok = int((frame["status"] == "ok").sum())
    table = context.table(by_status)  # the page's rows; the CSV keeps every row
    return Section("extra", TITLE, [Text([f"{ok} of {len(frame)} shown entries ran cleanly."]), table])


def by_status(collection):
    counts = collection.frame.groupby(["machine", "status"], sort=False).size().reset_index(name="entries")
    return Table("extra", "Entries by status", counts, counts.rename(columns=str.capitalize).astype(str))
