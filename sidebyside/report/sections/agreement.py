"""Agreement: the loss curves against the float64 reference, and the table of how far each run is from it."""

import pandas as pd

from sidebyside.report import formatting as fmt
from sidebyside.report.merge import value
from sidebyside.report.tables import Figures, Section, Table, Text, case_columns, ordered

ORDER = 30


def sections(context):
    charts = context.charts.get("loss") or []
    blocks = [Text(["Same data, same initial weights, same steps: the curves should lie on top of each other. "
                    "The right-hand plots show how far apart they are, so agreement is seen, not just asserted."]),
              Figures(charts, interactive=True),
              None if charts else Text(["No loss trajectories in these files."]),
              context.table(lambda rows: agreement_table(rows.only(context.main)))]
    return Section("agreement", "Agreement: loss curves", blocks, nav="Agreement", markdown=False)


def agreement_table(collection):
    frame = collection.frame
    compared = frame["has_losses"] & (frame["agreement"].notna() | frame["agrees"].notna() | (frame["status"] != "ok"))
    frame = ordered(frame[compared], collection.labels)
    final = [last_loss(collection.losses[row]) for row in frame["row"]]
    data = pd.DataFrame(
        {
            **case_columns(frame), "status": frame["status"],
            "steps": [len(collection.losses[row]) for row in frame["row"]],
            "final_loss": final, "agreement": frame["agreement"],
            "agreement_tolerance": frame["agreement_tolerance"], "agrees": frame["agrees"],
        }
    )
    display = pd.DataFrame(
        {
            **case_columns(frame, titled=True), "Steps": [fmt.general(x) for x in data["steps"]],
            "Final loss": [fmt.general(x, 6) for x in final],
            "Max rel. difference": [fmt.scientific(x) for x in frame["agreement"]],
            "Tolerance": [fmt.scientific(x) for x in frame["agreement_tolerance"]],
            "Verdict": [verdict(s, a, r, d) for s, a, r, d in
                        zip(frame["status"], frame["agrees"], frame["reason"], frame["diverged_at"])],
        }
    )
    if display["Workload"].nunique() <= 1:
        display = display.drop(columns=["Workload"])
    classes = ["" if v == "agrees" else "status-disagrees" if s == "disagrees" else
               "status-failed" if v == "differs" else "status-na"
               for v, s in zip(display["Verdict"], frame["status"])]
    return Table(
        "agreement", "Agreement with the float64 reference", data, display, classes, facet="Machine",
        note="Max rel. difference: the largest |loss − reference| / |reference| over the compared steps.",
    )


def verdict(status, agrees, reason, diverged_at):
    if status != "ok":
        return fmt.status_text(status, reason, diverged_at)
    agrees = value(agrees)
    return "n/a" if agrees is None else "agrees" if agrees else "differs"


def last_loss(losses):
    finite = [x for x in losses if x is not None]
    return finite[-1] if finite else None
