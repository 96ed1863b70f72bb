"""`pip install -e ".[torch]"` stays small: without the report and digits extras, a run still works.

The environment is this one with the extras' packages taken away: a
sitecustomize puts a copy of site-packages (links) without them in its place,
so Python finds them nowhere, as after an install that never had them.
"""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e  # a virtual environment without the extras, and real runs

# The report and digits extras' import names and distributions (pyproject.toml).
TAKEN_AWAY = ("pandas", "matplotlib", "mpl_toolkits", "jinja2", "pygments", "plotly", "scipy", "sklearn",
              "scikit_learn", "pil", "pillow")

SITE = """
import site, sys

original = {original!r}
sys.path[:] = [entry for entry in sys.path if entry != original]
site.addsitedir({farm!r})
"""


def taken_away(name):
    base = name.lower().split("-")[0].split(".")[0]
    return base in TAKEN_AWAY


@pytest.fixture(scope="module")
def without_extras(tmp_path_factory):
    folder = tmp_path_factory.mktemp("no-extras")
    original = sysconfig.get_paths()["purelib"]
    farm = folder / "site-packages"
    farm.mkdir()
    for entry in Path(original).iterdir():
        if not taken_away(entry.name):
            (farm / entry.name).symlink_to(entry)
    custom = folder / "custom"
    custom.mkdir()
    (custom / "sitecustomize.py").write_text(SITE.format(original=original, farm=str(farm)))
    check = subprocess.run([sys.executable, "-c", "import pandas"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": f"{custom}{os.pathsep}{ROOT}"})
    assert check.returncode != 0 and "No module named 'pandas'" in check.stderr  # really gone
    return {**os.environ, "PYTHONPATH": f"{custom}{os.pathsep}{ROOT}"}


def sidebyside(env, *args):
    return subprocess.run([sys.executable, "-m", "sidebyside.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def test_a_run_without_the_report_and_digits_extras(without_extras, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "run"
    result = sidebyside(without_extras, "run", "--quick", "--impl", "numpy_manual", "--impl", "torch_nn",
                        "--device", "cpu", "--threads", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    entries = {(e["workload"], e["implementation"]): e for e in json.loads((out / "results.json").read_text())["results"]}
    assert entries[("two_layer", "numpy_manual")]["status"] == "ok"
    assert entries[("two_layer", "torch_nn")]["status"] == "ok"
    for name in ("numpy_manual", "torch_nn"):
        digits = entries[("digits", name)]
        assert (digits["status"], digits["reason"]) == ("n/a", 'scikit-learn not installed (pip install -e ".[digits]")')
    note = next(line for line in result.stderr.splitlines() if line.startswith("report: not built: "))
    assert 'pandas, matplotlib, jinja2, pygments, plotly, scipy not installed (pip install -e ".[report]")' in note
    assert not (out / "index.html").exists()


@pytest.mark.parametrize("command", ["report", "compare"])
def test_report_and_compare_say_what_to_install(without_extras, tmp_path, command):
    results = tmp_path / "results.json"
    results.write_text("{}")
    arguments = [str(results), "--out", str(tmp_path / "r")] if command == "report" else [str(results), str(results)]
    result = sidebyside(without_extras, command, *arguments)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line, = result.stderr.strip().splitlines()
    assert line.startswith(f"sidebyside: error: sidebyside {command} needs the report's libraries: pandas")
    assert line.endswith('(pip install -e ".[report]")')


def test_the_core_dependencies_hold_none_of_the_extras():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {requirement.split(">")[0].split("=")[0].split("[")[0].strip().lower() for requirement in project["dependencies"]}
    assert not core & {"pandas", "matplotlib", "jinja2", "pygments", "plotly", "scipy", "scikit-learn", "pillow"}
    extras = project["optional-dependencies"]
    assert "report" in extras["all"][0] and "digits" in extras["all"][0]
