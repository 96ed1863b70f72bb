"""The report in a real browser: headless Chromium loads it, offline.

A small script is added to a copy of the page; once the page has loaded it
records, into the DOM, how many images there are and how many decoded
(`complete` and a natural width), how many tables, and whether a hostile
machine name managed to run script. Chromium prints the resulting DOM
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

from reports.build import build_report
from tests.test_report import EVIL_IMPLEMENTATION, EVIL_MACHINE, hostile_document
from tests.test_report_data import make_benchmark_json, make_document, write

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium) for the browser test"
)

CHECK = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var result = {
    images: images.length,
    loaded: images.filter(function (image) { return image.complete && image.naturalWidth > 0; }).length,
    tables: document.querySelectorAll("table.data").length,
    rows: document.querySelectorAll("table.data tbody tr").length,
    scripts: document.scripts.length,
    pwned: window.__pwned === true,
    text: document.body.textContent
  };
  var out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
"""
CSP = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">')


def with_check(page, keep_policy):
    """The page plus the checking script; the page's CSP is kept (allowing only that script) or removed."""
    digest = base64.b64encode(hashlib.sha256(CHECK.encode()).digest()).decode()
    match = CSP.search(page)
    assert match, "the report sets a Content-Security-Policy"
    if keep_policy:
        policy = f'{match.group(1)}; script-src \'sha256-{digest}\''
        page = page.replace(match.group(0), f'<meta http-equiv="Content-Security-Policy" content="{policy}">')
    else:
        page = page.replace(match.group(0), "")
    return page.replace("</body>", f"<script>{CHECK}</script></body>")


def run_chromium(path, profile):
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
        "--dump-dom", path.as_uri(),
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


def test_every_figure_loads_and_tables_are_present(page):
    folder, text = page
    path = folder / "out" / "checked.html"
    path.write_text(with_check(text, keep_policy=True), encoding="utf-8")
    result = run_chromium(path, folder / "profile-1")
    expected_images = text.count("<img ")
    assert result["images"] == expected_images > 10
    assert result["loaded"] == result["images"], "every embedded figure decodes under the page's CSP"
    assert result["tables"] == text.count('<table class="data') >= 8
    assert result["rows"] > 100
    assert result["scripts"] == 1  # ours; the page itself has none


def test_hostile_names_show_as_text_even_without_the_csp(page):
    folder, text = page
    path = folder / "out" / "unprotected.html"
    path.write_text(with_check(text, keep_policy=False), encoding="utf-8")
    result = run_chromium(path, folder / "profile-2")
    assert result["pwned"] is False
    assert result["scripts"] == 1
    assert EVIL_MACHINE in result["text"]
    assert EVIL_IMPLEMENTATION in result["text"]
    assert result["loaded"] == result["images"]
