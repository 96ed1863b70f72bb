"""The pytest-benchmark suite runs, groups, and records what a report needs."""

import json
import os
import re
import subprocess
import sys

from tests.conftest import ROOT


def test_benchmarks_record_machine_and_extra_info(tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-only", "-q", "-p", "no:cacheprovider",
         "--impl", "numpy_manual", "--impl", "torch_manual", "--device", "all", "--no-sweep",
         "--threads", "1", "--benchmark-max-time", "0.05", "--benchmark-json", str(output)],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document = json.loads(output.read_text())
    machine = document["machine_info"]
    for key in ("frameworks", "blas", "peak_gflops", "threads", "env", "tf32"):
        assert key in machine
    assert machine["peak_gflops"]["cpu"] > 0
    assert machine["threads"]["requested"] == 1
    groups = {benchmark["group"] for benchmark in document["benchmarks"]}
    assert groups == {"cpu 64,1000,100,10 step", "cpu 64,1000,100,10 loop of 50"}
    for benchmark in document["benchmarks"]:
        info = benchmark["extra_info"]
        assert info["threads"] == 1 and info["device"] == "cpu"
        assert info["first_step_s"] > 0 and info["gflops"] > 0 and info["flops_per_step"] > 0
        assert {"implementation", "framework", "backend", "dtype", "kernels", "N", "D_in", "H", "D_out"} <= set(info)
    cuda_skips = re.findall(r"n/a: no CUDA device", result.stdout)
    assert cuda_skips, "without a GPU the CUDA cases skip and say why"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2, "the quick start has exactly two commands"
    assert commands[0].endswith("sidebyside run")
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
