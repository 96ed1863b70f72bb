"""The report's sections: one kind of object, one loop per format, and a plug-in section from one file.

tests/stubs/extra_section.py is named in SIDEBYSIDE_SECTIONS and nowhere
else; it shows in the page and in report.md where its ORDER puts it, with
its title escaped, and its table is saved as CSV. A section that raises, or
a plug-in that cannot be imported, is one line saying so, in its place.
"""

import csv

import pytest

from sidebyside.report import markdown
from sidebyside.report.build import build_report
from sidebyside.report.sections import PLUGINS, module_names
from tests.stubs import extra_section
from tests.test_report_data import make_document, write

STUB = "tests.stubs.extra_section"


def build(tmp_path, formats=("html", "markdown")):
    document = make_document("ci-box")
    index = build_report([write(tmp_path, "results.json", document)], tmp_path / "out", formats=formats)
    return document, index.read_text(encoding="utf-8"), (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def places(text, markers):
    """Where each marker first occurs in text (each must)."""
    found = [text.find(marker) for marker in markers]
    assert -1 not in found, [marker for marker, at in zip(markers, found) if at == -1]
    return found


def test_the_built_in_sections_are_the_modules_of_the_folder(monkeypatch):
    monkeypatch.delenv(PLUGINS, raising=False)
    names = [name.rsplit(".", 1)[-1] for name in module_names()]
    assert set(names) == {"glance", "summary", "environment", "agreement", "timing", "overhead", "profile", "versions", "workloads",
                          "not_ok", "code"}
    monkeypatch.setenv(PLUGINS, f" {STUB} ,")
    assert module_names()[-1] == STUB


def test_a_plug_in_section_appears_in_its_place_escaped_in_the_page_and_the_markdown(tmp_path, monkeypatch):
    monkeypatch.setenv(PLUGINS, STUB)
    document, html, text = build(tmp_path)
    entries = document["results"]
    ok = sum(entry["status"] == "ok" for entry in entries)
    # In the page: after the timing, before the digits' own section, linked from the navigation.
    timing, extra, digits = places(html, ['<section id="timing"', '<section id="extra"',
                                          '<section id="workload-digits"'])
    assert timing < extra < digits
    escaped = "Entries &lt;i&gt;per&lt;/i&gt; machine &amp; status"
    assert f"<h2>{escaped}</h2>" in html and f'<a href="#extra">{escaped}</a>' in html
    assert "<i>per</i>" not in html
    section = html[extra:html.index("</section>", extra)]
    shown = [entry for entry in entries if entry["device"] == "cpu"]  # the CUDA cases did not run: one notice
    assert f"{sum(e['status'] == 'ok' for e in shown)} of {len(shown)} shown entries ran cleanly." in section
    assert '<div class="table-block" id="table-extra">' in section
    # In report.md: the same place, escaped for Markdown.
    title = markdown.escape(extra_section.TITLE)
    assert "\\<i\\>per\\</i\\>" in title
    timing, extra, digits = places(text, ["## Timing", f"## {title}", "## Digits"])
    assert timing < extra < digits
    assert "### Entries by status" in text and "| ok |" in text[extra:digits]
    # Its table is a CSV like every other, of every entry (the idle devices' included).
    with open(tmp_path / "out" / "extra.csv", newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert sum(int(row["entries"]) for row in rows) == len(entries)
    assert {row["status"]: int(row["entries"]) for row in rows}["ok"] == ok
    assert 'href="extra.csv"' in html


def test_without_the_variable_there_is_no_plug_in_section(tmp_path, monkeypatch):
    monkeypatch.delenv(PLUGINS, raising=False)
    _, html, text = build(tmp_path)
    assert 'id="extra"' not in html and "Entries by status" not in text


def broken(context):
    raise ValueError("no <such> column\nsecond line")


@pytest.mark.parametrize("variable", [STUB, "tests.stubs.no_such_section"])
def test_a_section_that_fails_is_one_line_in_its_place(tmp_path, monkeypatch, variable):
    monkeypatch.setenv(PLUGINS, variable)
    monkeypatch.setattr(extra_section, "sections", broken)
    _, html, text = build(tmp_path)
    name = variable
    lines = [line for line in html.splitlines() if f"The section {name}" in line]
    assert len(lines) == 1 and '<p class="note failed">' in lines[0]
    assert "Traceback (most recent" not in html + text and "in broken" not in html + text
    if variable == STUB:  # raised: its place, its error escaped, on one line
        assert "ValueError: no &lt;such&gt; column\\nsecond line" in lines[0]
        timing, failed, digits = places(html, ['<section id="timing"', lines[0], '<section id="workload-digits"'])
        assert timing < failed < digits
    else:  # not importable: named, after every other section
        assert "ModuleNotFoundError" in lines[0] and html.index(lines[0]) > html.index('<section id="code"')
    assert len([line for line in text.splitlines() if markdown.escape(f"The section {name} failed") in line]) == 1
    # The rest of the report is drawn.
    assert '<section id="summary"' in html and "### Timing, every run" in text
