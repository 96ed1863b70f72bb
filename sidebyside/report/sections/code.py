"""Code side by side: the ranked workloads' implementations, and every workload's lines of code."""

import pandas as pd

from sidebyside.report import formatting as fmt
from sidebyside.report.merge import value
from sidebyside.report.tables import Section, Table, Text

ORDER = 70


def sections(context):
    commit = f" (commit {context.commit})" if context.commit else ""
    note = Text([f"The code of this checkout{commit}; results from other machines may come from other versions "
                 "(see each machine's commit under Environment)."])
    shown = [context.code[name] for name in context.main if context.code.get(name)]
    table = code_table([section for section in context.code.values() if section])
    return Section("code", "Code side by side: the Rosetta stone", [note, *shown, table], nav="Code side by side",
                   markdown=False)


def code_table(sections):
    rows = [(section.workload, column.module, ", ".join(column.names), column.framework, column.lines_of_code,
             column.changed if column.module != section.base else None, section.base)
            for section in sections for column in section.columns]
    data = pd.DataFrame(rows, columns=["workload", "module", "implementations", "framework", "lines_of_code",
                                       "lines_differing_from_base", "base"])
    display = pd.DataFrame(
        {
            "Workload": data["workload"], "Module": data["module"], "Registered as": data["implementations"],
            "Framework": data["framework"], "Lines of code": [fmt.general(x) for x in data["lines_of_code"]],
            "Code lines not in the base": [fmt.general(x) if value(x) is not None else "(base)"
                                           for x in data["lines_differing_from_base"]],
        }
    )
    return Table(
        "lines_of_code", "Lines of code", data, display, [""] * len(display),
        note="Lines of code leave out blank lines, comments and docstrings (counted with tokenize and ast).",
    )
