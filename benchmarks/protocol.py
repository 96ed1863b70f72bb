"""Both ways of timing a case, each in its own processes: the suite and `sidebyside run`.

Used by tests/test_benchmark_suite.py (both ways time the same steps) and
benchmarks/test_protocol.py (how far their medians agree, measured).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def suite_entries(tmp_path, names, threads=1):
    """pytest-benchmark's JSON entry of each step case, by implementation."""
    output = tmp_path / "suite.json"
    arguments = [argument for name in names for argument in ("--impl", name)]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "benchmarks" / "test_two_layer.py"), "--benchmark-only", "-q",
         "-p", "no:cacheprovider", "-k", "test_step", *arguments, "--device", "cpu", "--no-sweep",
         "--threads", str(threads), "--benchmark-json", str(output)],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env=ENV,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-3000:] + result.stderr[-3000:])
    return {entry["name"]: entry for entry in json.loads(output.read_text())["benchmarks"]}


def suite_timer(tmp_path):
    """The clock pytest-benchmark timed the last suite_entries with."""
    timer = json.loads((tmp_path / "suite.json").read_text())["benchmarks"][0]["options"]["timer"]
    return timer.rsplit(".", 1)[-1]


def run_entries(tmp_path, names, label, threads=1):
    """`sidebyside run`'s result entry of each implementation (float32, CPU, tutorial size)."""
    out = tmp_path / label
    arguments = [argument for name in names for argument in ("--impl", name)]
    result = subprocess.run(
        [sys.executable, "-m", "sidebyside.cli", "run", "--workload", "two_layer", "--device", "cpu", "--no-sweep",
         "--dtype", "float32", "--threads", str(threads), "--rounds", "1", "--no-report", "--out", str(out),
         *arguments],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env=ENV,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return {entry["implementation"]: entry for entry in json.loads((out / "results.json").read_text())["results"]}
