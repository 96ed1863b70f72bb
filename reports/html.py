"""The HTML page: one Jinja2 template, autoescape on, everything embedded."""

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

TEMPLATES = Path(__file__).parent / "templates"


def environment():
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name: result files are untrusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def stylesheet(code_css):
    """Our CSS and pygments', trusted text we wrote or generated."""
    return Markup((TEMPLATES / "style.css").read_text(encoding="utf-8") + "\n" + code_css)


def render_html(report):
    """The page as a string; `report` is a reports.build.Report."""
    return environment().get_template("report.html.j2").render(report=report)
