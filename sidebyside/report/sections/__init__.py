"""The report's sections: each module here is one kind, found by listing this folder, and plug-ins.

A section module defines `ORDER`, where its sections come in the report
(lowest first), and `sections(context)`, which returns a tables.Section, a
list of them, or None (nothing to show). The page and report.md are these
sections in order, each rendered by one loop (html.py, markdown.py). Other
modules are plug-ins: those named in the environment variable
SIDEBYSIDE_SECTIONS (import paths, comma-separated) join the list the same
way. A module that cannot be imported, or whose `sections` raises, shows one
line saying so where it would have been; the rest of the report is drawn.
"""

import importlib
from dataclasses import dataclass, field

from sidebyside import plugins
from sidebyside.report.tables import Section
from sidebyside.results import one_line

PLUGINS = "SIDEBYSIDE_SECTIONS"
LAST = 1000  # the place of a module that could not say its own


@dataclass
class Context:
    """What every section is drawn from, worked out once by build.py."""

    collection: object  # merge.Collection: the rows the page shows (what did not run left out)
    everything: object  # merge.Collection: every row, which the CSVs keep
    main: list  # the ranked workloads' names
    workloads: list  # every workload shown, in order (sidebyside.workloads.Workload)
    code: dict  # workload name -> code.CodeSection or None
    lines_of_code: dict  # workload name -> {implementation: lines of code}
    palette: object  # chartdata.Palette: one colour per implementation on the page
    charts: dict  # "glance" | "overhead" | "loss" | "timing" | "sweep" -> [interactive.InteractiveChart]
    crossings: dict  # chartdata's GPU crossovers, for the findings
    fits: list  # [overhead.Group]: each implementation's fitted overhead and throughput, compared
    notices: list  # [(machine label, [line])]: devices and slow starters that did not run
    commit: str | None = None  # this checkout's, whose code is shown
    csv: dict = field(default_factory=dict)  # table name -> its table of every row, where the page shows fewer

    def table(self, make, page=None):
        """make(collection) for the page, or make(page(collection)); where the page leaves rows out,
        make(everything) is kept for the CSV."""
        shown = make(page(self.collection) if page else self.collection)
        if self.everything is not self.collection or page:
            full = make(self.everything)
            if full is not None:
                self.csv[full.name] = full
        return shown


def module_names():
    """The bundled section modules, then the plug-ins named in SIDEBYSIDE_SECTIONS."""
    return plugins.listed(__name__, __path__) + plugins.named(PLUGINS)


def drawn(name, make):
    """make()'s sections as a list; where it raises, one Section saying so (its id from `name`)."""
    try:
        made = make()
        made = [] if made is None else [made] if isinstance(made, Section) else [one for one in made if one]
        if not all(isinstance(one, Section) for one in made):
            raise TypeError("sections() returned something other than Sections")
    except Exception as error:  # a broken section must not take the report with it
        return [failed(name, error)]
    return made


def failed(name, error):
    slug = "".join(c if c.isalnum() else "-" for c in str(name).lower())
    return Section(f"failed-{slug}", str(name),
                   failed=one_line(f"The section {name} failed: {type(error).__name__}: {error}", 300))


def every(context):
    """Every section of the report, in order: by their modules' ORDER, then as each module lists them."""
    placed = []
    for name in module_names():
        try:
            module = importlib.import_module(name)
            order = float(module.ORDER)
        except Exception as error:
            placed.append((LAST, [failed(name, error)]))
            continue
        placed.append((order, drawn(name, lambda: module.sections(context))))
    return [section for _, made in sorted(placed, key=lambda item: item[0]) for section in made]
