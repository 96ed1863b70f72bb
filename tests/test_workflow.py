"""The example CI workflow (.github/workflows/benchmark.yml): what it runs exists, and its A/B step works.

The YAML is read with PyYAML; every `sidebyside ...` command in it must parse
with the CLI's own parser; the A/B step's script is run with bash as GitHub
runs it (bash -e) without a base commit, and .ci/ab-compare, which it calls,
runs for real against this commit with a slowdown injected into one side.
"""

import json
import os
import shlex
import subprocess
import sys

import pytest
import yaml

from sidebyside.cli import build_parser
from tests.conftest import ROOT

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
    assert any('pip install -e ".[all]"' in script for script in scripts(workflow))
    checkout = next(step for step in steps(workflow) if step.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0  # the base commit is there for the worktree


def test_every_sidebyside_command_parses_with_the_cli(workflow):
    parser = build_parser()
    parsed = [parser.parse_args(arguments) for arguments in sidebyside_commands(workflow)]
    runs = [args for args in parsed if args.command == "run"]
    assert len(runs) == 1 and runs[0].quick and runs[0].strict and runs[0].out == "bench"


def test_the_results_are_kept_as_artifacts(workflow):
    uploads = [step for step in steps(workflow) if step.get("uses", "").startswith("actions/upload-artifact")]
    assert {(step["with"]["name"], step["with"]["path"]) for step in uploads} == {("bench", "bench/"), ("ab", "ab/")}
    assert all(step["if"] == "always()" for step in uploads)


def ab_step(workflow):
    return next(step for step in steps(workflow) if ".ci/ab-compare" in step.get("run", ""))


def test_the_ab_step_compares_with_the_base_commit_interleaved(workflow):
    step = ab_step(workflow)
    assert step["env"]["BASE"] == "${{ github.event.pull_request.base.sha || github.event.before }}"
    assert 'bash .ci/ab-compare "$BASE" ab >> "$GITHUB_STEP_SUMMARY"' in step["run"]
    script = (ROOT / ".ci" / "ab-compare").read_text()
    for words in ("git -C \"$root\" worktree add --detach", "--env base=", "--env head=",
                  "compare \"$out\" --between base head", "--fail-on \"${AB_FAIL_ON:-median:10%}\""):
        assert words in script


def run_step(step, folder, env=None):
    """Run a step's script in `folder` as GitHub does (bash -e)."""
    summary = folder / "summary.md"
    summary.write_text("")
    environment = {"PATH": "/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary), **(env or step["env"])}
    result = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=folder, env=environment,
                            capture_output=True, text=True, timeout=120)
    return result, summary.read_text()


@pytest.mark.parametrize("base", ["", "0000000000000000000000000000000000000000"])
def test_without_a_base_commit_the_comparison_is_skipped_and_says_so(workflow, tmp_path, base):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    result, summary = run_step(ab_step(workflow), tmp_path, {"BASE": base})
    assert result.returncode == 0, result.stderr
    assert summary.startswith("No base commit to compare with (a new branch): comparison skipped.")


def light_environment(folder, source):
    """A virtual environment holding `source` installed editable, its dependencies read from this one's.

    The test's stand-in for `pip install -e ".[torch,report]"` into a fresh environment (minutes and
    a GB): the same interpreter, sidebyside from `source`, every other package from the running one.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    (site,) = (folder / "lib").glob("python3*/site-packages")
    (site / "dependencies.pth").write_text("\n".join(path for path in sys.path if path.endswith("site-packages")))
    subprocess.run([folder / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "-e", str(source)], check=True, capture_output=True, timeout=300)
    return folder


@pytest.mark.e2e
def test_ab_compare_runs_both_commits_interleaved_and_fails_on_a_slowdown(tmp_path):
    """.ci/ab-compare against this very commit, numpy_manual made 3× slower in the head only: exit 1, named.

    Every process of both environments imports benchmarks/verdicts/sitecustomize.py; only the module
    under this checkout is slowed.
    """
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if commit.returncode != 0:
        pytest.skip("not a git checkout: no commit to check out as the base")
    work = tmp_path / "work"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(work / "base"), "HEAD"],
                   check=True, capture_output=True)
    try:
        light_environment(work / "base-venv", work / "base")
        light_environment(work / "head-venv", ROOT)
        environment = {**os.environ, "AB_WORK": str(work), "AB_FORMAT": "csv", "AB_FAIL_ON": "median:20%",
                       "PYTHONPATH": str(ROOT / "benchmarks" / "verdicts"),
                       "SIDEBYSIDE_SLOWDOWN": "numpy_manual:2", "SIDEBYSIDE_SLOWDOWN_IN": str(ROOT),
                       "AB_RUN": "--impl numpy_manual --impl torch_manual --workload two_layer --device cpu "
                                 "--quick --rounds 4 --threads 1"}
        result = subprocess.run(["bash", str(ROOT / ".ci" / "ab-compare"), "HEAD", str(tmp_path / "ab")],
                                capture_output=True, text=True, env=environment, timeout=600, cwd=ROOT)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "base")],
                       capture_output=True)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "compare: numpy_manual (" in result.stderr and "compare: torch_manual (" not in result.stderr
    document = json.loads((tmp_path / "ab" / "results.json").read_text())
    environments = document["machine"]["environments"]
    assert list(environments) == ["base", "head"]
    assert environments["base"]["location"] == str(work / "base") and environments["head"]["location"] == str(ROOT)
    assert {(entry["implementation"], entry["environment"]) for entry in document["results"]} == {
        (name, side) for name in ("numpy_manual", "torch_manual") for side in ("base", "head")}
    # Round k of both environments ran before round k + 1.
    assert all(len({label.split("@")[1] for label in order}) == 2 for order in document["rounds"])
