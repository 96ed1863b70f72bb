"""A team's benchmark definition in a file: sidebyside.toml or pyproject's [tool.sidebyside]; flags win."""

import json
import os
import subprocess
import sys

import pytest

from sidebyside.cli import build_parser, config_from, with_settings
from sidebyside.workloads.two_layer.tasks import sizes, sweep
from tests.conftest import ROOT


def config_in(directory, *argv, monkeypatch):
    monkeypatch.chdir(directory)
    parser = build_parser()
    argv = ["run", *argv]
    return config_from(with_settings(parser.parse_args(argv), argv, parser.run_parser))


def test_sidebyside_toml_sets_the_run_and_flags_win(tmp_path, monkeypatch):
    (tmp_path / "sidebyside.toml").write_text(
        'threads = 1\nimpl = ["numpy_manual", "torch_nn"]\nsize = ["32,100,10,5", [16, 50, 5, 5]]\n'
        'no_sweep = true\nlearning_rate = 2e-6\ndevice = "cpu"\nworkload = ["two_layer"]\n')
    config = config_in(tmp_path, monkeypatch=monkeypatch)
    assert config.threads == 1 and config.implementations == ("numpy_manual", "torch_nn")
    assert sizes(config) == ((32, 100, 10, 5), (16, 50, 5, 5)) and sweep(config) == ()
    assert config.option("learning_rate") == 2e-6 and config.devices == ("cpu",) and config.workloads == ("two_layer",)
    assert config.settings_file == str(tmp_path / "sidebyside.toml")
    config = config_in(tmp_path, "--threads", "2", "--impl", "jax_jit", "--learning", "3e-6", monkeypatch=monkeypatch)
    assert config.threads == 2 and config.implementations == ("jax_jit",) and config.option("learning_rate") == 3e-6
    assert sizes(config) == ((32, 100, 10, 5), (16, 50, 5, 5))  # what the flags did not give still comes from the file


def test_pyproject_table_is_read_and_other_tables_ignored(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mine"\n\n[tool.sidebyside]\nsteps = 50\nquick = true\n')
    config = config_in(tmp_path, monkeypatch=monkeypatch)
    assert config.steps == 50 and config.quick and config.settings_file.endswith("pyproject.toml")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "mine"\n')
    assert config_in(tmp_path, monkeypatch=monkeypatch).settings_file == ""


@pytest.mark.parametrize("text, expected", [
    ("colour = 'blue'\n", "unknown setting 'colour'"),
    ("threads = 0\n", "argument --threads: '0' must be at least 1"),
    ("threads = [1, 2]\n", "threads takes one value, got 2"),
    ("quick = 'yes'\n", "quick must be true or false"),
    ("out = '/tmp/x'\n", "unknown setting 'out'"),
    ("threads = \n", "not readable TOML"),
])
def test_a_bad_settings_file_is_one_line_naming_it(tmp_path, text, expected):
    (tmp_path / "sidebyside.toml").write_text(text)
    result = subprocess.run([sys.executable, "-m", "sidebyside.cli", "run", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line, = result.stderr.strip().splitlines()
    assert line.startswith(f"sidebyside: error: {tmp_path / 'sidebyside.toml'}: ") and expected in line


@pytest.mark.e2e  # a real run
def test_a_run_records_the_merged_settings(tmp_path):
    (tmp_path / "sidebyside.toml").write_text(
        '[tool.sidebyside]\nimpl = ["numpy_manual"]\nworkload = ["two_layer"]\nquick = true\n'
        'device = "cpu"\nno_report = true\nthreads = 2\n')
    result = subprocess.run([sys.executable, "-m", "sidebyside.cli", "run", "--threads", "1", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    config = document["config"]
    assert config["implementations"] == ["numpy_manual"] and config["threads"] == 1 and config["quick"]
    assert config["settings_file"] == str(tmp_path / "sidebyside.toml")
    assert [e["implementation"] for e in document["results"]] == ["numpy_manual"]
    assert not (tmp_path / "out" / "index.html").exists()


def test_version():
    result = subprocess.run([sys.executable, "-m", "sidebyside.cli", "--version"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    from importlib import metadata

    assert result.returncode == 0 and result.stdout.strip() == f"sidebyside {metadata.version('sidebyside')}"


def test_the_documented_example_is_a_valid_settings_file(tmp_path, monkeypatch):
    readme = (ROOT / "docs" / "running.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "pyproject.toml").write_text(example)
    config = config_in(tmp_path, monkeypatch=monkeypatch)
    assert config.implementations == ("numpy_manual", "torch_manual", "jax_jit") and config.threads == 2
    assert sizes(config) == ((64, 1000, 100, 10), (256, 1000, 400, 10)) and config.dtypes == ("float32",)
    assert sweep(config) == ()
