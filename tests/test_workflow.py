"""The example CI workflow (.github/workflows/benchmark.yml): what it runs exists, and its compare step works.

The YAML is read with PyYAML; every `sidebyside ...` command in it must parse
with the CLI's own parser; the comparison step's script is run with bash as
GitHub runs it (bash -e), without a baseline, with one, and with a slower run.
"""

import json
import shlex
import stat
import subprocess
import sys

import pytest
import yaml

from sidebyside.cli import build_parser
from tests.conftest import ROOT
from tests.test_compare import slowed

WORKFLOW = ROOT / ".github" / "workflows" / "benchmark.yml"
REDIRECTIONS = (">", ">>", "|", "&&", "||", ";")


@pytest.fixture(scope="module")
def workflow():
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow):
    (job,) = workflow["jobs"].values()
    return job["steps"]


def scripts(workflow):
    return [step["run"] for step in steps(workflow) if "run" in step]


def sidebyside_commands(workflow):
    """The argument lists of every `sidebyside` command line, cut at a redirection."""
    commands = []
    for script in scripts(workflow):
        for line in script.splitlines():
            words = shlex.split(line, comments=True)
            if not words or words[0] != "sidebyside":
                continue
            cut = next((index for index, word in enumerate(words) if word in REDIRECTIONS), len(words))
            commands.append(words[1:cut])
    return commands


def test_runs_on_push_and_pull_request_with_python_3_11(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the bare key on as true
    assert set(triggers) == {"push", "pull_request"}
    setup = next(step for step in steps(workflow) if step.get("uses", "").startswith("actions/setup-python"))
    assert setup["with"]["python-version"] == "3.11"
    assert 'pip install -e ".[all]"' in scripts(workflow)


def test_every_sidebyside_command_parses_with_the_cli(workflow):
    parser = build_parser()
    parsed = [parser.parse_args(arguments) for arguments in sidebyside_commands(workflow)]
    runs = [args for args in parsed if args.command == "run"]
    compares = [args for args in parsed if args.command == "compare"]
    assert len(runs) == 1 and runs[0].quick and runs[0].strict and runs[0].out == "bench"
    assert len(compares) == 1
    assert compares[0].new == "bench" and compares[0].format == "markdown" and compares[0].fail_on == 10.0


def test_the_results_are_kept_as_an_artifact(workflow):
    upload = next(step for step in steps(workflow) if step.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"] == {"name": "bench", "path": "bench/"} and upload["if"] == "always()"


def compare_step(workflow):
    return next(step for step in steps(workflow) if "sidebyside compare" in step.get("run", ""))


def run_step(step, folder):
    """Run a step's script in `folder` as GitHub does (bash -e), with `sidebyside` on PATH."""
    bin_folder = folder / "bin"
    bin_folder.mkdir(exist_ok=True)
    shim = bin_folder / "sidebyside"
    shim.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" -m sidebyside.cli "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    summary = folder / "summary.md"
    summary.write_text("")
    environment = {"PATH": f"{bin_folder}:/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary), **step["env"]}
    result = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=folder, env=environment,
                            capture_output=True, text=True, timeout=120)
    return result, summary.read_text()


def test_without_a_baseline_the_comparison_is_skipped_and_says_so(workflow, tmp_path):
    result, summary = run_step(compare_step(workflow), tmp_path)
    assert result.returncode == 0, result.stderr
    assert summary.startswith("No baseline at .github/benchmark-baseline/results.json: comparison skipped.")


def test_with_a_baseline_the_summary_gets_the_table_and_a_slowdown_fails(workflow, quick_run, tmp_path):
    step = compare_step(workflow)
    baseline = tmp_path / step["env"]["BASELINE"]
    baseline.parent.mkdir(parents=True)
    document = json.loads((quick_run / "results.json").read_text())
    baseline.write_text(json.dumps(document))
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "results.json").write_text(json.dumps(document))
    result, summary = run_step(step, tmp_path)
    assert result.returncode == 0, result.stderr
    assert summary.startswith("### sidebyside compare") and "| torch\\_manual |" in summary
    (tmp_path / "bench" / "results.json").write_text(json.dumps(slowed(document, "torch_manual")))
    result, summary = run_step(step, tmp_path)
    assert result.returncode == 1
    assert "2.00× slower" in summary and "compare: torch_manual" in result.stderr
