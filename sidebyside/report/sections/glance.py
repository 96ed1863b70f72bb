"""At a glance: the page's first screen is a chart, then where the time goes and the size sweep.

First, per workload, device and dtype, the step time of every
implementation at the main size, tuned variants beside their siblings and
the compute limit drawn; then each step split into its fixed cost and its
arithmetic (report/overhead.py's fit), and the step time against size with
the fitted lines. The findings that point at these charts follow, in the
summary.
"""

from sidebyside.report.tables import Figures, Section, Text

ORDER = 5


def sections(context):
    glance = context.charts.get("glance") or []
    if not glance:
        return None
    blocks = [Figures(glance, interactive=True)]
    overhead, sweep = context.charts.get("overhead") or [], context.charts.get("sweep") or []
    if overhead:
        blocks += [Text(["Where the time goes"], css="heading"), Figures(overhead, interactive=True)]
    if sweep:
        blocks += [Text(["Step time against size"], css="heading"), Figures(sweep, interactive=True)]
    return Section("glance", "At a glance", blocks, nav="Charts")
