"""Build the comparison report: DIR/index.html, DIR/report.md and a CSV per table.

    build_report(["results.json", "other-machine.json"], "report/")

With the Markdown format, the charts are also drawn as PNG files in
DIR/figures/, which report.md links. The output folder is checked first (it may not exist yet, but its parent
must, and it must be writable), then every result file is loaded and
validated, and only then is anything drawn. Files are written atomically:
a temporary file in the folder, then a rename.
"""

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path

from sidebyside import workloads
from sidebyside.files import atomic_write, probe_writable
from sidebyside.report import FORMATS, sections
from sidebyside.report.chartdata import Palette, all_panels
from sidebyside.report.code import code_section, stylesheet as code_stylesheet
from sidebyside.report.figures import png_charts
from sidebyside.report.html import render_html, stylesheet
from sidebyside.report.interactive import interactive_charts
from sidebyside.report.markdown import render_markdown
from sidebyside.report.merge import merge
from sidebyside.results import by_environment, load_results, one_line

FIGURES = "figures"  # the folder of report.md's PNG figures


class OutputError(Exception):
    """The output folder cannot be used; the message is one line."""


@dataclass
class Source:
    name: str
    format: str
    machine: str


@dataclass
class Report:
    built: str
    sources: list
    machine_names: list
    sections: list  # [tables.Section], in order: the page and report.md
    panels: dict  # "glance" | "overhead" | "loss" | "timing" | "sweep" -> [chartdata panels]: both kinds draw them
    css: str
    csv_tables: list = field(default_factory=list)


def prepare_output(out_dir):
    """Check (and create) the output folder before any long work; OutputError if unusable."""
    path = Path(out_dir)
    shown = one_line(os.fspath(out_dir))
    if path.exists() and not path.is_dir():
        raise OutputError(f"{shown}: exists and is not a folder")
    if not path.exists():
        parent = path.absolute().parent
        if not parent.is_dir():
            raise OutputError(f"{shown}: cannot create the output folder: {one_line(parent)} does not exist")
        try:
            path.mkdir()
        except OSError as error:
            raise OutputError(f"{shown}: cannot create the output folder: {error.strerror or error}") from None
    try:
        probe_writable(path)
    except OSError as error:
        raise OutputError(f"{shown}: cannot write to the output folder: {error.strerror or error}") from None
    return path


def check_formats(formats):
    formats = tuple(dict.fromkeys(formats or ("html",)))
    unknown = [name for name in formats if name not in FORMATS]
    if unknown:
        raise ValueError(f"unknown report format {unknown[0]!r}; valid formats: {', '.join(FORMATS)}")
    return formats


def local_commit():
    """This checkout's commit, read from .git without running git (the code shown is this one)."""
    root = Path(__file__).resolve().parents[2] / ".git"
    try:
        head = (root / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            reference = root / head[5:]
            if reference.is_file():
                return reference.read_text().strip()[:12]
            packed = (root / "packed-refs").read_text().splitlines()
            return next((line.split()[0][:12] for line in packed if line.endswith(head[5:])), None)
        return head[:12]
    except OSError:
        return None


def code_sections(shown):
    """{workload: code.CodeSection or None}: every installed workload's code; one only the files know has none."""
    code = {}
    for workload in shown:
        bundled = type(workload).__module__.startswith(workloads.__name__ + ".")
        section = code_section(workload.name, registry=None if bundled else workload.registry(),
                               pair=workload.code_pair) if not isinstance(workload, workloads.Unknown) else None
        code[workload.name] = section if section and (section.columns or section.problems) else None
    return code


def assemble(documents):
    """Everything the page and the Markdown show, from normalized documents."""
    everything = merge(documents, flops=lambda workload, size: workloads.reading(workload).flops(size))
    collection, notices = everything.without_idle_rows()  # what the page shows
    shown = [workloads.reading(name) for name in dict.fromkeys(workloads.names() + list(everything.frame["workload"]))]
    code = code_sections(shown)
    main = workloads.main_names()
    palette = Palette(collection.frame["implementation"].tolist())  # one colour per implementation on the page
    panels, crossings, fitted, _ = all_panels(collection.only(main), palette)
    context = sections.Context(
        collection, everything, main, shown, code,
        lines_of_code={workload: section.lines_of_code for workload, section in code.items() if section},
        palette=palette, charts=interactive_charts(panels), crossings=crossings, fits=fitted, notices=notices,
        commit=local_commit())
    every = sections.every(context)
    csv_tables = {}  # the CSVs keep every run, the idle devices' included
    for table in [table for section in every for table in section.tables] + list(context.csv.values()):
        csv_tables.setdefault(table.name, context.csv.get(table.name, table))
    return Report(
        built=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        sources=[Source(os.path.basename(doc["source"]) or doc["source"], doc["tool"] or doc["format"], label)
                 for label, doc in zip(collection.labels, documents)],
        machine_names=collection.labels,
        sections=every,
        panels=panels,
        css=stylesheet(code_stylesheet()),
        csv_tables=list(csv_tables.values()),
    )


def csv_safe(cell):
    """Defuse spreadsheet formulas: a cell from a foreign file must not start with = + - @."""
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r") and cell != "—":
        return "'" + cell
    return cell


def write_figures(report, out_dir):
    """The charts as PNG files in out_dir/figures/ for report.md; returns {chart id: (path relative to out_dir,
    title)}: report.md shows each where its section has it."""
    charts = png_charts(report.panels)
    folder = out_dir / FIGURES
    folder.mkdir(exist_ok=True)
    written = {}
    own = [chart for section in report.sections for block in section.blocks
           if block is not None and block.kind == "figures" and not block.interactive for chart in block.charts]
    for chart in [chart for kind in charts for chart in charts[kind]] + own:
        atomic_write(folder / f"{chart.id}.png", chart.png)
        written[chart.id] = (f"{FIGURES}/{chart.id}.png", chart.title)
    return written


def write_report(report, out_dir, formats=("html",)):
    """Write the report's files into an existing folder; returns the main file's path."""
    out_dir = Path(out_dir)
    main = None
    try:
        for table in report.csv_tables:
            atomic_write(out_dir / f"{table.name}.csv", table.data.map(csv_safe).to_csv(index=False))
        if "markdown" in formats:
            main = out_dir / "report.md"
            atomic_write(main, render_markdown(report, write_figures(report, out_dir)))
        if "html" in formats:
            main = out_dir / "index.html"
            atomic_write(main, render_html(report))
    except OSError as error:
        raise OutputError(f"{one_line(out_dir)}: cannot write the report: {error.strerror or error}") from None
    return main


def build_report(paths, out_dir, formats=("html",)):
    """Build the report of result files `paths` in `out_dir`.

    Returns the path of index.html (or report.md when only Markdown was asked
    for). Raises OutputError for an unusable folder and ResultsError for a bad
    result file, each with a one-line message, before drawing anything.
    """
    formats = check_formats(formats)
    out_dir = prepare_output(out_dir)
    # A run with --env environments shows each one as a machine of its own (its name "host [env]"):
    # two of them get the change and verdict column, like two files.
    documents = [part for path in paths for part in by_environment(load_results(path))]
    return write_report(assemble(documents), out_dir, formats)
