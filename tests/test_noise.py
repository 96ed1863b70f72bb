"""The noise guard: what else the machine does is recorded before a run measures, and warned about."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sidebyside import noise
from sidebyside.results import ResultsError, parse_results
from tests.test_cli import QUICK, load, one_line_error, sidebyside

QUIET = {"load_average": [0.1, 0.1, 0.1], "other_cpu_cores": 0.02, "busy_processes": [], "cpu_mhz": 2600.0,
         "governor": "performance", "turbo": True, "cpus_in_mask": 2, "cpu_count": 2,
         "available_memory_bytes": 16 * 2**30}


def test_a_quiet_machine_gets_no_warning():
    assert noise.warnings(QUIET) == [] and noise.warnings(None) == []


def test_each_skew_gets_one_line():
    lines = noise.warnings({**QUIET, "other_cpu_cores": 1.4, "governor": "powersave",
                            "available_memory_bytes": 2**29,
                            "busy_processes": [{"pid": 7, "name": "make", "cores": 1.3}]})
    assert len(lines) == 3
    assert lines[0].startswith("Busy machine: other processes kept 1.40 cores busy") and "(make 1.30)" in lines[0]
    assert "'powersave', not 'performance'" in lines[1]
    assert lines[2] == "Low memory: 0.5 GiB available as the run started."


@pytest.fixture
def burner():
    """A process that keeps one core busy and is not our child (sh starts it in the background and exits)."""
    started = subprocess.run(["sh", "-c", f"{sys.executable} -c 'while True: pass' >/dev/null 2>&1 & echo $!"],
                             capture_output=True, text=True, check=True)
    pid = int(started.stdout.split()[0])
    time.sleep(0.3)
    yield pid
    os.kill(pid, signal.SIGKILL)


def test_conditions_measure_other_processes(burner):
    conditions = noise.conditions()
    assert conditions["other_cpu_cores"] >= 0.6  # one core spinning, sampled for half a second
    assert conditions["busy_processes"][0]["pid"] == burner
    assert conditions["cpu_count"] == os.cpu_count() and conditions["available_memory_bytes"] > 0
    assert len(conditions["load_average"]) == 3


@pytest.mark.e2e  # a real run beside a busy process
def test_a_busy_machine_is_warned_about_in_the_console_and_the_report(tmp_path, burner):
    out = tmp_path / "run"
    result = sidebyside("run", "--workload", "two_layer", "--quick", "--threads", "1", "--impl", "numpy_manual",
                        "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr
    warning = next(line for line in result.stderr.splitlines() if line.startswith("warning: Busy machine"))
    assert "cores busy as the run started" in warning
    conditions = load(out)["machine"]["conditions"]
    assert conditions["busy_processes"][0]["pid"] == burner
    html = (out / "index.html").read_text(encoding="utf-8")
    assert f"Busy machine: other processes kept {conditions['other_cpu_cores']:.2f} cores busy" in html


@pytest.mark.e2e  # a real run
def test_corrupted_conditions_are_refused_in_one_line(tmp_path):
    out = tmp_path / "run"
    assert sidebyside(*QUICK, "--impl", "numpy_manual", "--device", "cpu", "--out", str(out)).returncode == 0
    document = load(out)
    document["machine"]["conditions"]["other_cpu_cores"] = "lots"
    with pytest.raises(ResultsError, match=r"machine\.conditions\.other_cpu_cores"):
        parse_results(json.dumps(document), "bad.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    assert "machine.conditions.other_cpu_cores" in one_line_error(sidebyside("report", str(bad), "--out", str(tmp_path / "r")))


def test_the_console_names_a_peak_that_moved_during_the_run():
    from sidebyside.cli import run_warnings

    machine = {"conditions": QUIET, "peak_gflops": {"cpu": {"float32": 200.0, "float64": 100.0}},
               "peak_detail": {"start": {"cpu": {"float32": 150.0, "float64": 99.0}},
                               "end": {"cpu": {"float32": 200.0, "float64": 100.0}}}}
    lines = run_warnings({"machine": machine, "results": []})
    assert len(lines) == 1 and "cpu float32 by 25" in lines[0] and "float64" not in lines[0]


def test_the_console_and_the_report_name_a_canary_that_moved_during_the_run():
    from sidebyside.cli import run_warnings
    from sidebyside.report.findings import drift_warning

    def document(canaries):
        entries = [{"step_time": {"median": 3e-4, "canary": series}} for series in canaries]
        return {"machine": {"conditions": QUIET}, "results": entries + [{"step_time": None}]}

    steady = document([[360e-6, 362e-6, None], [365e-6, 361e-6]])  # 1.4 %: no warning
    assert drift_warning(steady) is None and run_warnings(steady) == []
    drifted = document([[360e-6, 362e-6], [648e-6, None]])  # 1.8×
    (line,) = run_warnings(drifted)
    assert line == drift_warning(drifted)
    assert "took 360 µs to 648 µs during the run (1.80×)" in line
