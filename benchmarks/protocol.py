"""Both ways of timing a case, each in its own processes: the suite and `sidebyside run`.

Used by tests/test_benchmark_suite.py (both ways time the same steps) and
benchmarks/test_protocol.py (how far their medians agree, measured). Each
way times the tutorial size in full and, where asked, sweep sizes; entries
come back by (implementation, size).

`sidebyside run` has no flag for a sweep size of one's choosing (--sweep is
the whole grid), so the run is started as the command starts it, with the
configuration built here: `runner.execute` with the run's defaults.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from sidebyside.workloads.two_layer.tasks import TUTORIAL_SIZE

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SWEEP_SIZE = (256, 1000, 100, 10)  # a sweep size whose budget a unit test can afford
# `sidebyside run` of a configuration: names, full sizes, sweep sizes, threads, output folder (JSON arguments).
RUN = """
import json, sys
from pathlib import Path
from sidebyside import runner
from sidebyside.config import RunConfig

names, sizes, sweep, threads, out = json.loads(sys.argv[1])
config = RunConfig(implementations=tuple(names), workloads=("two_layer",), devices=("cpu",), dtypes=("float32",),
                   options={"sizes": sizes, "sweep": sweep}, threads=threads, rounds=1)
runner.execute(config, Path(out), show_progress=False)
"""


def size_label(size):
    return ",".join(map(str, size))


def size_of(info):
    return tuple(info[key] for key in ("N", "D_in", "H", "D_out"))


def suite_entries(tmp_path, names, threads=1, sweep=()):
    """pytest-benchmark's JSON entry of each step case, by (implementation, size)."""
    output = tmp_path / "suite.json"
    cases = [f"{ROOT / 'benchmarks' / 'test_two_layer.py'}::test_step[{name}-cpu-{size_label(size)}]"
             for size in (TUTORIAL_SIZE, *sweep) for name in names]
    arguments = [argument for name in names for argument in ("--impl", name)]
    arguments += [argument for size in sweep for argument in ("--sweep-size", size_label(size))]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *cases, "--benchmark-only", "-q", "-p", "no:cacheprovider", *arguments,
         "--device", "cpu", *([] if sweep else ["--no-sweep"]), "--threads", str(threads),
         "--benchmark-json", str(output)],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env=ENV,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-3000:] + result.stderr[-3000:])
    return {(entry["name"], size_of(entry["extra_info"])): entry for entry in json.loads(output.read_text())["benchmarks"]}


def suite_timer(tmp_path):
    """The clock pytest-benchmark timed the last suite_entries with."""
    timer = json.loads((tmp_path / "suite.json").read_text())["benchmarks"][0]["options"]["timer"]
    return timer.rsplit(".", 1)[-1]


def run_entries(tmp_path, names, label, threads=1, sweep=()):
    """`sidebyside run`'s result entry of each case (float32, CPU, one round), by (implementation, size)."""
    out = tmp_path / label
    arguments = json.dumps([list(names), [TUTORIAL_SIZE], list(sweep), threads, str(out)])
    result = subprocess.run([sys.executable, "-c", RUN, arguments], capture_output=True, text=True, cwd=ROOT,
                            timeout=600, env=ENV)
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    results = json.loads((out / "results.json").read_text())["results"]
    return {(entry["implementation"], size_of(entry["size"])): entry for entry in results}
