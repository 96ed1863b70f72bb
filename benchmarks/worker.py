"""Measure the implementations of one framework in a process of their own.

The runner starts `python -m benchmarks.worker JOB.json OUT.jsonl LOG` once
per framework (numpy; torch; TensorFlow; JAX; Keras joins the process of its
backend), so thread pools are sized before the import, no other framework's
pools compete for the cores, and Keras is free to take its backend. The
import is paid once per process and recorded as `extra.import_s`; every
implementation's first step is timed on a fresh net. Each finished entry is
appended to OUT.jsonl at once, so a crash or Ctrl-C loses at most the entry
in progress.
"""

import json
import math
import os
import sys
import traceback

from benchmarks import fairness

# Where each registry "requires" name gets its threads and precision set.
TUNED_FRAMEWORKS = ("torch", "tensorflow", "jax")


def base_entry(spec, task, threads):
    return {
        "workload": task["workload"],
        "implementation": spec.name,
        "framework": spec.framework,
        "backend": spec.backend,
        "device": task["device"],
        "dtype": task["dtype"],
        "threads": threads,
        "size": task["size"],
        "status": "ok",
        "reason": None,
        "diverged_at": None,
        "losses": [],
        "step_time": None,
        "unstable": False,
        "first_step_s": None,
        "loop_time_s": None,
        "loop_steps": None,
        "flops_per_step": None,
        "gflops": None,
        "peak_fraction": None,
        "peak_memory_bytes": None,
        "agreement": None,
        "agreement_tolerance": None,
        "agrees": None,
        "extra": {},
    }


def one_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def finite_or_none(value):
    return value if value is not None and math.isfinite(value) else None


def reset_gpu_peak(framework, device):
    if device == "cuda" and framework == "torch":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def gpu_peak_bytes(framework):
    """Peak device memory the framework reports, where it reports one."""
    try:
        if framework == "torch":
            import torch

            return int(torch.cuda.max_memory_allocated())
        if framework == "tensorflow":
            import tensorflow as tf

            return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
        if framework == "jax":
            import jax

            return int(jax.devices("gpu")[0].memory_stats()["peak_bytes_in_use"])
    except Exception:  # the framework keeps no such statistic here
        return None
    return None


def measure_two_layer(Net, spec, task, entry, compute_framework):
    """Fill `entry` with the losses and timings of one two-layer run."""
    from benchmarks import cases, timing

    memory_before = timing.rss_bytes()
    net, x, y, problem = cases.build(
        Net, spec, task["device"], task["dtype"], task["size"], task["learning_rate"], task["steps"], task["seed"]
    )
    try:
        reset_gpu_peak(compute_framework, task["device"])
        budget = task.get("budget_s")
        losses, durations, diverged_at = timing.run_steps(net, x, y, problem.steps, task["warmup"], budget_s=budget)
        entry["losses"] = [finite_or_none(float(loss)) for loss in losses]
        entry["first_step_s"] = durations[0]
        counted = durations[task["warmup"] + 1 :] or durations[1:]
        entry["step_time"] = timing.summarize(counted)
        entry["unstable"] = timing.is_unstable(entry["step_time"])
        entry["flops_per_step"] = problem.flops_per_step()
        if entry["step_time"]:
            entry["gflops"] = problem.flops_per_step() / entry["step_time"]["median"] / 1e9
        if diverged_at is not None:
            entry["status"] = "diverged"
            entry["diverged_at"] = diverged_at
            entry["reason"] = f"loss became {losses[-1]} at step {diverged_at}"
        else:
            loop_steps = problem.steps
            if entry["step_time"]:
                # As many loop steps as fit in the budget (at least 50 at full
                # length, 5 for a sweep size), never more than the run's steps.
                budget_s, least = (budget, 5) if budget is not None else (task["loop_budget_s"], 50)
                loop_steps = max(least, min(loop_steps, int(budget_s / entry["step_time"]["median"])))
            entry["loop_time_s"], loop_losses = timing.time_loop(net, x, y, loop_steps)
            entry["loop_steps"] = loop_steps
            if not all(math.isfinite(float(value)) for value in loop_losses):
                entry["extra"]["loop_diverged"] = True
        if task["device"] == "cuda":
            entry["peak_memory_bytes"] = gpu_peak_bytes(compute_framework)
        else:
            entry["peak_memory_bytes"] = max(timing.max_rss_bytes(), timing.rss_bytes()) - memory_before
            entry["peak_memory_bytes"] = max(entry["peak_memory_bytes"], 0)
        if hasattr(net, "info"):
            entry["extra"].update(net.info())
    finally:
        if hasattr(net, "close"):
            net.close()


def measure_digits(spec, task, entry):
    from benchmarks.digits import measure_digits as measure

    from benchmarks.digits import size_for

    entry["size"] = size_for(task.get("data"))  # kept if training raises
    result = measure(
        spec.name, device=task["device"], dtype=task["dtype"], threads=entry["threads"],
        epochs=task.get("epochs"), data=task.get("data"), quick=task.get("quick", False),
    )
    extra = result.pop("extra", {})
    entry.update(result)
    entry["extra"].update(extra)


def run_job(job, out, log):
    """Every run of the job in order, each entry written as soon as it exists."""

    def emit(entry):
        out.write(json.dumps(entry, allow_nan=False) + "\n")
        out.flush()
        os.fsync(out.fileno())

    for run in job["runs"]:
        run_implementation(run, job["threads"], job["tf32"], emit, log)


def run_implementation(run, threads, tf32, emit, log):
    import time

    from implementations import FrameworkBroken, FrameworkMissing
    from implementations.problem import DeviceUnavailable, DtypeUnsupported

    workload = run["workload"]
    if workload == "digits":
        import implementations.digits as registry
    else:
        import implementations as registry
    spec = registry.spec(run["implementation"])
    compute_framework = next((name for name in spec.requires if name in TUNED_FRAMEWORKS), spec.framework)
    start = time.perf_counter()
    try:
        Net = registry.load(spec.name)
    except (FrameworkMissing, FrameworkBroken) as error:
        status = "n/a" if isinstance(error, FrameworkMissing) else "failed"
        for task in run["tasks"]:
            entry = base_entry(spec, task, threads)
            entry.update(status=status, reason=str(error).split(": ", 1)[-1])
            emit(entry)
        return
    import_s = time.perf_counter() - start  # the framework's import, paid once per process
    settings = fairness.apply([name for name in spec.requires if name in TUNED_FRAMEWORKS], threads, tf32)
    from benchmarks.machine import kernels

    kernel = kernels(compute_framework)
    for task in run["tasks"]:
        entry = base_entry(spec, task, threads)
        entry["extra"].update({"kernels": kernel, "tf32": tf32, "import_s": import_s})
        entry["extra"].update({f"threads_{key}": value for key, value in settings.items() if key not in ("requested", "tf32")})
        try:
            if workload == "digits":
                measure_digits(spec, task, entry)
            else:
                measure_two_layer(Net, spec, task, entry, compute_framework)
        except (DeviceUnavailable, DtypeUnsupported) as error:
            entry.update(status="n/a", reason=str(error))
        except KeyboardInterrupt:
            raise
        except Exception as error:
            entry.update(status="failed", reason=one_line(error))
            log.write(f"--- {spec.name} {task}\n{traceback.format_exc()}\n")
            log.flush()
        emit(entry)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    job_path, out_path, log_path = argv
    with open(job_path) as job_file:
        job = json.load(job_file)
    fairness.set_environment(job["threads"])  # before any framework is imported
    try:
        with open(out_path, "a") as out, open(log_path, "a") as log:
            run_job(job, out, log)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
