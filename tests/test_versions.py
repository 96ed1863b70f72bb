"""Framework versions side by side: `--env NAME=REQUIREMENTS`, the cache of built environments, `sidebyside envs`,
and the report's versions view.

The fast tier: parsing, cache keys and folders, pip's settings passed on to
uv, uv's reasons in one line, building and reusing with a stand-in for uv (a
script that makes the folders uv would), listing and clearing a fake cache,
and the versions section of a hand-made two-environment results file. The
end-to-end tier builds real environments with uv from a small package (six),
runs in them, and reuses them.
"""

import argparse
import json
import os
import stat
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from sidebyside import cli, envs
from sidebyside.report.build import build_report
from tests.test_cli import sidebyside
from tests.test_compare import read_csv, write

SIZE = {"N": 64, "D_in": 1000, "H": 100, "D_out": 10}


# ----------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("numpy==1.26.*", ["numpy==1.26.*"]),
    ("numpy>=2", ["numpy>=2"]),
    ("numpy>=1.26,<2 scipy", ["numpy<2,>=1.26", "scipy"]),
    ("numpy >= 1.26, < 2", ["numpy<2,>=1.26"]),
    ("numpy==1.26.*,scipy>=1.10", ["numpy==1.26.*", "scipy>=1.10"]),
    ("NumPy==2.0.2  jax[cpu]", ["numpy==2.0.2", "jax[cpu]"]),
])
def test_a_requirement_list_is_split_on_commas_and_spaces_but_not_inside_a_specifier(text, expected):
    assert envs.parse_requirements(text) == expected


@pytest.mark.parametrize("text, problem", [
    (" , ", "no requirements"),
    ("numpy==", "'numpy==' is not a requirement"),
    ("numpy[cpu", "'numpy[cpu' is not a requirement"),
])
def test_a_bad_requirement_list_is_one_line(text, problem):
    with pytest.raises(ValueError) as caught:
        envs.parse_requirements(text)
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_a_path_or_a_python_on_the_path_is_an_interpreter_and_anything_else_requirements(tmp_path):
    (tmp_path / "py").write_text("")
    for value in ("../base/.venv/bin/python", "~/venv/bin/python", "python3", "python3.11", str(tmp_path / "py")):
        assert envs.is_interpreter(value), value
    for value in ("numpy==1.26.*", "numpy>=2", "torch==2.12.0 numpy<2", "six"):
        assert not envs.is_interpreter(value), value


def test_the_env_option_keeps_requirements_and_refuses_bad_ones_in_one_line():
    assert cli.environment("np126=numpy==1.26.*") == ("np126", "numpy==1.26.*")
    assert cli.environment("np2= numpy>=2 ") == ("np2", "numpy>=2")
    assert cli.environment("head=~/x/bin/python") == ("head", os.path.expanduser("~/x/bin/python"))
    with pytest.raises(argparse.ArgumentTypeError, match="--env np: 'numpy==' is not a requirement"):
        cli.environment("np=numpy==")
    with pytest.raises(argparse.ArgumentTypeError, match="is not NAME=PYTHON or NAME=REQUIREMENTS"):
        cli.environment("numpy")


def test_a_bad_requirement_on_the_command_line_is_one_line_before_anything_starts(tmp_path, capsys):
    assert cli.main(["run", "--env", "np=numpy==", "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--env np: 'numpy==' is not a requirement" in error[0]
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------
# The cache: where, its keys, pip's settings for uv, uv's reasons
# ----------------------------------------------------------------------------


def test_the_cache_folder_is_the_variable_else_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(envs.CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert envs.cache_root() == tmp_path / "xdg" / "sidebyside" / "envs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert envs.cache_root() == tmp_path / "home" / ".cache" / "sidebyside" / "envs"
    monkeypatch.setenv(envs.CACHE_VARIABLE, str(tmp_path / "mine"))
    assert envs.cache_root() == tmp_path / "mine"


def test_the_cache_key_is_the_requirements_python_and_checkout():
    key = envs.cache_key(["numpy==1.26.*", "six"], "CPython-3.11.7", "/src")
    assert key == envs.cache_key(["six", "numpy==1.26.*"], "CPython-3.11.7", "/src")  # order does not matter
    assert len(key) == 16 and int(key, 16) >= 0
    others = {envs.cache_key(["numpy>=2", "six"], "CPython-3.11.7", "/src"),
              envs.cache_key(["numpy==1.26.*", "six"], "CPython-3.12.1", "/src"),
              envs.cache_key(["numpy==1.26.*", "six"], "CPython-3.11.7", "/elsewhere")}
    assert key not in others and len(others) == 3
    parsed = [envs.parse_requirements(text) for text in ("NumPy==1.26.*", "numpy==1.26.*")]
    assert envs.cache_key(parsed[0]) == envs.cache_key(parsed[1])


def test_pips_index_settings_are_passed_on_to_uv_unless_uvs_own_are_set():
    environ = envs.uv_environment({"PIP_INDEX_URL": "https://mirror/simple", "PIP_FIND_LINKS": "/a /b",
                                   "PIP_EXTRA_INDEX_URL": "file:///x file:///y", "UV_INDEX_URL": "https://uv/simple",
                                   "PIP_CONSTRAINT": "/c.txt"})
    assert environ["UV_INDEX_URL"] == "https://uv/simple"  # uv's own wins
    assert environ["UV_FIND_LINKS"] == "/a,/b"  # uv's list is comma-separated
    assert environ["UV_EXTRA_INDEX_URL"] == "file:///x file:///y" and environ["UV_CONSTRAINT"] == "/c.txt"
    assert "UV_FIND_LINKS" not in envs.uv_environment({"PATH": "/bin"})


def test_uvs_reason_is_one_line_without_its_hints():
    stderr = ("  × No solution found when resolving dependencies:\n"
              "error: No solution found when resolving dependencies\n"
              "  cause: Because numpy==0.0.1 was not found in the package registry and you require\n"
              "         numpy==0.0.1, we can conclude that your requirements are unsatisfiable.\n\n"
              "hint: Packages were unavailable because the network was disabled.\n")
    assert envs.uv_reason(stderr, 1) == (
        "No solution found when resolving dependencies: Because numpy==0.0.1 was not found in the package "
        "registry and you require numpy==0.0.1, we can conclude that your requirements are unsatisfiable.")
    assert envs.uv_reason("error: Failed to fetch: `https://pypi.org/simple/six/`\n  Caused by: dns error\n", 2) == \
        "Failed to fetch: `https://pypi.org/simple/six/`: dns error"
    assert envs.uv_reason("", 3) == "uv exited with status 3"


# ----------------------------------------------------------------------------
# Building and reusing, with a stand-in for uv
# ----------------------------------------------------------------------------


FAKE_UV = r"""#!/bin/sh
echo "$@" >> "$FAKE_UV_CALLS"
case "$1 $2" in
  "venv --quiet") for last; do :; done; mkdir -p "$last/bin" && ln -s "$FAKE_UV_PYTHON" "$last/bin/python" ;;
  "pip install") case "$*" in *0.0.1*)
      echo "error: No solution found when resolving dependencies" >&2
      echo "  cause: Because there is no version of six==0.0.1 and you require six==0.0.1, we can conclude" >&2
      echo "         that your requirements are unsatisfiable." >&2
      echo "hint: nothing" >&2; exit 1;; esac ;;
  "pip list") echo '[{"name": "six", "version": "1.17.0"}, {"name": "numpy", "version": "2.2.6"}]' ;;
esac
"""


@pytest.fixture
def fake_uv(tmp_path, monkeypatch):
    script = tmp_path / "uv"
    script.write_text(FAKE_UV)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls"
    calls.write_text("")
    monkeypatch.setattr(envs, "uv_binary", lambda: str(script))
    monkeypatch.setenv("FAKE_UV_CALLS", str(calls))
    monkeypatch.setenv("FAKE_UV_PYTHON", sys.executable)
    return calls


def test_an_environment_is_built_once_then_found_in_the_cache(fake_uv, tmp_path):
    root = tmp_path / "cache"
    first = envs.ensure("a", "six==1.17.0", root=root)
    assert first.record["cached"] is False and first.record["installed"] == {"six": "1.17.0"}
    assert first.record["requirements"] == "six==1.17.0" and os.path.exists(first.python)
    calls = fake_uv.read_text().splitlines()
    assert [call.split()[:2] for call in calls] == [["venv", "--quiet"], ["pip", "install"], ["pip", "list"]]
    assert "six==1.17.0" in calls[1] and f"--editable {envs.project_root()}" in calls[1]
    again = envs.ensure("b", "six==1.17.0", root=root)
    assert again.record["cached"] is True and again.python == first.python and again.folder == first.folder
    assert len(fake_uv.read_text().splitlines()) == 3  # uv was not run again
    record = envs.read_record(first.folder)
    assert record["names"] == ["a", "b"] and record["name"] == "b" and record["requirements"] == ["six==1.17.0"]


def test_two_runs_asking_for_one_environment_at_once_build_it_once(fake_uv, tmp_path):
    root = tmp_path / "cache"
    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda name: envs.ensure(name, "six==1.17.0", root=root), ["a", "b"]))
    assert sorted(one.record["cached"] for one in built) == [False, True] and built[0].python == built[1].python
    assert [call.split()[0] for call in fake_uv.read_text().splitlines()].count("venv") == 1


def test_a_build_cut_short_is_built_again(fake_uv, tmp_path):
    root = tmp_path / "cache"
    built = envs.ensure("a", "six", root=root)
    (built.folder / envs.MARKER).unlink()  # as if the build had stopped before its record
    assert envs.ensure("a", "six", root=root).record["cached"] is False


def test_an_environment_that_cannot_be_built_is_one_line_and_leaves_nothing(fake_uv, tmp_path):
    root = tmp_path / "cache"
    with pytest.raises(envs.BuildFailed) as caught:
        envs.ensure("bad", "six==0.0.1", root=root)
    assert str(caught.value) == ("No solution found when resolving dependencies: Because there is no version of "
                                 "six==0.0.1 and you require six==0.0.1, we can conclude that your requirements are "
                                 "unsatisfiable.")
    assert [path.name for path in root.iterdir() if path.is_dir()] == []


# ----------------------------------------------------------------------------
# `sidebyside envs` and `sidebyside envs clear`, on a fake cache
# ----------------------------------------------------------------------------


def fake_environment(root, key, names, line, installed, size, last_used):
    folder = root / key
    (folder / "bin").mkdir(parents=True)
    (folder / "lib.bin").write_bytes(b"x" * size)
    requirements = envs.parse_requirements(line)
    (folder / envs.MARKER).write_text(json.dumps({
        "key": key, "names": names, "name": names[-1], "line": line, "requirements": requirements,
        "installed": installed, "python": "CPython-3.11.7", "last_used": last_used}))
    return folder


@pytest.fixture
def fake_cache(tmp_path, monkeypatch):
    root = tmp_path / "envs"
    monkeypatch.setenv(envs.CACHE_VARIABLE, str(root))
    fake_environment(root, "aaaa", ["np126"], "numpy==1.26.*", {"numpy": "1.26.4"}, 1_500_000, "2026-01-02T00:00:00")
    fake_environment(root, "bbbb", ["np2", "head"], "numpy>=2", {"numpy": "2.2.6"}, 2_500_000, "2026-01-03T00:00:00")
    (root / "cccc").mkdir()  # a build cut short
    return root


def run_envs(capsys, *arguments):
    status = cli.main(["envs", *arguments])
    return status, capsys.readouterr().out.splitlines()


def test_envs_lists_every_cached_environment_with_its_size_python_and_last_use(fake_cache, capsys):
    status, lines = run_envs(capsys)
    assert status == 0
    text = "\n".join(lines)
    assert "np126: numpy==1.26.* (numpy 1.26.4)" in text and "np2, head: numpy>=2 (numpy 2.2.6)" in text
    assert f"{fake_cache / 'bbbb'}" in text and "last used 2026-01-03T00:00:00" in text
    assert "python CPython-3.11.7" in text and "(incomplete build)" in text
    sizes = {line.split()[0]: line for line in lines if line.startswith("  ")}
    assert " 2.5 MB " in sizes[str(fake_cache / "bbbb")] and " 1.5 MB " in sizes[str(fake_cache / "aaaa")]
    assert lines[-1].startswith("3 environments, 4.0 MB") and lines[-1].endswith(f"in {fake_cache}")
    assert lines[0].startswith("(incomplete build)") or "cccc" in lines[1]  # never used: listed first


def test_envs_clear_removes_those_that_match_by_name_or_requirements(fake_cache, capsys):
    status, lines = run_envs(capsys, "clear", "head")
    assert status == 0 and lines == [f"removed 1 environment from {fake_cache} (2.5 MB)"]
    assert sorted(path.name for path in fake_cache.iterdir() if path.is_dir()) == ["aaaa", "cccc"]
    run_envs(capsys, "clear", "1.26")  # part of the requirement line
    assert sorted(path.name for path in fake_cache.iterdir() if path.is_dir()) == ["cccc"]
    status, lines = run_envs(capsys, "clear")
    assert status == 0 and not [path for path in fake_cache.iterdir() if path.is_dir()]
    assert run_envs(capsys)[1] == [f"no cached environments in {fake_cache}"]


def test_envs_without_a_cache_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(envs.CACHE_VARIABLE, str(tmp_path / "none"))
    assert run_envs(capsys) == (0, [f"no cached environments in {tmp_path / 'none'}"])


# ----------------------------------------------------------------------------
# The report's versions view, from a hand-made file
# ----------------------------------------------------------------------------


def entry(name, implementation, median, spread=0.01, status="ok", reason=None):
    timed = {}
    if status == "ok":
        rounds = [median * (1 + spread * (i - 2)) for i in range(5)]
        timed = {"step_time": {"median": median, "round_medians": rounds, "canary": [3.6e-4] * 5}}
    return {"workload": "two_layer", "implementation": implementation, "framework": "numpy", "device": "cpu",
            "dtype": "float32", "size": SIZE, "status": status, "reason": reason, "environment": name, **timed}


def versions_document(environments, results):
    return {"schema": 2, "machine": {"name": "box", "environments": environments},
            "config": {}, "references": [], "results": results}


ENVIRONMENTS = {
    "np126": {"python": "3.11.7", "requirements": "numpy==1.26.*", "installed": {"numpy": "1.26.4"},
              "setup_s": 1.8, "cached": False},
    "np2": {"python": "3.11.7", "requirements": "numpy>=2 <script>alert(1)</script>", "installed": {"numpy": "2.2.6"},
            "setup_s": 0.02, "cached": True},
    "bad": {"requirements": "numpy==0.0.1", "error": "No solution found when resolving dependencies"},
}


def test_the_versions_view_has_a_column_per_environment_the_change_and_verdict_and_a_chart(tmp_path):
    reason = "environment bad could not be built: No solution found when resolving dependencies"
    results = [entry("np126", "numpy_manual", 3e-4), entry("np126", "numpy_tuned", 2e-4),
               entry("np2", "numpy_manual", 3.6e-4), entry("np2", "numpy_tuned", 2e-4 * 1.001),
               entry("bad", "numpy_manual", None, status="failed", reason=reason),
               entry("bad", "numpy_tuned", None, status="failed", reason=reason)]
    path = write(tmp_path / "run" / "results.json", versions_document(ENVIRONMENTS, results))
    build_report([path], tmp_path / "report", formats=("html", "markdown"))
    rows = {row["implementation"]: row for row in read_csv((tmp_path / "report" / "versions.csv").read_text())}
    manual, tuned = rows["numpy_manual"], rows["numpy_tuned"]
    assert float(manual["np126_median_s"]) == 3e-4 and float(manual["np2_median_s"]) == 3.6e-4
    assert manual["np2_verdict"] == "1.20× slower" and float(manual["np2_change_percent"]) == pytest.approx(20)
    assert tuned["np2_verdict"] == "tie (within noise)"  # the rounds do not separate: the A/A case
    assert manual["bad_median_s"] == "" and manual["bad_verdict"] == ""
    markdown = (tmp_path / "report" / "report.md").read_text()
    section = markdown.split("## Versions side by side", 1)[1].split("\n## ", 1)[0]
    assert "np126: numpy==1.26.\\* → numpy 1.26.4" in section and "(from the cache)" in section
    assert "bad: numpy==0.0.1: could not be built: No solution found" in section
    assert "| np126 | np2 | bad | np2: change | np2: verdict | bad: change | bad: verdict |" in section
    assert ("| numpy\\_manual | 300 µs | 360 µs | not built (see above) | +20.0% | 1.20× slower | — | — |"
            in section)
    assert (tmp_path / "report" / "figures" / "versions.png").stat().st_size > 1000
    page = (tmp_path / "report" / "index.html").read_text()
    assert 'id="versions"' in page and "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_run_of_one_environment_or_none_has_no_versions_view(tmp_path):
    one = write(tmp_path / "one.json", versions_document({"np2": ENVIRONMENTS["np2"]},
                                                         [entry("np2", "numpy_manual", 3e-4)]))
    build_report([one], tmp_path / "report", formats=("markdown",))
    assert "Versions side by side" not in (tmp_path / "report" / "report.md").read_text()
    assert not (tmp_path / "report" / "versions.csv").exists()


# ----------------------------------------------------------------------------
# End to end: real environments built with uv from a small package
# ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_environments_from_requirements_run_interleaved_are_reused_and_a_bad_one_fails_alone(tmp_path):
    cache = {envs.CACHE_VARIABLE: str(tmp_path / "envs"), "COLUMNS": "200"}
    out = tmp_path / "run"
    result = sidebyside("run", "--impl", "numpy_manual", "--workload", "two_layer", "--device", "cpu", "--quick",
                        "--threads", "1", "--rounds", "4", "--env", "old=six==1.16.0", "--env", "new=six==1.17.0",
                        "--env", "bad=six==0.0.1", "--out", str(out), env=cache, timeout=600)
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "results.json").read_text())
    environments = document["machine"]["environments"]
    if environments["old"].get("error"):
        pytest.skip(f"no package index reachable for uv: {environments['old']['error']}")
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if "--env" in line] == [
        f"sidebyside: --env bad: could not be built: {environments['bad']['error']}"]
    assert "six" in environments["bad"]["error"] and "0.0.1" in environments["bad"]["error"]
    assert environments["old"]["installed"] == {"six": "1.16.0"}
    assert environments["new"]["installed"] == {"six": "1.17.0"}
    assert environments["old"]["requirements"] == "six==1.16.0" and environments["old"]["cached"] is False
    assert environments["old"]["location"] == os.fspath(envs.project_root())  # this checkout, installed editable
    entries = {entry["environment"]: entry for entry in document["results"]}
    assert entries["old"]["status"] == entries["new"]["status"] == "ok"
    assert len(entries["old"]["step_time"]["round_medians"]) == 4
    assert entries["bad"]["status"] == "failed" and entries["bad"]["reason"].startswith(
        "environment bad could not be built: ")
    assert "six==0.0.1" in (out / "environments.log").read_text()  # uv's own words
    versions = {row["implementation"]: row for row in read_csv((out / "versions.csv").read_text())}
    assert versions["numpy_manual"]["new_verdict"] and versions["numpy_manual"]["old_median_s"]
    # The second run finds both in the cache and builds nothing.
    again = sidebyside("run", "--impl", "numpy_manual", "--workload", "two_layer", "--device", "cpu", "--quick",
                       "--threads", "1", "--env", "old=six==1.16.0", "--env", "new=six==1.17.0", "--no-report",
                       "--out", str(tmp_path / "again"), env=cache, timeout=600)
    assert again.returncode == 0, again.stderr
    second = json.loads((tmp_path / "again" / "results.json").read_text())["machine"]["environments"]
    assert second["old"]["cached"] is True and second["new"]["cached"] is True
    assert second["old"]["folder"] == environments["old"]["folder"]
    assert second["old"]["setup_s"] < environments["old"]["setup_s"]
    assert "environment old: six 1.16.0 (cached in " in again.stdout
    listed = sidebyside("envs", env=cache)
    assert listed.returncode == 0 and "old: six==1.16.0 (six 1.16.0)" in listed.stdout
    assert listed.stdout.splitlines()[-1].startswith("2 environments, ")
    cleared = sidebyside("envs", "clear", "old", env=cache)
    assert cleared.returncode == 0 and cleared.stdout.startswith("removed 1 environment from ")
    assert not os.path.exists(environments["old"]["folder"]) and os.path.exists(environments["new"]["folder"])
