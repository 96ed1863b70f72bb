"""`sidebyside` end to end: list, run, bad input, divergence, failure, Ctrl-C, resume."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

QUICK = ["run", "--workload", "two_layer", "--quick", "--no-report", "--threads", "1"]


PEAK_BUDGET = "0.5"  # a run here times the peak as --quick does, unless it names its own: the peak is not its subject


def sidebyside(*args, env=None, timeout=300):
    if args[:1] == ("run",) and not {"--quick", "--resume", "--peak-budget"} & set(args):
        args = (*args, "--peak-budget", PEAK_BUDGET)
    return subprocess.run(
        [sys.executable, "-m", "sidebyside.cli", *args], capture_output=True, text=True, timeout=timeout,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def one_line_error(result):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def load(path):
    return json.loads((path / "results.json").read_text())


def test_list_shows_every_implementation_and_availability():
    result = sidebyside("list", env={"COLUMNS": "200"})
    assert result.returncode == 0
    from sidebyside import implementations

    for name in implementations.names():
        assert name in result.stdout
    assert "pip install" not in result.stdout  # everything is installed here: nothing to suggest


REGISTER_ABSENT = """
from sidebyside import implementations
implementations.REGISTRY["numpy_on_nothing"] = implementations.Implementation(
    "numpy_on_nothing", "numpy_manual", "numpy", ("numpy", "no_such_framework_here"), "nosuch")
"""


def test_list_fits_80_columns_never_cuts_a_name_and_suggests_only_what_is_missing(tmp_path):
    from sidebyside import implementations

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(REGISTER_ABSENT)
    result = sidebyside("list", env={"COLUMNS": "80", "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout  # nothing is cut
    rows = {}  # (workload, implementation) -> its cells, wrapped lines joined
    for line in lines:
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) != 5:
            continue
        if cells[1]:
            current = rows[cells[0], cells[1]] = [""] * 5
        for index, cell in enumerate(cells):
            current[index] = f"{current[index]} {cell}".strip()
    for name in implementations.names() + ["numpy_on_nothing"]:
        assert ("two_layer", name) in rows, f"{name} cut or missing"
    absent = rows["two_layer", "numpy_on_nothing"]
    assert absent[3].replace(" ", "") == "no:no_such_framework_herenotinstalled"  # folded, whole
    assert absent[4].replace(" ", "") == 'pipinstall-e".[nosuch]"'
    installed = [rows["two_layer", name] for name in implementations.names()]
    assert installed and all(row[3] == "yes" and row[4] == "" for row in installed)


@pytest.mark.parametrize("args, expected", [
    (["--impl", "torch_magic"], "unknown implementation 'torch_magic'; valid names: numpy_manual"),
    (["--workload", "cifar"], "invalid choice: 'cifar'"),
    (["--device", "tpu"], "invalid choice: 'tpu'"),
    (["--size", "0,1000,100,10"], "'0' must be at least 1"),
    (["--size", "64,1000,100"], "is not N,D_in,H,D_out"),
    (["--steps", "-5"], "'-5' must be at least 1"),
    (["--steps", "many"], "'many' is not a whole number"),
    (["--learning-rate", "0"], "must be a positive finite number"),
    (["--learning-rate", "nan"], "must be a positive finite number"),
    (["--threads", "0"], "'0' must be at least 1"),
    (["--ranks", "-2"], "'-2' must be at least 1"),
    (["--size", "1000000,1000000,1000000,10"], "needs"),
])
def test_bad_arguments_are_one_line_errors(args, expected, tmp_path):
    line = one_line_error(sidebyside("run", *args, "--out", str(tmp_path / "out")))
    assert expected in line
    assert not (tmp_path / "out").exists(), "nothing was started"


def test_memory_refusal_names_the_bytes(tmp_path):
    line = one_line_error(sidebyside("run", "--size", "1000000,1000000,1000,10", "--out", str(tmp_path / "o")))
    assert "bytes" in line and "available" in line


@pytest.mark.e2e  # a real run
def test_quick_run_writes_valid_results(tmp_path):
    out = tmp_path / "run"
    result = sidebyside(*QUICK, "--impl", "numpy_manual", "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stderr
    document = load(out)
    assert document["schema"] == 2 and "migrated_from" not in document  # written in the current schema
    assert document["machine"]["peak_gflops"]["cpu"]["float32"] > 0
    (entry,) = document["results"]
    assert entry["status"] == "ok" and entry["implementation"] == "numpy_manual"
    assert len(entry["losses"]) == 100
    assert entry["step_time"]["median"] > 0 and entry["step_time"]["rounds"] > 50
    assert entry["first_step_s"] > 0 and entry["loop_time_s"] > 0 and entry["gflops"] > 0
    assert entry["agrees"] is True and entry["agreement"] < 1e-3
    # One thread asked for: every pool, as its library reports it in the worker, has one; one CPU ran them.
    assert entry["threads"] == 1 and set(entry["extra"]["threads_read_back"].values()) == {1}
    assert entry["extra"]["runnable_threads"]["cpus"] == 1 and entry["extra"]["threads_cpus"].count(",") == 0
    assert "openblas" in entry["extra"]["kernels"].lower() or "blas" in entry["extra"]["kernels"].lower()


@pytest.mark.e2e  # real runs
def test_cuda_without_gpu(tmp_path):
    from sidebyside.machine import gpu
    from tests.conftest import skip_if_missing

    if gpu():
        pytest.skip("a GPU is present")
    line = one_line_error(sidebyside(*QUICK, "--impl", "numpy_manual", "--device", "cuda",
                                     "--out", str(tmp_path / "cuda")))
    assert "nothing could run here: numpy runs on the CPU only" in line
    skip_if_missing("torch_manual")  # a framework with a CUDA build: its own reason, beside a CPU row that ran
    result = sidebyside(*QUICK, "--impl", "torch_manual", "--device", "all", "--out", str(tmp_path / "all"))
    assert result.returncode == 0, result.stderr
    by_device = {entry["device"]: entry for entry in load(tmp_path / "all")["results"]}
    assert by_device["cpu"]["status"] == "ok"
    assert by_device["cuda"]["status"] == "n/a" and by_device["cuda"]["reason"] == "no CUDA device"


def available(*names):
    from sidebyside import implementations

    return [name for name in names if implementations.missing(name) is None]


@pytest.mark.e2e  # a real run
def test_divergence_is_marked_and_the_run_goes_on(tmp_path):
    out = tmp_path / "diverge"
    names = available("numpy_manual", "torch_manual")
    arguments = [argument for name in names for argument in ("--impl", name)]
    result = sidebyside(*QUICK, *arguments, "--device", "cpu", "--learning-rate", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    entries = load(out)["results"]
    assert sorted(entry["implementation"] for entry in entries) == sorted(names)
    for entry in entries:
        assert entry["status"] == "diverged"
        assert 0 < entry["diverged_at"] < 20
        assert entry["losses"][-1] is None, "inf/NaN is stored as null, never as invalid JSON"
    assert "diverged at step" in result.stdout


SITE_BREAK = """
import os
if os.environ.get("BREAK_IMPLEMENTATION"):
    import importlib
    module = importlib.import_module("sidebyside.implementations.two_layer." + os.environ["BREAK_IMPLEMENTATION"])
    original = module.Net.train_step
    calls = [0]
    def broken(self, x, y):
        calls[0] += 1
        if calls[0] > 5:
            raise FloatingPointError("simulated fault in step 6")
        return original(self, x, y)
    module.Net.train_step = broken
"""


@pytest.mark.e2e  # a real run
def test_a_failing_implementation_does_not_stop_the_others(tmp_path):
    from tests.conftest import skip_if_missing

    skip_if_missing("torch_manual")  # the other implementation that must go on
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITE_BREAK)
    out = tmp_path / "fail"
    result = sidebyside(*QUICK, "--impl", "numpy_manual", "--impl", "torch_manual", "--device", "cpu",
                        "--out", str(out),
                        env={"PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "BREAK_IMPLEMENTATION": "numpy_manual"})
    assert result.returncode == 0, result.stderr
    entries = {entry["implementation"]: entry for entry in load(out)["results"]}
    failed, ok = entries["numpy_manual"], entries["torch_manual"]
    assert failed["status"] == "failed"
    assert failed["reason"] == "FloatingPointError: simulated fault in step 6"
    assert ok["status"] == "ok"
    log = (out / "worker.log").read_text()
    assert "Traceback" in log and "simulated fault" in log


def test_unwritable_output_is_refused_before_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_line_error(sidebyside(*QUICK, "--impl", "numpy_manual", "--out", str(blocker / "run")))
    assert line.startswith("sidebyside: error: cannot write to")
    line = one_line_error(sidebyside(*QUICK, "--impl", "numpy_manual", "--out", str(tmp_path / "no" / "run")))
    assert "does not exist" in line


@pytest.mark.e2e  # a real run, interrupted
def test_ctrl_c_keeps_what_was_measured_and_says_how_to_resume(tmp_path):
    out = tmp_path / "interrupted"
    names = ["numpy_manual", "torch_manual", "torch_autograd", "torch_nn"]
    command = [sys.executable, "-m", "sidebyside.cli", "run", "--workload", "two_layer", "--device", "cpu",
               "--no-report", "--threads", "1", "--steps", "3000", "--no-sweep", "--dtype", "float32",
               "--out", str(out)]
    for name in names:
        command += ["--impl", name]
    process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if load(out)["results"]:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("no entry was written in two minutes")
    process.send_signal(signal.SIGINT)
    start = time.monotonic()
    _, stderr = process.communicate(timeout=30)
    assert time.monotonic() - start < 3, "the run stops within about two seconds"
    assert process.returncode == 130
    assert "Traceback" not in stderr and f"--resume {out}" in stderr
    kept = load(out)["results"]
    assert 1 <= len(kept) < len(names)
    assert not list(out.glob(".results-*")), "no half-written temporary file is left"

    # Resuming it is tests/test_resume.py's: the entries of an interrupted and resumed run against an
    # uninterrupted one's, and compare's verdicts on them.


@pytest.mark.e2e
def test_the_peak_budget_sets_how_long_the_peak_is_timed(tmp_path):
    result = sidebyside("run", "--impl", "numpy_manual", "--workload", "two_layer", "--device", "cpu", "--no-sweep",
                        "--steps", "20", "--rounds", "1", "--dtype", "float32", "--no-report", "--peak-budget", "0.3",
                        "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    detail = load(tmp_path / "run")["machine"]["peak_detail"]
    assert detail["budget_s"]["cpu"] == 0.3
    timed = detail["cpu"]["elapsed_s"] - detail["cpu"]["setup_s"]  # the products' own seconds, set-up apart
    assert 0.3 <= timed < 2.0  # the default budget alone would take 2 s
