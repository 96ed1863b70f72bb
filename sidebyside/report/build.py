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

from sidebyside.files import atomic_write, probe_writable
from sidebyside.report import FORMATS, tables
from sidebyside.report.code import code_section, stylesheet as code_stylesheet
from sidebyside import workloads
from sidebyside.report.chartdata import Palette, all_panels
from sidebyside.report.figures import png_charts
from sidebyside.report.findings import choice_table, findings, measurement_warnings
from sidebyside.report.html import render_html, stylesheet
from sidebyside.report.interactive import interactive_charts
from sidebyside.report.markdown import render_markdown
from sidebyside.report.merge import merge
from sidebyside.report.sections import entries_section
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
    findings: list
    tables: dict  # name -> tables.Table or None
    charts: dict  # "loss" | "timing" | "sweep" -> [interactive.InteractiveChart]
    panels: dict  # "loss" | "timing" | "sweep" -> [chartdata panels]: what both kinds of chart draw
    code: dict  # workload -> code.CodeSection or None
    css: str
    commit: str | None = None
    sections: list = field(default_factory=list)  # [sections.Section]: the other workloads' own sections
    main_code: list = field(default_factory=list)  # the ranked workloads whose code the last section shows
    csv_tables: list = field(default_factory=list)
    warnings: list = field(default_factory=list)  # [(machine label, [line])]: measurement faults, shown first
    notices: list = field(default_factory=list)  # [(machine label, [line])]: devices and slow starters that did not run


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


def assemble(documents):
    """Everything the page and the Markdown show, from normalized documents."""
    everything = merge(documents)
    collection, notices = everything.without_idle_rows()  # what the page shows
    in_files = list(dict.fromkeys(everything.frame["workload"]))
    # Every installed workload's code is shown; a workload only the files know is shown without code.
    shown = [workloads.reading(name) for name in dict.fromkeys(workloads.names() + in_files)]
    code = {}
    for workload in shown:
        bundled = type(workload).__module__.startswith(workloads.__name__ + ".")
        section = code_section(workload.name, registry=None if bundled else workload.registry(),
                               pair=workload.code_pair) if not isinstance(workload, workloads.Unknown) else None
        code[workload.name] = section if section and (section.columns or section.problems) else None
    lines_of_code = {workload: section.lines_of_code for workload, section in code.items() if section}
    main = workloads.main_names()
    palette = Palette(collection.frame["implementation"].tolist())  # one colour per implementation on the page
    panels, crossings, _ = all_panels(collection.only(main), palette)
    charts = interactive_charts(panels)
    sections = []
    for workload in shown:
        if workload.main or workload.name not in in_files:
            continue
        rows = collection.only([workload.name])
        section = (workload.section(rows, lines_of_code.get(workload.name, {}), palette)
                   or entries_section(workload.name, workload.title or workload.name, rows))
        if section is not None:
            section.code = code.get(workload.name)
            sections.append(section)

    def all_tables(collection):
        ranked = collection.only(main)
        return {
            "choice": choice_table(collection),
            "summary": tables.summary_table(ranked, lines_of_code),
            "tuned": tables.tuned_table(ranked),
            "machines": tables.machines_table(collection) if len(collection.labels) > 1 else None,
            "environment": tables.environment_table(collection),
            "agreement": tables.agreement_table(ranked),
            "timing": tables.timing_table(ranked),
            "not_ok": tables.status_table(collection),
            "lines_of_code": tables.code_table([section for section in code.values() if section]),
        }

    report_tables = all_tables(collection)
    # The CSVs keep every run, the idle devices' included.
    csv_tables = dict(report_tables if collection is everything else all_tables(everything))
    for section in sections:
        for table in section.tables:
            if table is not None:
                csv_tables[table.name] = table
    return Report(
        built=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        sources=[Source(os.path.basename(doc["source"]) or doc["source"], doc["tool"] or doc["format"], label)
                 for label, doc in zip(collection.labels, documents)],
        machine_names=collection.labels,
        findings=findings(collection, crossings),
        warnings=[(label, lines) for label, lines in measurement_warnings(collection) if lines],
        notices=notices,
        tables=report_tables,
        charts=charts,
        panels=panels,
        code=code,
        css=stylesheet(code_stylesheet()),
        commit=local_commit(),
        sections=sections,
        main_code=[name for name in main if code.get(name)],
        csv_tables=[table for table in csv_tables.values() if table is not None],
    )


def csv_safe(cell):
    """Defuse spreadsheet formulas: a cell from a foreign file must not start with = + - @."""
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r") and cell != "—":
        return "'" + cell
    return cell


def write_figures(report, out_dir):
    """The charts as PNG files in out_dir/figures/ for report.md; returns [(path relative to out_dir, title)]."""
    charts = png_charts(report.panels)
    folder = out_dir / FIGURES
    folder.mkdir(exist_ok=True)
    written = []
    own = [chart for section in report.sections for chart in section.charts]
    for chart in [chart for kind in ("loss", "timing", "sweep") for chart in charts[kind]] + own:
        atomic_write(folder / f"{chart.id}.png", chart.png)
        written.append((f"{FIGURES}/{chart.id}.png", chart.title))
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
