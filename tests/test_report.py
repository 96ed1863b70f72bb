"""The comparison report: files, contents, merge of machines, Markdown, escaping, CLI."""

import base64
import csv
import hashlib
import io
import json
import os
import re
from html import unescape
from html.parser import HTMLParser

import numpy as np
import plotly.io
import pytest
from PIL import Image
from plotly.offline import get_plotlyjs

from sidebyside import implementations
from sidebyside.report import build, code, markdown
from sidebyside.report.build import OutputError, build_report
from sidebyside.report.cli import main
from sidebyside.report.merge import machine_labels, merge
from sidebyside.results import load_results, parse_results
from tests.test_report_data import (PEAKS, TUTORIAL, entry, flops, make_benchmark_json, make_document,
                                    report_of, reference_losses, write)

EVIL_MACHINE = "<script>window.__pwned = true</script>"
EVIL_IMPLEMENTATION = '<img src=x onerror="window.__pwned = true">|pipe'
FORMULA = "=HYPERLINK(\"http://example.invalid\")"
SCRIPT_END = "</script><script>window.__pwned = true</script>"  # tries to end a <script> block of chart data


class Page(HTMLParser):
    """Collects the tags and attributes of a page, and each <script> element's attributes and text."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.attributes, self.text, self.scripts = [], [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attributes):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attributes]
        if tag == "script":
            self.scripts.append((dict(attributes), []))

    def handle_endtag(self, tag):
        if tag == "script":
            self.scripts[-1] = (self.scripts[-1][0], "".join(self.scripts[-1][1]))

    def handle_data(self, data):
        self.text.append(data)
        if self.scripts and isinstance(self.scripts[-1][1], list):
            self.scripts[-1][1].append(data)

    def executable_scripts(self):
        return [text for attributes, text in self.scripts if attributes.get("type") != "application/json"]

    def json_blocks(self):
        """id -> the parsed value of each <script type="application/json">."""
        return {attributes["id"]: json.loads(text) for attributes, text in self.scripts
                if attributes.get("type") == "application/json"}


def plotted(array):
    """A figure's array as numbers: plotly.io.to_json writes numpy arrays as base64 ("bdata")."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array, dtype=float)


def sha256_source(text):
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def script_src(html):
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', html).group(1)
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    return directives, directives["script-src"].split()


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One report from three files: a CPU machine, a GPU machine and raw pytest-benchmark JSON."""
    folder = tmp_path_factory.mktemp("report")
    documents = {"cpu.json": make_document("ci-box"), "gpu.json": make_document("gpu-box", gpu=True, speed=1.3),
                 "bench.json": make_benchmark_json()}
    paths = [write(folder, name, document) for name, document in documents.items()]
    out = folder / "out"
    index = build_report(paths, out, formats=("html", "markdown"))
    return {"out": out, "index": index, "html": index.read_text(encoding="utf-8"), "documents": documents,
            "markdown": (out / "report.md").read_text(encoding="utf-8")}


# ----------------------------------------------------------------------------
# Files and self-containment
# ----------------------------------------------------------------------------


def test_writes_page_markdown_and_a_csv_per_table(built):
    names = sorted(path.name for path in built["out"].iterdir())
    assert names == ["agreement.csv", "choice.csv", "digits.csv", "environment.csv", "figures", "index.html", "lines_of_code.csv",
                     "machines.csv", "not_ok.csv", "report.md", "summary.csv", "timing.csv"]
    page = Page(built["html"])
    linked = {value for tag, name, value in page.attributes if tag == "a" and name == "href" and value.endswith(".csv")}
    assert linked == {name for name in names if name.endswith(".csv")}
    assert oct(os.stat(built["index"]).st_mode & 0o044) == oct(0o044)  # readable by others, like any report


def test_page_is_self_contained(built):
    page = Page(built["html"])
    for tag, name, value in page.attributes:
        if name in ("src", "href"):
            assert not value.lower().startswith(("http:", "https:", "//")), (tag, value)
    sources = [value for tag, name, value in page.attributes if tag == "img" and name == "src"]
    assert sources and all(value.startswith("data:image/png;base64,") for value in sources)
    assert "link" not in page.tags and "iframe" not in page.tags
    assert "default-src 'none'; img-src data:" in built["html"]  # a CSP: no network, no other script
    assert all("src" not in attributes for attributes, _ in page.scripts)  # every script is inline


def test_the_policy_admits_exactly_the_pages_own_scripts(built):
    page = Page(built["html"])
    directives, sources = script_src(built["html"])
    assert directives["default-src"] == "'none'" and directives["img-src"] == "data:"
    scripts = page.executable_scripts()
    assert len(scripts) == 2  # plotly.js and the page's own script
    assert sorted(sources) == sorted(sha256_source(text) for text in scripts)  # each one by its hash
    assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources
    plotly_js = get_plotlyjs()
    assert scripts.count(plotly_js) == 1  # plotly.js once, inlined
    assert built["html"].count(plotly_js[:2000]) == 1
    assert "connect-src" not in directives and "http" not in " ".join(directives.values())


def test_each_interactive_chart_is_a_plotly_figure_of_the_png_numbers(built):
    page = Page(built["html"])
    blocks = page.json_blocks()
    charts = [value for tag, name, value in page.attributes if tag == "div" and name == "data-figure"]
    assert len(charts) == len(set(charts)) > 10 and all(chart in blocks for chart in charts)
    for chart in charts:
        figure = plotly.io.from_json(json.dumps(blocks[chart]))  # plotly validates it
        assert figure.data and figure.layout.updatemenus  # traces, and the log/linear buttons
    # The markdown's PNG of the first loss chart and the page's chart show the same curves.
    report = build.assemble([load_results(path) for path in sorted(built["out"].parent.glob("*.json"))])
    panel = report.panels["loss"][0]
    figure = plotly.io.from_json(json.dumps(blocks["figure-" + panel.id]))
    names = [unescape(trace.name) for trace in figure.data if trace.showlegend is not False]
    assert names[0] == panel.reference_name and names[1:] == [c.implementation for c in panel.curves]
    losses = [trace for trace in figure.data if trace.showlegend is not False][1]
    assert np.allclose(plotted(losses.y), panel.curves[0].losses, equal_nan=True)
    document = next(d for d in built["documents"].values() if d.get("machine", {}).get("name") == "ci-box")
    recorded = next(e["losses"] for e in document["results"] if e["implementation"] == panel.curves[0].implementation
                    and e["device"] == "cpu" and e["dtype"] == panel.title.split(" · ")[2] and e["losses"])
    assert np.allclose(plotted(losses.y), recorded)  # the numbers of the result file, unchanged


def test_every_figure_is_a_real_png(built):
    page = Page(built["html"])
    sources = [value for tag, name, value in page.attributes if tag == "img" and name == "src"]
    for source in sources:
        image = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        image.verify()
        assert image.size[0] > 400 and image.size[1] > 150
    files = sorted((built["out"] / "figures").iterdir())
    charts = [value for tag, name, value in page.attributes if tag == "div" and name == "data-figure"]
    assert {path.stem for path in files} == {chart.removeprefix("figure-") for chart in charts} | {
        value for tag, name, value in page.attributes if tag == "figure" and name == "id" and value.startswith("digits-")}
    for path in files:
        with Image.open(path) as image:
            image.verify()
            assert image.size[0] > 400 and image.size[1] > 150
        assert f"](figures/{path.name})" in built["markdown"]  # report.md shows it


def test_one_loss_figure_per_group_with_curves(built):
    groups = set()
    for document in built["documents"].values():
        for entry in document.get("results", []):
            if entry["losses"] and entry["workload"] == "two_layer":
                groups.add((document["machine"]["name"], entry["device"], entry["dtype"],
                            tuple(entry["size"].values())))
    assert built["html"].count('id="loss-') == len(groups)
    assert built["html"].count('id="sweep-') == 2  # the two machines with a size sweep
    assert built["html"].count('id="digits-') == 2
    # per machine and dtype, of ranked rows: pytest-benchmark's unchecked rows draw none
    assert built["html"].count('id="timing-') == 4


# ----------------------------------------------------------------------------
# The numbers
# ----------------------------------------------------------------------------


def test_summary_ratios_match_an_independent_computation(built):
    rows = read_csv(built["out"] / "summary.csv")
    fastest = {}
    for name, document in built["documents"].items():
        entries = document.get("results") or []
        for entry in entries:
            if entry["status"] == "ok" and entry["workload"] == "two_layer":
                key = (entry["device"], "×".join(str(v) for v in entry["size"].values()), entry["dtype"])
                fastest.setdefault(document["machine"]["name"], {}).setdefault(key, []).append(
                    entry["step_time"]["median"])
    checked = 0
    for row in rows:
        if row["status"] != "ok":  # pytest-benchmark JSON's rows too: "unchecked", never ranked
            assert row["ratio_to_fastest"] == "" and row["rank"] == ""
            continue
        best = min(fastest[row["machine"]][(row["device"], row["size"], row["dtype"])])
        assert float(row["ratio_to_fastest"]) == pytest.approx(float(row["median_step_s"]) / best)
        checked += 1
    assert checked > 40


def test_summary_names_the_fastest_and_keeps_every_run(built):
    document = built["documents"]["cpu.json"]
    tutorial_f32 = [e for e in document["results"] if e["status"] == "ok" and e["device"] == "cpu"
                    and e["dtype"] == "float32" and e["size"] == TUTORIAL]
    winner = min(tutorial_f32, key=lambda e: e["step_time"]["median"])["implementation"]
    assert f"cpu, float32, 64×1000×100×10: {winner} is fastest" in built["html"]
    rows = read_csv(built["out"] / "summary.csv")
    documents = [built["documents"]["cpu.json"], built["documents"]["gpu.json"],
                 parse_results(json.dumps(built["documents"]["bench.json"]), "bench.json")]
    two_layer = [e for doc in documents for e in doc["results"] if e["workload"] == "two_layer"]
    assert len(rows) == len(two_layer)


def test_runs_that_did_not_complete_have_rows(built):
    rows = read_csv(built["out"] / "not_ok.csv")
    expected = [(d["machine"]["name"], e["implementation"], e["status"]) for d in
                (built["documents"]["cpu.json"], built["documents"]["gpu.json"]) for e in d["results"]
                if e["status"] != "ok"]
    expected += [("bench-box", name, "unchecked") for name in ("numpy_manual", "torch_manual")]  # never checked
    assert sorted((r["machine"], r["implementation"], r["status"]) for r in rows) == sorted(expected)
    html = built["html"]
    assert "diverged at step 12: loss became inf at step 12" in html
    assert "failed: RuntimeError: XLA compilation failed" in html
    # The machine without a GPU: its CUDA cases are named once on the page,
    # not as a row each (the CSV above keeps them).
    cpu = built["documents"]["cpu.json"]
    idle = [e for e in cpu["results"] if e["device"] == "cuda"]
    assert idle and all(e["status"] == "n/a" and e["reason"] == "no CUDA device" for e in idle)
    assert f'<p class="notice">{cpu["machine"]["name"]}: CUDA: no device here ({len(idle)} cases not run)</p>' in html
    gpu = built["documents"]["gpu.json"]  # where CUDA ran, its one n/a CUDA case keeps its rows
    kept = [e for e in gpu["results"] if e["device"] == "cuda" and e["reason"] == "no CUDA device"]
    # ... (in the summary, digits and not-ok tables), while the CPU machine's are not repeated per case
    assert kept and 0 < html.count("n/a: no CUDA device") <= 3 * len(kept) < len(idle)


def test_unstable_timing_is_marked(built):
    rows = read_csv(built["out"] / "summary.csv")
    unstable = [r for r in rows if r["unstable"] == "True"]
    assert unstable and all(r["implementation"] == "torch_nn" for r in unstable)
    assert "540 µs ±" in built["html"]  # torch_nn, cpu, float64 on ci-box
    assert "unstable: IQR 25% of median" in built["html"]


def test_findings_explain_with_measured_values(built):
    html = built["html"]
    assert "Keras compiles train_on_batch with its backend on the first call" in html
    assert "the fastest GPU run overtakes the fastest CPU run from 256×1000×400×10 on" in html
    assert "20 of 20 runs with loss curves agree with the float64 reference" in html
    assert "Every framework ran with the same thread count: 2." in html


def test_environment_per_machine(built):
    rows = {row["field"]: row for row in read_csv(built["out"] / "environment.csv")}
    assert rows["GPU"]["gpu-box"].startswith("NVIDIA H100") and rows["GPU"]["ci-box"] == "none"
    assert rows["CPU"]["bench-box"] == "AMD EPYC 7B13 (4 logical cores)"
    assert rows["Library: numpy · blas"]["ci-box"] == "openblas 0.3.31 (SkylakeX kernel, 2 threads)"
    assert rows["Version: torch"]["ci-box"] == "2.13.0+cpu"
    assert rows["Commit"]["bench-box"] == "abc1234 (dirty)"


def test_digits_section(built):
    rows = read_csv(built["out"] / "digits.csv")
    assert {r["implementation"] for r in rows} == {"numpy_manual", "torch_nn", "keras_tensorflow", "keras_jax"}
    keras = next(r for r in rows if r["implementation"] == "keras_tensorflow" and r["machine"] == "ci-box")
    assert float(keras["first_epoch_s"]) == pytest.approx(4.5) and float(keras["later_epoch_median_s"]) == 1.5
    # The start (first step) apart and the cores busy, as the entry recorded them.
    numpy = next(r for r in rows if r["implementation"] == "numpy_manual" and r["machine"] == "ci-box")
    recorded = next(e for e in built["documents"]["cpu.json"]["results"]
                    if e["workload"] == "digits" and e["implementation"] == "numpy_manual")
    assert float(numpy["first_step_s"]) == recorded["first_step_s"] != recorded["cpu_utilization"]
    assert float(numpy["cpu_utilization"]) == recorded["cpu_utilization"] and numpy["threads"] == "2"
    section = built["html"][built["html"].index('id="workload-digits"'):]
    assert "Code side by side" in section[:section.index("</section>")]


# ----------------------------------------------------------------------------
# Several machines
# ----------------------------------------------------------------------------


def test_merge_gives_each_machine_a_column(built):
    rows = read_csv(built["out"] / "machines.csv")
    assert list(rows[0])[5:] == ["ci-box", "gpu-box", "bench-box"]
    cpu = {(e["implementation"], e["device"], e["dtype"], tuple(e["size"].values())): e
           for e in built["documents"]["cpu.json"]["results"]}
    row = next(r for r in rows if r["implementation"] == "numpy_manual" and r["size"] == "64×1000×100×10"
               and r["dtype"] == "float32" and r["device"] == "cpu")
    expected = cpu[("numpy_manual", "cpu", "float32", tuple(TUTORIAL.values()))]["step_time"]["median"]
    assert float(row["ci-box"]) == pytest.approx(expected)
    assert float(row["bench-box"]) == pytest.approx(2e-4)


def test_same_machine_name_is_disambiguated():
    documents = [parse_results(json.dumps(make_document("box", digits=False)), f"run{i}/results.json")
                 for i in (1, 2)]
    documents.append(parse_results(json.dumps(make_document("box", digits=False)), "run2/results.json"))
    documents.append(parse_results(json.dumps(make_document("other", digits=False)), "x.json"))
    labels = machine_labels(documents)
    assert labels == ["box (run1/results.json)", "box (run2/results.json)", "box (run2/results.json) #2", "other"]
    collection = merge(documents)
    assert collection.frame["machine"].nunique() == 4


# ----------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------


def test_markdown_has_summary_and_timing_tables(built):
    text = built["markdown"]
    assert "### Summary: fastest per device, size and dtype" in text and "### Timing, every run" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Device | Size | Dtype | Implementation"))
    assert lines[header + 1].startswith("| --- |")
    assert lines[header].count(" | ") == lines[header + 1].count("|") - 2
    body = []
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        body.append(line)
    assert body and all(line.count("|") == lines[header].count("|") for line in body)
    assert "torch\\_manual is fastest" in text


def test_markdown_table_escapes_cells():
    rendered = markdown.table(["a|b", "name"], [["x|y", "<script>alert(1)</script>"], ["two\nlines", "*bold*"]])
    assert rendered.splitlines() == [
        "| a\\|b | name |",
        "| --- | --- |",
        "| x\\|y | \\<script\\>alert(1)\\</script\\> |",
        "| two lines | \\*bold\\* |",
    ]


# ----------------------------------------------------------------------------
# Escaping untrusted strings
# ----------------------------------------------------------------------------


def hostile_document():
    document = make_document(EVIL_MACHINE, digits=False)
    document["results"][0]["implementation"] = EVIL_IMPLEMENTATION
    document["results"][1]["implementation"] = FORMULA
    document["results"][4]["reason"] = "</td></tr></table><script>window.__pwned = true</script>"
    document["machine"]["frameworks"]["<b>bold</b>"] = "1.0"
    # Oversubscribed: the name reaches a warning line too.
    document["results"][0]["extra"]["runnable_threads"] = {"median": 9.0, "max": 9, "samples": 10, "cpus": 2}
    document["results"][2].update(status="disagrees", reason="<script>window.__pwned = true</script> differs")
    document["results"][6]["implementation"] = SCRIPT_END  # has loss curves and timings: in chart data
    return document


def test_hostile_names_are_escaped_everywhere(tmp_path):
    path = write(tmp_path, "hostile.json", hostile_document())
    index = build_report([path], tmp_path / "out", formats=("html", "markdown"))
    html = index.read_text(encoding="utf-8")
    assert "<script>" not in html and "<img src=x" not in html and "<b>bold" not in html
    assert "&lt;script&gt;window.__pwned = true&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html
    assert re.search(r'<p class="warning">[^<]*<strong>[^<]*</strong>[^<]*&lt;img src=x onerror=', html)
    assert "disagrees: &lt;script&gt;window.__pwned = true&lt;/script&gt; differs" in html
    page = Page(html)
    assert page.tags.count("table") == html.count("<table")
    # The only script elements are the page's own: its scripts and its JSON blocks, nothing a name opened.
    assert page.tags.count("script") == html.count("<script") == len(page.scripts)
    for attributes, text in page.scripts:
        assert re.fullmatch(r"page-script-\d+|figure-(glance|overhead|loss|timing|sweep)-\d+|alignments-\w+", attributes["id"])
        if attributes.get("type") == "application/json":
            assert "<" not in text and ">" not in text  # escaped as \u003c, \u003e: no block can be ended
    figures = [figure for name, figure in page.json_blocks().items() if name.startswith("figure-")]
    names = {unescape(trace.get("name") or "") for figure in figures for trace in figure["data"]}
    assert EVIL_IMPLEMENTATION in names and SCRIPT_END in names  # they reach the charts, as text
    assert all(unescape(figure["layout"]["title"]["text"]).startswith(EVIL_MACHINE) for figure in figures)
    text = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "<script>" not in text and "\\<script\\>" in text
    rows = read_csv(tmp_path / "out" / "summary.csv")
    assert any(r["implementation"] == "'" + FORMULA for r in rows)  # a spreadsheet will not run it
    assert any(r["implementation"] == EVIL_IMPLEMENTATION for r in rows)  # the CSV keeps data as data


def test_dollar_signs_do_not_reach_mathtext(tmp_path):
    document = make_document("$\\frac{1}{0", digits=False)
    document["results"][0]["implementation"] = "_hidden $x^"
    index = build_report([write(tmp_path, "r.json", document)], tmp_path / "out")
    assert index.exists()


# ----------------------------------------------------------------------------
# Code side by side and lines of code
# ----------------------------------------------------------------------------

SAMPLE = '''"""Module docstring
over two lines."""

import numpy as np  # a trailing comment still counts the line


# A comment line does not count.
def f(x):
    """A function docstring."""

    y = (x +
         1)
    return y
'''


def test_lines_of_code_leave_out_blanks_comments_and_docstrings():
    # Counted by hand: the import, def, the two lines of `y = (x + 1)`, return.
    assert code.count_lines_of_code(SAMPLE) == 5


def test_changed_lines_are_the_framework_specific_ones():
    base = "import numpy as np\n\nh = x.dot(w1)\n# Forward pass\ny = h\n"
    other = "import torch\n\nh = x.mm(w1)\n# Forward pass, in torch\ny = h\n"
    assert code.changed_lines(base, other) == {1, 3}  # comments differ too but are not code


def test_code_columns_follow_the_registry():
    section = code.code_section("two_layer")
    specs = [s for s in implementations.REGISTRY.values() if "two_layer" in s.workloads]
    assert [column.module for column in section.columns] == list(dict.fromkeys(s.module for s in specs))
    keras = next(column for column in section.columns if column.module == "keras_sequential")
    assert keras.names == [s.name for s in specs if s.module == "keras_sequential"]
    assert section.base == specs[0].module and section.columns[0].changed == 0
    for column in section.columns[1:]:
        assert 0 < column.changed <= column.lines_of_code
        # The side-by-side view marks, on the right, exactly the code lines counted as changed.
        marked = {right + 1 for _, right, kind in section.rows(section.base, column.module)
                  if kind in (code.CHANGED, code.ONLY_RIGHT)}
        source = section.sources[column.module]
        assert len(marked & code.code_lines(source)) == column.changed
        assert len(column.lines) == len(source.splitlines())  # one highlighted line per line shown
        assert column.docstring  # every implementation explains itself
    assert section.lines_of_code["numpy_manual"] == code.count_lines_of_code(
        open(section.columns[0].path, encoding="utf-8").read())


def expand(runs):
    """The runs of comparison_json back to rows, written here independently of report.js."""
    rows = []
    for kind, left, right, count in runs:
        for offset in range(count):
            rows.append((None if left < 0 else left + offset, None if right < 0 else right + offset, kind))
    return rows


def test_aligned_rows_pair_lines_as_a_diff_tool_does():
    left = "a\nb\nc\nd\ne\n"
    right = "a\n  b\nC\nC2\ne\nf\n"  # b re-indented (same), c -> C C2, d gone, f added
    # By hand: a=a, b=b, then c,d replaced by C,C2 (paired in order), e=e, f only on the right.
    assert code.aligned_rows(left, right) == [
        (0, 0, code.SAME), (1, 1, code.SAME), (2, 2, code.CHANGED), (3, 3, code.CHANGED), (4, 4, code.SAME),
        (None, 5, code.ONLY_RIGHT)]
    assert code.aligned_rows("x\ny\nz\n", "x\n") == [
        (0, 0, code.SAME), (1, None, code.ONLY_LEFT), (2, None, code.ONLY_LEFT)]
    assert code.aligned_rows("p\nq\n", "r\n") == [(0, 0, code.CHANGED), (1, None, code.ONLY_LEFT)]


def test_every_pair_is_aligned_in_the_page_and_every_line_shown_once():
    for workload in ("two_layer", "digits"):
        section = code.code_section(workload)
        modules = [column.module for column in section.columns]
        pairs = json.loads(section.comparison_json())["pairs"]
        assert len(pairs) == len(modules) * (len(modules) - 1) // 2
        for key, runs in pairs.items():
            left, right = key.split("|")
            rows = expand(runs)
            assert rows == section.rows(left, right)
            lines = (section.sources[left].splitlines(), section.sources[right].splitlines())
            assert [l for l, _, _ in rows if l is not None] == list(range(len(lines[0])))
            assert [r for _, r, _ in rows if r is not None] == list(range(len(lines[1])))
            for l, r, kind in rows:
                if kind == code.SAME:  # the same line, indentation aside
                    assert lines[0][l].strip() == lines[1][r].strip()
                else:  # a changed row faces a line, a left-only or right-only row a gap
                    assert (l is not None, r is not None) == {code.CHANGED: (True, True), code.ONLY_LEFT: (
                        True, False), code.ONLY_RIGHT: (False, True)}[kind]


def test_the_page_shows_numpy_manual_beside_torch_manual_without_javascript(built):
    section = code.code_section("two_layer")
    rows = section.rows("numpy_manual", "torch_manual")
    match = re.search(r'<div class="code-compare" id="compare-two_layer".*?<tbody>(.*?)</tbody>', built["html"], re.S)
    assert match and 'data-shown="numpy_manual|torch_manual"' in built["html"]
    body = match.group(1)
    found = re.findall(r'<tr class="([a-z-]+)">(.*?)</tr>', body, re.S)
    assert [kind for kind, _ in found] == [code.ROW_CLASSES[kind] for _, _, kind in rows]
    left, right = section.sources["numpy_manual"].splitlines(), section.sources["torch_manual"].splitlines()
    first = section.column("torch_manual").first_line
    for (_, cells), (l, r, _) in zip(found, rows):
        texts = [unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<td[^>]*>(.*?)</td>", cells, re.S)]
        assert texts[1] == (left[l] if l is not None else "") and texts[3] == (right[r] if r is not None else "")
        assert texts[2] == (str(first + r) if r is not None else "")
    assert sum(kind != "same" for kind, _ in found) > 10  # the framework-specific lines are marked
    block = built["html"][built["html"].index('id="compare-two_layer"'):]
    pickers = re.search(r'<div class="code-pickers" hidden>(.*?)</div>', block, re.S).group(1)
    assert pickers.count("<option") == 2 * len(section.columns)  # any two, once JavaScript shows the pickers
    assert '<option value="numpy_manual" selected>' in pickers and '<option value="torch_manual" selected>' in pickers


def test_missing_registry_is_reported_not_fatal(monkeypatch, tmp_path):
    monkeypatch.setattr(code, "REGISTRY_PACKAGE", "sidebyside.not_there")
    section = code.code_section("digits")
    assert not section.columns and "sidebyside.not_there is not available" in section.problems[0]
    index = build_report([write(tmp_path, "r.json", make_document())], tmp_path / "out")
    assert "Not shown: sidebyside.not_there is not available" in index.read_text(encoding="utf-8")


def test_empty_results_still_make_a_report(tmp_path):
    document = {"schema": 1, "machine": {"name": "empty"}, "results": []}
    index = build_report([write(tmp_path, "r.json", document)], tmp_path / "out", formats=("html", "markdown"))
    assert "This file holds no results." in index.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------


def test_cli_builds_the_report(tmp_path, capsys):
    path = write(tmp_path, "results.json", make_document(digits=False))
    assert main([str(path), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == f"report: {tmp_path / 'out' / 'index.html'}"


def test_cli_markdown_prints_the_tables(tmp_path, capsys):
    path = write(tmp_path, "results.json", make_document(digits=False))
    assert main([str(path), "--out", str(tmp_path / "out"), "--format", "markdown"]) == 0
    captured = capsys.readouterr()
    assert captured.out == (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert not (tmp_path / "out" / "index.html").exists()
    assert (tmp_path / "out" / "summary.csv").exists()


def test_cli_bad_file_is_one_line_and_exit_2(tmp_path, capsys):
    good = write(tmp_path, "good.json", make_document(digits=False))
    document = make_document(digits=False)
    document["results"][3]["step_time"]["median"] = -1.0
    bad = write(tmp_path, "results.json", document)
    assert main([str(good), str(bad), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert error == (f"sidebyside: error: {bad}: field results[3].step_time.median: "
                     f"must be a positive finite number, got -1.0\n")
    assert not (tmp_path / "out" / "index.html").exists()


@pytest.mark.parametrize("problem", ["missing parent", "a file", "read-only"])
def test_cli_unusable_output_folder_fails_before_any_work(tmp_path, capsys, monkeypatch, problem):
    if problem == "read-only" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    monkeypatch.setattr(build, "load_results", lambda path: pytest.fail("files loaded before the folder check"))
    path = write(tmp_path, "results.json", make_document(digits=False))
    if problem == "missing parent":
        out, expected = tmp_path / "no" / "such" / "dir", "does not exist"
    elif problem == "a file":
        out, expected = path, "exists and is not a folder"
    else:
        out, expected = tmp_path / "locked", "cannot write to the output folder: Permission denied"
        out.mkdir()
        out.chmod(0o500)
    assert main([str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and expected in error and str(out) in error


def test_unwritable_folder_error_is_one_line(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        build.prepare_output(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()  # nothing created on the way


def test_extreme_but_valid_numbers_still_draw(tmp_path):
    """Finite values at the edges of what the loader accepts must not break matplotlib."""
    document = make_document("edge", gpu=True, digits=True)
    document["results"][0]["losses"] = [1e300, 1e-300, 0.0, -5.0, None] * 100
    document["results"][1]["step_time"].update(median=1e-300, iqr=1e300)
    document["results"][2]["step_time"].update(median=1e300)
    document["results"][2]["loop_time_s"] = 1e300
    document["results"][3]["size"] = {"N": 2**53, "D_in": 2**53, "H": 2**53, "D_out": 2**53}
    document["results"][3]["flops_per_step"] = None
    document["results"][-2]["epochs"][0]["time_s"] = 1e300
    document["machine"]["peak_gflops"]["cpu"] = {"float32": 1e-300, "float64": None}
    index = build_report([write(tmp_path, "r.json", document)], tmp_path / "out", formats=("html", "markdown"))
    page = index.read_text(encoding="utf-8")
    assert page.count('class="plotly-chart"') + page.count("<img ") > 5
    pngs = list((tmp_path / "out" / "figures").glob("*.png"))
    assert len(pngs) == page.count('class="plotly-chart"') + page.count("<img ") > 5
    for figure in Page(page).json_blocks().values():
        json.dumps(figure, allow_nan=False)  # every number the charts draw is finite or a gap (null)


# ----------------------------------------------------------------------------
# The new truths: disagreeing runs, ties, cores used, peak by dtype
# ----------------------------------------------------------------------------

DISAGREES = "loss differs from the float64 reference by 3.2e-03 relative (tolerance 1.0e-05)"


def case(document, implementation, device="cpu", dtype="float32", size=TUTORIAL):
    return next(e for e in document["results"] if (e["implementation"], e["device"], e["dtype"], e["size"])
                == (implementation, device, dtype, size))


def truths_document():
    """One machine whose file holds each new case once, on cpu, float32, the tutorial size:

    a disagreeing run faster than all (status "disagrees"), an older file's way of saying
    the same (status "ok", agrees false), a tie for fastest (torch_manual and numpy_manual,
    1.3 % apart with overlapping rounds), a run with more runnable threads than CPUs, one whose
    thread pool read back at another size than asked, a
    float64 step faster than the measured peak, and a float64 peak that moved 15 % during the run.
    """
    document = make_document("truth-box", digits=False)
    document["schema"] = 1  # old_wrong is schema 1's way of saying "disagrees": migrated on reading
    curve = reference_losses()
    for name, median in (("wrong_but_fast", 1.0e-4), ("old_wrong", 1.1e-4)):
        record = entry(name, "cpu", "float32", TUTORIAL, losses=curve)
        record["step_time"].update(median=median, round_medians=[median * 0.99, median, median * 1.01])
        record.update(agrees=False, agreement=3.2e-3, gflops=flops(TUTORIAL) / median / 1e9)
        if name == "wrong_but_fast":
            record.update(status="disagrees", reason=DISAGREES)
        document["results"].append(record)
    case(document, "torch_manual")["step_time"].update(median=1.500e-4, round_medians=[1.485e-4, 1.5e-4, 1.515e-4])
    case(document, "numpy_manual")["step_time"].update(median=1.520e-4, round_medians=[1.50e-4, 1.52e-4, 1.54e-4])
    case(document, "torch_autograd")["extra"]["runnable_threads"] = {"median": 5.0, "max": 6, "samples": 40, "cpus": 2}
    case(document, "torch_nn")["extra"]["threads_read_back"] = {"openblas": 2, "torch_intra_op": 3, "torch_inter_op": 1}
    case(document, "keras_tensorflow", dtype="float64")["gflops"] = 1.3 * PEAKS["cpu"]["float64"]
    document["machine"]["peak_detail"]["start"]["cpu"]["float64"] = 170.0
    document["machine"]["peak_detail"]["spread"]["cpu"]["float64"] = 0.15
    return document


@pytest.fixture(scope="module")
def truths(tmp_path_factory):
    return report_of(tmp_path_factory.mktemp("truths"), "truths", truths_document())


def findings_text(html):
    """Every finding: the headline list and the folded "More findings"."""
    return "".join(re.findall(r'<ul class="findings">.*?</ul>', html, re.S))


def warning_lines(html):
    return re.findall(r'<p class="warning">(.*?)</p>', html)


def summary_row(truths, implementation, dtype="float32"):
    rows = read_csv(truths["out"] / "summary.csv")
    return next(r for r in rows if r["implementation"] == implementation and r["device"] == "cpu"
                and r["dtype"] == dtype and r["size"] == "64×1000×100×10")


def test_disagreeing_runs_are_shown_with_their_reason_but_never_ranked(truths):
    for name, reason in (("wrong_but_fast", DISAGREES),
                         ("old_wrong", "loss differs from the float64 reference by 3.2e-03 relative "
                                       "(tolerance 1.0e-05)")):
        row = summary_row(truths, name)
        assert row["status"] == "disagrees" and row["detail"] == f"disagrees: {reason}"
        assert row["rank"] == "" and row["ratio_to_fastest"] == ""
        assert f"disagrees: {reason}" in truths["html"]
    # The fastest is judged among the agreeing runs only: the ratios are to torch_manual's 150 µs.
    assert float(summary_row(truths, "torch_autograd")["ratio_to_fastest"]) == pytest.approx(
        case(truths["document"], "torch_autograd")["step_time"]["median"] / 1.5e-4)
    assert "not ranked" in truths["html"]
    # Never named where the report recommends, only counted.
    text = findings_text(truths["html"])
    assert "wrong_but_fast" not in text and "old_wrong" not in text
    curves = [e for e in truths["document"]["results"] if e["losses"] and e["status"] in ("ok", "disagrees")]
    agreeing = [e for e in curves if e["agrees"] is True]
    assert (f"{len(agreeing)} of {len(curves)} runs with loss curves agree with the float64 reference within "
            f"tolerance; {len(curves) - len(agreeing)} disagree: shown with the reason in the Agreement table") in text
    assert len(curves) - len(agreeing) == 2
    verdicts = {r["implementation"]: r for r in read_csv(truths["out"] / "agreement.csv")}
    assert verdicts["wrong_but_fast"]["status"] == verdicts["old_wrong"]["status"] == "disagrees"
    not_ranked = {r["implementation"] for r in read_csv(truths["out"] / "not_ok.csv")}
    assert {"wrong_but_fast", "old_wrong"} <= not_ranked


def test_a_tie_within_noise_is_said_to_be_one(truths):
    text = findings_text(truths["html"])
    assert ("cpu, float32, 64×1000×100×10: tie (within noise) for fastest between torch_manual, numpy_manual, "
            "at 150 µs to 152 µs a step") in text
    assert "is fastest" not in text.split("cpu, float32, 64×1000×100×10")[1].split("</li>")[0]
    first, second = summary_row(truths, "torch_manual"), summary_row(truths, "numpy_manual")
    assert (first["rank"], first["tied"], second["rank"], second["tied"]) == ("1", "True", "1", "True")
    assert float(second["ratio_to_fastest"]) == pytest.approx(1.52 / 1.5)
    third = summary_row(truths, "torch_autograd")
    assert (third["rank"], third["tied"]) == ("3", "False")  # competition ranking: 1, 1, 3
    assert "1.01×, tie (within noise)" in truths["html"]
    # A group whose runs are well apart still has one fastest.
    assert "cpu, float64, 64×1000×100×10: torch_manual is fastest" in text


def test_cores_used_are_shown_and_oversubscribed_runs_and_pools_not_as_asked_flagged(truths):
    rows = read_csv(truths["out"] / "timing.csv")
    autograd = next(r for r in rows if r["implementation"] == "torch_autograd" and r["dtype"] == "float32"
                    and r["size"] == "64×1000×100×10")
    assert float(autograd["cpu_utilization"]) == 1.9 and autograd["threads"] == "2"
    assert json.loads(autograd["round_medians_s"]) == case(truths["document"], "torch_autograd")["step_time"][
        "round_medians"]
    assert "1.90 of 2 (oversubscribed)" in truths["html"] and "oversubscribed: 5 runnable threads on 2 CPUs" in truths[
        "html"]
    over = [line for line in warning_lines(truths["html"]) if "Oversubscribed:" in line]
    assert len(over) == 1
    assert "torch_autograd (cpu, float32, 64×1000×100×10): 5 runnable threads on 2 CPUs" in over[0]
    off = [line for line in warning_lines(truths["html"]) if "Thread pools not at the size asked" in line]
    assert len(off) == 1
    assert "torch_nn (cpu, float32, 64×1000×100×10): torch_intra_op 3 (asked 2)" in off[0]
    assert "openblas" not in off[0] and "torch_inter_op" not in off[0]


def test_share_of_peak_uses_the_entrys_own_dtype_and_a_step_beating_it_is_one_line(truths):
    checked = 0
    for row in read_csv(truths["out"] / "summary.csv"):
        raw = [e for e in truths["document"]["results"] if e["implementation"] == row["implementation"]
               and e["device"] == row["device"] and e["dtype"] == row["dtype"]
               and "×".join(map(str, e["size"].values())) == row["size"] and e["status"] != "n/a"]
        if row["status"] in ("ok", "disagrees") and raw and raw[0]["gflops"]:
            expected = raw[0]["gflops"] / PEAKS[row["device"]][row["dtype"]]
            assert float(row["peak_fraction"]) == pytest.approx(expected)
            checked += 1
    assert checked > 20
    faults = [line for line in warning_lines(truths["html"]) if "Faster than the measured peak" in line]
    assert len(faults) == 1 and "keras_tensorflow (cpu, float64, 64×1000×100×10): 260 GFLOP/s against the " \
        "measured 200" in faults[0]
    assert "130.0%" not in truths["html"]  # no share above 100 % (tests/test_peak_share.py)
    assert "keras_tensorflow comes closest" not in truths["html"]  # a step beating the peak is not a best


def test_peak_drift_is_shown_and_a_spread_over_ten_percent_warned(truths):
    rows = {row["field"]: row["truth-box"] for row in read_csv(truths["out"] / "environment.csv")}
    assert float(rows["Measured peak, cpu float32 (GFLOP/s)"]) == PEAKS["cpu"]["float32"]
    assert float(rows["Measured peak, cpu float64 (GFLOP/s)"]) == PEAKS["cpu"]["float64"]
    assert rows["Peak drift, cpu float32 (GFLOP/s)"] == "390 at the start, 400 at the end (spread 2.5%)"
    assert rows["Peak drift, cpu float64 (GFLOP/s)"].startswith("170 at the start, 200 at the end (spread 15.0%")
    assert float(rows["Theoretical peak, cpu float32 (GFLOP/s)"]) == 460.8
    spread = [line for line in warning_lines(truths["html"]) if "measured peak moved" in line]
    assert len(spread) == 1 and "cpu float64 by 15.0%: 170 then 200 GFLOP/s" in spread[0]
    assert "cpu float32" not in spread[0]  # 2.5 % is within the 10 % allowed
    assert len(warning_lines(truths["html"])) == 4  # with oversubscribed, pools not as asked, faster than the peak
    assert truths["markdown"].count("> **Warning:**") == 4


def test_a_clean_file_has_no_warnings(built):
    assert warning_lines(built["html"]) == []
    assert "**Warning" not in built["markdown"]


def test_older_flat_peaks_give_float64_runs_no_share_of_peak(tmp_path):
    document = {**make_document("old-box", digits=False), "schema": 1}  # migrated on reading
    document["machine"]["peak_gflops"] = {"cpu": 400.0, "cuda": None}
    del document["machine"]["peak_detail"]
    for record in document["results"]:
        record.pop("cpu_utilization", None)
        if record["step_time"]:
            del record["step_time"]["round_medians"]
    build_report([write(tmp_path, "old.json", document)], tmp_path / "out")
    rows = [r for r in read_csv(tmp_path / "out" / "summary.csv") if r["status"] == "ok"]
    for row in rows:
        if row["dtype"] == "float64":
            assert row["peak_fraction"] == ""  # its peak was never measured: no share of the float32 one
        else:
            assert float(row["peak_fraction"]) == pytest.approx(float(row["gflops"]) / 400.0)
    assert {row["dtype"] for row in rows} == {"float32", "float64"}
    # Without rounds the IQR rule ranks: torch_manual and numpy_manual are 33 % apart with 3 % IQRs.
    fastest = [r["implementation"] for r in rows if r["rank"] == "1" and r["dtype"] == "float32"
               and r["size"] == "64×1000×100×10"]
    assert fastest == ["torch_manual"]


def test_slow_starters_left_out_of_a_default_run_are_named_once(tmp_path):
    from sidebyside.ranking import LEFT_OUT

    document = make_document("default-box", digits=False)
    reason = f"{LEFT_OUT} (it compiles for seconds in every fresh process); add --all, or --impl torch_compile"
    document["results"] += [entry("torch_compile", "cpu", dtype, TUTORIAL, status="n/a", reason=reason)
                            for dtype in ("float32", "float64")]
    out = tmp_path / "report"
    build_report([write(tmp_path, "default.json", document)], out)
    html = (out / "index.html").read_text(encoding="utf-8")
    assert f"{LEFT_OUT}: torch_compile (slow to start" in html and "add --all, or --impl NAME" in html
    assert reason not in html  # no row per case ...
    rows = [row for row in csv.DictReader(open(out / "summary.csv", newline="", encoding="utf-8"))
            if row["implementation"] == "torch_compile"]
    assert len(rows) == 2  # ... while the CSV keeps them


def test_which_should_i_use_is_a_short_table_per_device_and_dtype(built):
    rows = read_csv(built["out"] / "choice.csv")
    cpu = built["documents"]["cpu.json"]
    for dtype in ("float32", "float64"):
        ok = sorted((e["step_time"]["median"], e["implementation"]) for e in cpu["results"]
                    if e["status"] == "ok" and e["agrees"] is not False and e["device"] == "cpu"
                    and e["dtype"] == dtype and e["size"] == TUTORIAL and e["workload"] == "two_layer")
        row = next(r for r in rows if r["machine"] == "ci-box" and r["device"] == "cpu" and r["dtype"] == dtype
                   and r["workload"] == "two_layer")
        assert row["fastest"] == ok[0][1] and row["tied"] == "False"  # the synthetic medians are far apart
        assert float(row["step_s"]) == pytest.approx(ok[0][0])
        then = [item.split("=") for item in row["then"].split(";")]
        assert [name for name, _ in then] == [name for _, name in ok[1:]]
        assert [float(ratio) for _, ratio in then] == pytest.approx([m / ok[0][0] for m, _ in ok[1:]], rel=1e-3)
    html = built["html"]
    assert html.index('id="table-choice"') < html.index('class="findings"') < html.index('id="table-summary"')
    assert "### The fastest per device and dtype" in built["markdown"]
