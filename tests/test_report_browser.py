"""The report in a real browser: headless Chromium loads it, offline.

Two small scripts are added to a copy of the page, their hashes added to the
page's own script-src (the rest of its Content-Security-Policy kept). The
first, before any of the page's scripts, records every CSP violation, every
uncaught error and every console.error. The second, once the page has
loaded, records into the DOM how many images there are and how many decoded
(`complete` and a natural width), how many tables, what each interactive
chart drew (plotly's svg and one trace group per trace of its figure),
whether a hostile machine name managed to run script, and what the page
does when the reader clicks: a log/linear button, a legend entry, another
implementation in the code comparison. Chromium prints the resulting DOM
(`--dump-dom`). CI installs the browser with `apt-get install -y chromium`.
"""

import hashlib
import base64
import html
import json
import re
import shutil
import subprocess

import pytest

from sidebyside.report import code
from sidebyside.report.build import build_report
from sidebyside.report.findings import HEADLINE
from tests.test_report import EVIL_IMPLEMENTATION, EVIL_MACHINE, hostile_document
from tests.test_report_data import make_benchmark_json, make_document, write

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium) for the browser test"
)]

WATCH = """
window.__problems = [];
window.addEventListener("securitypolicyviolation", function (event) {
  window.__problems.push("CSP violation: " + event.violatedDirective + " " + event.blockedURI);
});
window.addEventListener("error", function (event) { window.__problems.push("error: " + event.message); });
var pageConsoleError = console.error;
console.error = function () {
  window.__problems.push("console.error: " + Array.prototype.join.call(arguments, " "));
  pageConsoleError.apply(console, arguments);
};
"""
CHECK = """
window.addEventListener("load", function () {
  setTimeout(function () {
    var images = Array.prototype.slice.call(document.images);
    var result = {
      images: images.length,
      loaded: images.filter(function (image) { return image.complete && image.naturalWidth > 0; }).length,
      tables: document.querySelectorAll("table.data").length,
      rows: document.querySelectorAll("table.data tbody tr").length,
      scripts: document.scripts.length,
      pwned: window.__pwned === true,
      viewport: [window.innerWidth, window.innerHeight],
      first_chart_top: (function () {
        var first = document.querySelector("div.plotly-chart");
        return first ? first.getBoundingClientRect().top : null;
      })(),
      first_chart_id: (document.querySelector("div.plotly-chart") || {parentNode: {}}).parentNode.id || null,
      findings: Array.prototype.map.call(document.querySelectorAll("section#summary > ul.findings"),
                                         function (list) { return list.querySelectorAll("li").length; }),
      text: document.body.textContent,
      charts: Array.prototype.map.call(document.querySelectorAll("div.plotly-chart"), function (div) {
        return {id: div.parentNode.id, svg: div.querySelectorAll("svg.main-svg").length,
                drawn: div.querySelectorAll(".scatterlayer .trace, .barlayer .trace").length,
                traces: (div.data || []).length};
      })
    };
    var compare = document.getElementById("compare-two_layer");
    if (compare) {
      result.pickers_shown = !compare.querySelector(".code-pickers").hidden;
      result.pair_before = compare.getAttribute("data-shown");
      result.rows_before = compare.querySelectorAll("tbody tr").length;
      var right = compare.querySelector("select.code-right");
      right.value = "jax_jit";
      right.dispatchEvent(new Event("change"));
      result.pair_after = compare.getAttribute("data-shown");
      result.kinds_after = Array.prototype.map.call(compare.querySelectorAll("tbody tr"), function (row) {
        return row.className;
      });
      result.right_lines_after = Array.prototype.map.call(compare.querySelectorAll("tbody td.src.right"),
                                                          function (cell) { return cell.textContent; });
      result.caption_after = compare.querySelector("th.right-caption h4").textContent;
    }
    var chart = document.querySelector("figure[id^='loss-'] div.plotly-chart");
    if (chart) {  // the mouse over the second trace's point at step 10: plotly's hover label
      var layout = chart._fullLayout;
      var origin = chart.querySelector("svg.main-svg").getBoundingClientRect();
      chart.querySelector(".nsewdrag").dispatchEvent(new MouseEvent("mousemove", {
        bubbles: true, clientX: origin.left + layout.xaxis._offset + layout.xaxis.c2p(10),
        clientY: origin.top + layout.yaxis._offset + layout.yaxis.c2p(chart.calcdata[1][10].y)}));
      result.hover = Array.prototype.map.call(chart.querySelectorAll(".hoverlayer .hovertext"),
                                              function (label) { return label.textContent; });
      result.trace_names = chart._fullData.map(function (trace) { return trace.name; });
      result.axis_before = chart.layout.yaxis.type;
      chart.querySelectorAll(".updatemenu-button")[1].dispatchEvent(new MouseEvent("click", {bubbles: true}));
      result.axis_after = [chart.layout.yaxis.type, chart.layout.yaxis2.type];
      var toggle = chart.querySelectorAll(".legend .traces .legendtoggle")[1];  // the first implementation
      var box = toggle.getBoundingClientRect();
      var at = {bubbles: true, clientX: box.left + 5, clientY: box.top + 5, buttons: 1};
      toggle.dispatchEvent(new MouseEvent("mousedown", at));
      toggle.dispatchEvent(new MouseEvent("mouseup", at));
    }
    setTimeout(function () {  // plotly waits out a double click before it acts on a legend click
      if (chart) {
        result.visible_after_legend_click = chart._fullData.map(function (trace) {
          return [trace.legendgroup, trace.visible];
        });
      }
      result.problems = window.__problems || [];
      var out = document.createElement("pre");
      out.id = "browser-check";
      out.textContent = JSON.stringify(result);
      document.body.appendChild(out);
    }, 600);
  }, 100);
});
"""
CSP = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">')


def digest(script):
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def with_check(page, keep_policy, extra=""):
    """The page plus the watching and checking scripts (and `extra` HTML at the end of the body).

    The page's CSP is kept, its script-src admitting the two scripts by their
    hashes as well, or removed.
    """
    match = CSP.search(page)
    assert match, "the report sets a Content-Security-Policy"
    if keep_policy:
        assert match.group(1).count("script-src ") == 1
        policy = match.group(1).replace("script-src ", f"script-src {digest(WATCH)} {digest(CHECK)} ")
        page = page.replace(match.group(0), f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
                                            f"<script>{WATCH}</script>")
    else:
        page = page.replace(match.group(0), f"<script>{WATCH}</script>")
    return page.replace("</body>", f"<script>{CHECK}</script>{extra}</body>")


def run_chromium(path, profile):
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
        "--window-size=1400,900", "--dump-dom", path.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', result.stdout, re.S)
    assert found, f"no check result in the DOM; chromium said: {result.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser")
    documents = [write(folder, "cpu.json", make_document("ci-box")),
                 write(folder, "gpu.json", make_document("gpu-box", gpu=True)),
                 write(folder, "bench.json", make_benchmark_json()),
                 write(folder, "hostile.json", hostile_document())]
    index = build_report(documents, folder / "out")
    return folder, index.read_text(encoding="utf-8")


def page_scripts(text):
    """How many <script> elements the page itself has (executable and JSON)."""
    return text.count("<script ")


def test_every_figure_loads_the_first_screen_is_a_chart_and_tables_are_present(page):
    folder, text = page
    path = folder / "out" / "checked.html"
    path.write_text(with_check(text, keep_policy=True), encoding="utf-8")
    result = run_chromium(path, folder / "profile-1")
    assert result["problems"] == [], "no CSP violation, no error, nothing on console.error"
    expected_images = text.count("<img ")
    assert result["images"] == expected_images >= 2  # the digits figures
    assert result["loaded"] == result["images"], "every embedded figure decodes under the page's CSP"
    assert result["tables"] == text.count('<table class="data') >= 8
    assert result["rows"] > 100
    assert result["scripts"] == page_scripts(text) + 2  # the page's and our two
    charts = result["charts"]
    assert len(charts) == text.count('class="plotly-chart"') > 10
    for chart in charts:
        assert chart["svg"] >= 1, chart  # plotly drew it
        assert chart["drawn"] == chart["traces"] > 0, chart  # one trace group per trace of its figure
    # At 1400×900, before any scrolling, the step-time chart is in view (four machines in the header: the
    # longest it gets), and each machine's findings list is at most HEADLINE sentences.
    assert result["viewport"][0] == 1400 and result["viewport"][1] <= 900
    assert result["first_chart_id"].startswith("glance-")
    assert 0 < result["first_chart_top"] < result["viewport"][1] - 200  # its bars show, not just its top edge
    assert result["findings"] and all(0 < count <= HEADLINE for count in result["findings"])


def test_the_reader_can_switch_axes_hide_series_and_pick_code(page):
    folder, text = page
    path = folder / "out" / "clicked.html"
    path.write_text(with_check(text, keep_policy=True), encoding="utf-8")
    result = run_chromium(path, folder / "profile-3")
    assert result["problems"] == []
    assert len(result["hover"]) == 1 and "loss " in result["hover"][0]
    # Steps lie under a pixel apart at 500 steps: the closest point is step 10 or a neighbour.
    assert abs(int(re.search(r"step (\d+)", result["hover"][0]).group(1)) - 10) <= 2
    assert any(result["hover"][0].startswith(name) for name in result["trace_names"])
    assert (result["axis_before"], result["axis_after"]) == ("log", ["linear", "linear"])
    visible = result["visible_after_legend_click"]
    clicked = visible[1][0]  # the reference comes first, then the first implementation's loss curve
    assert clicked and sum(group == clicked for group, _ in visible) >= 2  # its loss and its difference
    assert all(state == ("legendonly" if group == clicked else True) for group, state in visible)
    assert result["pickers_shown"] is True
    assert result["pair_before"] == "numpy_manual|torch_manual"
    section = code.code_section("two_layer")
    assert result["rows_before"] == len(section.rows("numpy_manual", "torch_manual"))
    assert result["pair_after"] == "numpy_manual|jax_jit" and result["caption_after"] == "jax_jit.py"
    rows = section.rows("numpy_manual", "jax_jit")  # what difflib aligned when the page was built
    assert result["kinds_after"] == [code.ROW_CLASSES[kind] for _, _, kind in rows]
    source = section.sources["jax_jit"].splitlines()
    assert result["right_lines_after"] == [source[right] if right is not None else "" for _, right, _ in rows]


def test_a_script_the_policy_does_not_name_is_refused_and_seen(page):
    """The negative control: the watcher does see a violation, and the policy does stop the script."""
    folder, text = page
    path = folder / "out" / "injected.html"
    path.write_text(with_check(text, keep_policy=True, extra="<script>window.__pwned = true</script>"),
                    encoding="utf-8")
    result = run_chromium(path, folder / "profile-4")
    assert result["pwned"] is False
    assert any(problem.startswith("CSP violation: script-src") for problem in result["problems"])


def test_hostile_names_show_as_text_even_without_the_csp(page):
    folder, text = page
    path = folder / "out" / "unprotected.html"
    path.write_text(with_check(text, keep_policy=False), encoding="utf-8")
    result = run_chromium(path, folder / "profile-2")
    assert result["pwned"] is False
    assert result["problems"] == []
    assert result["scripts"] == page_scripts(text) + 2
    assert EVIL_MACHINE in result["text"]
    assert EVIL_IMPLEMENTATION in result["text"]
    assert result["loaded"] == result["images"]
    assert all(chart["drawn"] == chart["traces"] > 0 for chart in result["charts"])
