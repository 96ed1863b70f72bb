"""`sidebyside run --env NAME=PYTHON`: the same cases in several environments, rounds interleaved, one file.

The parts in process: the option's parsing, the document split by environment
(sidebyside.results.by_environment), and `compare RUN` on a hand-made file.
Then one real run with two environments: the running interpreter, and a
wrapper script around it (an interpreter path of its own, as a second
virtual environment would have).
"""

import json
import os
import stat
import sys

import pytest

from sidebyside.results import by_environment, parse_results
from tests.test_cli import one_line_error, sidebyside
from tests.test_compare import read_csv, write

pytestmark = pytest.mark.e2e  # real runs in two environments


def test_env_must_be_name_equals_python_and_named_once():
    line = one_line_error(sidebyside("run", "--env", "python3", "--no-report"))
    assert "'python3' is not NAME=PYTHON" in line
    line = one_line_error(sidebyside("run", "--env", "a b=python3", "--no-report"))
    assert "'a b' is not a usable environment name" in line
    line = one_line_error(sidebyside("run", "--env", f"a={sys.executable}", "--env", f"a={sys.executable}"))
    assert line == "sidebyside: error: --env a given twice; each environment needs a name of its own"


def test_an_interpreter_that_cannot_run_or_lacks_sidebyside_is_one_line_before_anything_starts(tmp_path):
    out = tmp_path / "run"
    line = one_line_error(sidebyside("run", "--impl", "numpy_manual", "--env", "a=/nonexistent/python",
                                     "--out", str(out)))
    assert line == "sidebyside: error: --env: /nonexistent/python: cannot run it (No such file or directory)"
    bare = tmp_path / "bare"  # an environment without sidebyside
    import venv

    venv.EnvBuilder(with_pip=False).create(bare)
    # Run from this checkout: its sidebyside/ folder must not count as the environment's.
    line = one_line_error(sidebyside("run", "--impl", "numpy_manual", "--env", f"a={bare / 'bin' / 'python'}",
                                     "--out", str(out), env={"PYTHONPATH": ""}))
    assert line.endswith("python: cannot import sidebyside")
    assert not (out / "results.json").exists()


def document_with(environments):
    entries = []
    for name in environments:
        for implementation in ("numpy_manual", "torch_manual"):
            entries.append({"workload": "two_layer", "implementation": implementation, "device": "cpu",
                            "dtype": "float32", "size": {"N": 64, "D_in": 1000, "H": 100, "D_out": 10},
                            "status": "ok", "environment": name,
                            "step_time": {"median": 3e-4, "round_medians": [3e-4 * (1 + 0.01 * i) for i in range(5)],
                                          "canary": [3.6e-4] * 5}})
    return {"schema": 1, "machine": {"name": "box", "environments": {name: {"python": "3.11"} for name in environments}},
            "config": {}, "references": [], "results": entries}


def test_a_run_of_two_environments_reads_as_two_machines():
    document = parse_results(json.dumps(document_with(["base", "head"])), "run.json")
    base, head = by_environment(document)
    assert base["machine"]["name"] == "box [base]" and head["machine"]["name"] == "box [head]"
    assert {entry["environment"] for entry in base["results"]} == {"base"} and len(head["results"]) == 2
    plain = parse_results(json.dumps({**document_with([]), "results": document_with(["x"])["results"]}), "p.json")
    assert [part["machine"]["name"] for part in by_environment(plain)] == ["box [x]"]  # an entry's own name


def test_compare_of_one_run_compares_its_environments(tmp_path):
    document = document_with(["base", "head"])
    for entry in document["results"]:
        if entry["environment"] == "head" and entry["implementation"] == "numpy_manual":
            entry["step_time"]["round_medians"] = [x * 1.2 for x in entry["step_time"]["round_medians"]]
            entry["step_time"]["median"] *= 1.2
    path = write(tmp_path / "run.json", document)
    result = sidebyside("compare", str(path), "--format", "csv", "--fail-on", "median:10%")
    assert result.returncode == 1, result.stderr
    rows = {row["implementation"]: row for row in read_csv(result.stdout)}
    assert rows["numpy_manual"]["verdict"] == "1.20× slower" and rows["torch_manual"]["verdict"] == "~"
    assert result.stderr.startswith("compare: numpy_manual (two_layer, cpu, float32, 64×1000×100×10): +20.0%")
    swapped = read_csv(sidebyside("compare", str(path), "--between", "head", "base", "--format", "csv").stdout)
    assert {row["implementation"]: row["verdict"] for row in swapped}["numpy_manual"] == "1.20× faster"
    for arguments, expected in [
        ((str(path), "--between", "base", "nope"), "no environment 'nope'; it holds base, head"),
        ((str(path), str(path)), "holds several environments (base, head): compare them with"),
        ((str(write(tmp_path / "one.json", document_with(["base"]))),), "holds no two environments"),
    ]:
        assert expected in one_line_error(sidebyside("compare", *arguments))


@pytest.mark.e2e
def test_two_environments_run_interleaved_into_one_file_and_compare(tmp_path):
    wrapper = tmp_path / "other-python"
    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    out = tmp_path / "run"
    result = sidebyside("run", "--impl", "numpy_manual", "--workload", "two_layer", "--device", "cpu", "--quick",
                        "--threads", "1", "--rounds", "4", "--env", f"a={sys.executable}", "--env", f"b={wrapper}",
                        "--strict", "--out", str(out), env={"COLUMNS": "150"})
    assert result.returncode == 0, result.stderr
    assert "· env a" in result.stdout and "· env b" in result.stdout  # the console ranks each environment apart
    document = json.loads((out / "results.json").read_text())
    environments = document["machine"]["environments"]
    assert list(environments) == ["a", "b"]
    assert environments["a"]["executable"] == environments["b"]["executable"]  # the wrapper ran this Python
    assert environments["a"]["frameworks"]["numpy"] == document["machine"]["frameworks"]["numpy"]
    assert sorted(entry["environment"] for entry in document["results"]) == ["a", "b"]
    for entry in document["results"]:
        timing = entry["step_time"]
        assert entry["status"] == "ok" and len(timing["round_medians"]) == len(timing["canary"]) == 4
    # Round k of both environments before round k + 1, each in its own fresh process.
    assert [sorted(order) for order in document["rounds"]] == [["two_layer:numpy_manual@a",
                                                                 "two_layer:numpy_manual@b"]] * 4
    rows = read_csv(sidebyside("compare", str(out), "--format", "csv").stdout)
    assert [row["implementation"] for row in rows] == ["numpy_manual"] and rows[0]["p_value"] != ""
    report = sidebyside("report", str(out / "results.json"), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    machines = (tmp_path / "report" / "machines.csv").read_text().splitlines()[0]
    name = document["machine"]["name"]
    assert f"{name} [a]" in machines and f"{name} [b]" in machines and "verdict" in machines
    assert os.path.exists(tmp_path / "report" / "index.html")

