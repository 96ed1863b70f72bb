"""Synthetic result files for the report's tests, and checks that they are valid.

`make_document` writes what `sidebyside run` writes (the current schema): several
implementations on cpu (and cuda where the machine has a GPU, n/a where it
has not), two dtypes, a sweep of sizes, one diverged run, one failed run,
and a digits section. `make_benchmark_json` writes what
`pytest --benchmark-json` writes. The numbers are made up but shaped like
real ones: losses decay like the tutorial's, timings scale with FLOPs.
The other report tests import these builders.
"""

import json
import math

import pytest

from sidebyside.results import SCHEMA_VERSION, load_results

TUTORIAL = {"N": 64, "D_in": 1000, "H": 100, "D_out": 10}
SWEEP = [{"N": 256, "D_in": 1000, "H": 400, "D_out": 10}, {"N": 1024, "D_in": 1000, "H": 1000, "D_out": 10}]
# name -> (framework, backend, cost per step in seconds at the tutorial size on cpu, first step)
IMPLEMENTATIONS = {
    "numpy_manual": ("numpy", "numpy", 2.0e-4, 3e-4),
    "torch_manual": ("torch", "torch", 1.5e-4, 2e-3),
    "torch_autograd": ("torch", "torch", 2.5e-4, 4e-3),
    "torch_nn": ("torch", "torch", 3.0e-4, 5e-3),
    "keras_tensorflow": ("keras", "tensorflow", 1.2e-3, 1.9),
    "keras_jax": ("keras", "jax", 9.0e-4, 0.8),
}


# Measured peaks (GFLOP/s) per device and dtype, as machine.peak_gflops records them.
PEAKS = {"cpu": {"float32": 400.0, "float64": 200.0}, "cuda": {"float32": 50000.0, "float64": 25000.0}}


def flops(size):
    N, D_in, H, D_out = (size[key] for key in ("N", "D_in", "H", "D_out"))
    return 2 * N * D_in * H + 2 * N * H * D_out + 2 * (2 * N * H * D_out) + 2 * N * D_in * H


def reference_losses(steps=500):
    return [3.0e7 * math.exp(-t / 35.0) + 1e-3 for t in range(steps)]


def entry(name, device, dtype, size, status="ok", losses=None, reason=None, speed=1.0, unstable=False,
          workload="two_layer", peak=None):
    framework, backend, cost, first = IMPLEMENTATIONS.get(name, ("numpy", "numpy", 2e-4, 1e-3))
    scale = flops(size) / flops(TUTORIAL)
    median = cost * (0.3 + 0.7 * scale) / speed * (1.0 if dtype == "float32" else 1.8)
    if device == "cuda":  # a fixed launch-and-sync cost, then 30 times the CPU's speed
        median = 3e-4 + median / 30
    record = {
        "workload": workload, "implementation": name, "framework": framework, "backend": backend,
        "device": device, "dtype": dtype, "threads": 2, "size": dict(size), "status": status,
        "reason": reason, "diverged_at": None, "losses": [], "step_time": None, "unstable": unstable,
        "first_step_s": None, "loop_time_s": None, "loop_steps": None, "flops_per_step": flops(size),
        "gflops": None, "peak_fraction": None, "peak_memory_bytes": None, "agreement": None,
        "agreement_tolerance": None, "agrees": None, "extra": {"kernels": "made up"},
    }
    if status != "ok":
        return record
    iqr = median * (0.25 if unstable else 0.03)
    record.update(
        step_time={"median": median, "iqr": iqr, "min": median * 0.9, "max": median * 1.6,
                   "mean": median * 1.02, "stddev": median * 0.05, "rounds": 489,
                   "round_medians": [median * 0.99, median, median * 1.01]},
        cpu_utilization=1.9 if device == "cpu" else 1.0,
        first_step_s=first, loop_time_s=median * 0.8 * 500, loop_steps=500,
        gflops=flops(size) / median / 1e9, peak_memory_bytes=12_500_000 + int(scale * 1e6),
    )
    peak = peak or PEAKS[device][dtype]
    record["peak_fraction"] = record["gflops"] / peak
    if losses is not None:
        record["losses"] = losses
        record.update(agreement=3e-7 if dtype == "float32" else 2e-12,
                      agreement_tolerance=1e-5 if dtype == "float32" else 1e-8, agrees=True)
    return record


def machine(name="ci-box", gpu=False):
    record = {
        "name": name, "system": "Linux", "release": "6.1.0", "arch": "x86_64",
        "cpu": "Intel(R) Xeon(R) Processor", "cpu_count": 2, "python": "3.11.7",
        "frameworks": {"numpy": "2.4.6", "torch": "2.13.0+cpu", "keras": "3.15.0", "jax": "0.10.2"},
        "blas": [
            {"user_api": "blas", "internal_api": "openblas", "version": "0.3.31", "architecture": "SkylakeX",
             "num_threads": 2, "filepath": "/venv/lib/python3.11/site-packages/numpy.libs/libscipy_openblas64_.so"},
            {"user_api": "openmp", "internal_api": "openmp", "version": None, "architecture": None,
             "num_threads": 2, "filepath": "/venv/lib/python3.11/site-packages/torch/lib/libgomp.so.1"},
        ],
        "threads": {"requested": 2}, "env": {"OMP_NUM_THREADS": "2"},
        "gpu": None, "tf32": False, "commit": "abc1234",
        "peak_gflops": {"cpu": dict(PEAKS["cpu"]), "cuda": None},
        # As sidebyside.peak.combine records it: the peak at the start and the end of the run, their spread.
        "peak_detail": {"start": {"cpu": {"float32": 390.0, "float64": 196.0}, "cuda": None},
                        "end": {"cpu": dict(PEAKS["cpu"]), "cuda": None},
                        "spread": {"cpu": {"float32": 10 / 400, "float64": 4 / 200}, "cuda": None},
                        "theoretical": {"float32": 460.8, "float64": 230.4, "cores": 2, "mhz": 3600.0}},
    }
    if gpu:
        record["gpu"] = {"name": "NVIDIA H100 80GB HBM3", "driver": "550.54", "cuda": "12.4",
                         "memory_bytes": 80 * 2**30}
        record["peak_gflops"]["cuda"] = dict(PEAKS["cuda"])
    return record


def make_document(name="ci-box", gpu=False, speed=1.0, digits=True):
    """A results.json document as `sidebyside run` writes it."""
    reference = reference_losses()
    devices = ["cpu", "cuda"]
    results = []
    for implementation in IMPLEMENTATIONS:
        for device in devices:
            for dtype in ("float32", "float64"):
                if device == "cuda" and not gpu:
                    results.append(entry(implementation, device, dtype, TUTORIAL, status="n/a",
                                         reason="no CUDA device"))
                    continue
                if device == "cuda" and implementation == "numpy_manual":
                    results.append(entry(implementation, device, dtype, TUTORIAL, status="n/a",
                                         reason="numpy runs on the CPU only, not 'cuda'"))
                    continue
                if implementation == "keras_jax" and dtype == "float64":
                    results.append(entry(implementation, device, dtype, TUTORIAL, status="failed",
                                         reason="RuntimeError: XLA compilation failed"))
                    continue
                noise = 1e-7 if dtype == "float32" else 1e-13
                losses = [value * (1 + noise * ((step * 7919) % 13 - 6)) for step, value in enumerate(reference)]
                results.append(entry(implementation, device, dtype, TUTORIAL, losses=losses, speed=speed,
                                     unstable=(implementation == "torch_nn" and dtype == "float64")))
            for size in SWEEP:
                if device == "cuda" and (not gpu or implementation == "numpy_manual"):
                    continue
                results.append(entry(implementation, device, "float32", size, speed=speed))
    diverged = entry("torch_autograd", "cpu", "float32", {"N": 4096, "D_in": 1000, "H": 100, "D_out": 10})
    diverged.update(status="diverged", diverged_at=12, reason="loss became inf at step 12",
                    losses=[3e7 * 10 ** (t / 2) for t in range(12)] + [None])
    results.append(diverged)
    if digits:
        for implementation in ("numpy_manual", "torch_nn", "keras_tensorflow"):
            results.append(digits_entry(implementation, speed))
        results.append(entry("keras_jax", "cuda", "float32", {"N": 32, "D_in": 64, "H": 50, "D_out": 10},
                             status="n/a", reason="no CUDA device", workload="digits"))
    return {
        "schema": SCHEMA_VERSION, "tool": "sidebyside", "created": "2026-11-23T10:00:00+00:00",
        "machine": machine(name, gpu),
        "config": {"threads": 2, "steps": 500, "quick": False, "devices": devices,
                   "dtypes": ["float32", "float64"], "tf32": False},
        "references": [{"workload": "two_layer", "size": dict(TUTORIAL), "dtype": "float64",
                        "losses": reference}],
        "results": results,
    }


def digits_entry(implementation, speed=1.0):
    record = entry(implementation, "cpu", "float32", {"N": 32, "D_in": 64, "H": 50, "D_out": 10},
                   workload="digits", speed=speed)
    epoch_time = {"numpy_manual": 0.4, "torch_nn": 0.6, "keras_tensorflow": 1.5}[implementation] / speed
    epochs = []
    for epoch in range(1, 6):
        epochs.append({"epoch": epoch, "train_loss": 2.0 / epoch, "test_accuracy": 0.9 + 0.015 * epoch,
                       "time_s": epoch_time * (3.0 if epoch == 1 and implementation.startswith("keras") else 1.0)})
    record.update(epochs=epochs, test_accuracy=epochs[-1]["test_accuracy"],
                  time_to_target_s=epoch_time * 3, target_accuracy=0.85, first_epoch_s=epochs[0]["time_s"])
    return record


def make_benchmark_json(node="bench-box"):
    """What `pytest --benchmark-json` writes, with sidebyside's extra_info and machine_info keys."""
    benchmarks = []
    for index, implementation in enumerate(("numpy_manual", "torch_manual")):
        median = 2e-4 * (1 + index)
        benchmarks.append({
            "group": "two_layer-cpu-float32", "name": f"test_step[{implementation}]",
            "fullname": f"benchmarks/test_two_layer.py::test_step[{implementation}]", "params": None,
            "param": implementation,
            "extra_info": {"implementation": implementation, "framework": implementation.split("_")[0],
                           "device": "cpu", "dtype": "float32", "threads": 2, **TUTORIAL,
                           "first_step_s": 1e-3, "flops_per_step": flops(TUTORIAL)},
            "options": {"min_rounds": 5, "timer": "perf_counter"},
            "stats": {"min": median * 0.9, "max": median * 2, "mean": median * 1.1, "stddev": median * 0.1,
                      "rounds": 1000, "median": median, "iqr": median * 0.02, "q1": median, "q3": median,
                      "iqr_outliers": 3, "stddev_outliers": 2, "outliers": "2;3", "ld15iqr": median,
                      "hd15iqr": median, "ops": 1 / median, "total": 1000 * median},
        })
    loop = json.loads(json.dumps(benchmarks[0]))  # numpy_manual as one call of train(x, y, 100)
    loop["name"], loop["group"] = "test_loop[numpy_manual]", "two_layer-cpu-float32-loop"
    loop["extra_info"].update(view="loop", loop_steps=100)
    loop["stats"].update(median=100 * 1.5e-4, min=100 * 1.4e-4, mean=100 * 1.6e-4, iqr=100 * 1e-6, rounds=20)
    benchmarks.append(loop)
    return {
        "machine_info": {
            "node": node, "processor": "", "machine": "x86_64", "python_version": "3.11.7",
            "release": "6.1.0", "system": "Linux",
            "cpu": {"brand_raw": "AMD EPYC 7B13", "count": 4, "arch": "X86_64"},
            "frameworks": {"numpy": "2.4.6", "torch": "2.13.0+cpu"},
            "peak_gflops": {"cpu": 200.0, "cuda": None},
        },
        "commit_info": {"id": "abc1234", "dirty": True, "branch": "main"},
        "benchmarks": benchmarks,
        "datetime": "2026-11-23T10:00:00.000000+00:00",
        "version": "5.3.0",
    }


def write(tmp_path, name, document):
    path = tmp_path / name
    path.write_text(json.dumps(document, allow_nan=False))
    return path


def report_of(folder, name, document):
    """The HTML and Markdown report of one document: {"out", "html", "document", "markdown"}."""
    from sidebyside.report.build import build_report

    index = build_report([write(folder, f"{name}.json", document)], folder / "out", formats=("html", "markdown"))
    return {"out": folder / "out", "html": index.read_text(encoding="utf-8"), "document": document,
            "markdown": (folder / "out" / "report.md").read_text(encoding="utf-8")}


def test_synthetic_results_file_is_valid(tmp_path):
    document = load_results(write(tmp_path, "results.json", make_document(gpu=True)))
    statuses = {entry["status"] for entry in document["results"]}
    assert statuses == {"ok", "n/a", "diverged", "failed"}
    assert {entry["workload"] for entry in document["results"]} == {"two_layer", "digits"}
    assert document["machine"]["gpu"]["name"] == "NVIDIA H100 80GB HBM3"


def test_synthetic_benchmark_file_is_valid(tmp_path):
    document = load_results(write(tmp_path, "bench.json", make_benchmark_json()))
    assert document["format"] == "pytest-benchmark"
    assert [entry["implementation"] for entry in document["results"]] == ["numpy_manual", "torch_manual"]


@pytest.mark.parametrize("ratio, text", [(1.8449, "1.84×"), (9.99, "9.99×"), (9.999999999999998, "10×"), (10.0, "10×"),
                                         (123.4, "123×"), (999.6, "1,000×"), (1234.0, "1,234×")])
def test_a_ratio_is_written_by_its_rounded_figure(ratio, text):
    from sidebyside.report import formatting

    assert formatting.times(ratio) == text
