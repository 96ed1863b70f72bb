"""The HTML page: one Jinja2 template, autoescape on, everything embedded.

The page is the report's sections in order (tables.Section), each drawn by
one loop over its blocks; the header's links and the footer's CSV list are
read from them.

The page carries its scripts inline: plotly.js (once, where there is a chart
to draw) and report.js, which draws the charts and runs the code
comparison. Its Content-Security-Policy admits exactly these scripts, by the
sha256 of each, computed here when the page is rendered: no other script,
no inline handler, no eval, no network. Data reaches the page as JSON in
<script type="application/json"> blocks (never executed) with <, >, & and
the JavaScript line separators written as \\u escapes, so no string in a
result file can end its block.
"""

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from sidebyside.report.code import ROW_CLASSES

TEMPLATES = Path(__file__).parent / "templates"
JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src {hashes}"


@dataclass
class Scripts:
    inline: list  # the text of each inline <script>, in page order
    policy: str  # the Content-Security-Policy that admits exactly them


def environment():
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name: result files are untrusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["script_json"] = json_for_script
    environment.globals["row_classes"] = ROW_CLASSES
    return environment


def stylesheet(code_css):
    """Our CSS and pygments', trusted text we wrote or generated."""
    return Markup((TEMPLATES / "style.css").read_text(encoding="utf-8") + "\n" + code_css)


def json_for_script(text):
    """JSON text safe inside <script type="application/json">: <, >, & and U+2028/9 as \\u escapes.

    These characters can only occur inside JSON strings, where the escape
    means the same character, so the parsed value is unchanged.
    """
    return Markup("".join(JSON_ESCAPES.get(character, character) for character in text))


def script_hash(text):
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def page_scripts(with_charts):
    """The page's inline scripts (plotly.js only where a chart is drawn) and the policy that admits them."""
    inline = []
    if with_charts:
        from plotly.offline import get_plotlyjs  # plotly's own bundle, shipped with the python package

        inline.append(get_plotlyjs())
    inline.append((TEMPLATES / "report.js").read_text(encoding="utf-8"))
    for text in inline:
        if "</script" in text.lower():
            raise ValueError("an inline script would end its own <script> element")
    return Scripts([Markup(text) for text in inline],
                   Markup(POLICY.format(hashes=" ".join(script_hash(text) for text in inline))))  # ours: no quote to escape


def render_html(report):
    """The page as a string; `report` is a sidebyside.report.build.Report."""
    with_charts = any(block.kind == "figures" and block.interactive and block.charts
                      for section in report.sections for block in section.blocks if block is not None)
    return environment().get_template("report.html.j2").render(report=report, scripts=page_scripts(with_charts))
