"""Measure one implementation in a fresh process of its own.

Importing a framework takes seconds (TensorFlow with Keras: ten and more on
this machine), and a run measures every implementation several times, each
time in a fresh process. So the runner starts one *zygote* per framework
group, `python -m sidebyside.worker THREADS KERAS_BACKEND REQUIRES [JOBS]`,
which pins itself to THREADS CPUs, sizes the thread pools through the
environment, imports the frameworks, the harness and the JOBS'
implementation modules (and does nothing else with them), and then forks one
child per job it is sent. Each child is a fresh process: its own heap, its
own memory high-water mark, thread pools that start when it first computes,
no global switch left by a sibling (JAX's 64-bit mode, Keras's floatx), and
the framework import already paid (recorded once as `extra.import_s`).

The protocol over the zygote's stdin and stdout is one JSON object a line:
the runner sends {"job": PATH, "out": PATH}; the zygote answers {"pid": N}
when the child starts and {"exit": CODE} when it ends. A child appends each
finished entry (or timing record) to OUT as one JSON line at once, so a
crash or Ctrl-C loses at most the case in progress.

Every process here asks the kernel to kill it when its parent dies
(PR_SET_PDEATHSIG), so a runner killed outright leaves nothing behind.
"""

import ctypes
import gc
import json
import math
import os
import signal
import sys
import time
import traceback

from sidebyside import fairness
from sidebyside.results import gflops, new_entry
from sidebyside.implementations import one_line
from sidebyside.frameworks import compute_framework, forget_compiled, gpu_peak_bytes, kernels, reset_gpu_peak

PR_SET_PDEATHSIG = 1


def die_with_parent():
    """Be killed (SIGKILL) when the parent process dies; Linux only."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the runner's own clean-up must do
        return


def base_entry(spec, task, threads):
    """A new entry of this implementation and task: every key of the model (sidebyside.results.Entry)."""
    return new_entry(
        workload=task["workload"], implementation=spec.name, framework=spec.framework, backend=spec.backend,
        device=task["device"], dtype=task["dtype"], threads=threads, size=task["size"], status="ok",
        unstable=False,
    )


def finite_or_none(value):
    return value if value is not None and math.isfinite(value) else None


def overrides_for(spec, task, threads):
    """Harness parameters an implementation takes: torch_ddp's ranks and their threads."""
    if "ranks" not in spec.options:
        return {}
    ranks = task.get("ranks") or spec.options["ranks"]
    return {"ranks": ranks, "threads_per_rank": max(threads // ranks, 1)}


def build(spec, task, threads):
    """(net, x, y, problem) for one two-layer task, as the registry defines the variant."""
    from sidebyside import cases

    return cases.build(
        spec.name, task["device"], task["dtype"], task["size"], task["learning_rate"], task["steps"], task["seed"],
        **overrides_for(spec, task, threads),
    )


LAUNCHERS = {"torchrun": "sidebyside.ddp_launch", "tf_config": "sidebyside.multiworker",
             "jax_coordinator": "sidebyside.multiworker"}  # implementations started as jobs of several processes


def measure_two_layer(spec, task, entry, threads):
    """Fill `entry` with the losses and timings of one two-layer run."""
    import importlib

    from sidebyside import timing

    if spec.launcher:
        return importlib.import_module(LAUNCHERS[spec.launcher]).measure(spec, task, entry, threads)

    framework = compute_framework(spec)
    memory = timing.PeakMemory()
    net, x, y, problem = build(spec, task, threads)
    try:
        reset_gpu_peak(framework, task["device"])
        warmup = task["warmup"]
        losses, entry["first_step_s"], diverged_at = timing.start(net, x, y, warmup)
        durations = []
        if diverged_at is None:
            more, durations, diverged_at, entry["cpu_utilization"] = timing.timed_steps(
                net, x, y, problem.steps - len(losses), budget_s=task.get("budget_s"),
                min_rounds=task.get("min_steps", 20), first_index=len(losses),
            )
            losses += more
        entry["losses"] = [finite_or_none(float(loss)) for loss in losses]
        entry["step_time"] = timing.summarize(durations)
        entry["samples"] = durations  # for the runner, which pools the rounds; not saved
        entry["unstable"] = timing.is_unstable(entry["step_time"])
        entry["flops_per_step"] = problem.flops_per_step()
        if entry["step_time"]:
            entry["gflops"] = gflops(problem.flops_per_step(), entry["step_time"]["median"])
        if diverged_at is not None:
            entry["status"] = "diverged"
            entry["diverged_at"] = diverged_at
            entry["reason"] = f"loss became {losses[-1]} at step {diverged_at}"
        else:
            entry["loop_steps"] = task["loop_steps"]
            entry["loop_time_s"], loop_losses = timing.time_loop(net, x, y, task["loop_steps"])
            if not all(math.isfinite(float(value)) for value in loop_losses):
                entry["extra"]["loop_diverged"] = True
        if task["device"] == "cuda":
            entry["peak_memory_bytes"] = gpu_peak_bytes(framework)
        else:
            entry["peak_memory_bytes"] = memory.growth()
            entry["extra"]["memory"] = memory.method
        if hasattr(net, "info"):
            entry["extra"].update(net.info())
        loop_note = getattr(net, "loop_note", None)
        if loop_note:
            entry["extra"]["loop_note"] = loop_note
    finally:
        if hasattr(net, "close"):
            net.close()


WARM_UP_SIZE = {"N": 4, "D_in": 8, "H": 4, "D_out": 2}


def warm_up(spec, task, threads):
    """A few steps at a tiny size before the first case: the framework's one-time start.

    Frameworks load parts of themselves on first use (torch's optimizers
    pull in torch._dynamo, about 80 MB, on their first step; a compiler
    initializes itself on its first compile; allocators and thread pools
    start). Paid here, that start is not charged to the first case's memory
    or first step. What the warm-up compiled is then forgotten
    (`forget_compiled`), so no case inherits its graphs. Returns the seconds
    it took, or None where it was skipped (torch_ddp: its ranks are fresh
    processes for every net) or failed (the case itself will then fail and
    say why).
    """
    from sidebyside import timing

    if task["workload"] != "two_layer" or "ranks" in spec.options:
        return None
    begin = time.perf_counter()
    try:
        net, x, y, _ = build(spec, {**task, "size": WARM_UP_SIZE, "steps": 8}, threads)
    except Exception:
        return None
    try:
        timing.start(net, x, y, 2)
        timing.time_loop(net, x, y, 2)
    except Exception:
        return None
    finally:
        if hasattr(net, "close"):
            net.close()
        forget_compiled(compute_framework(spec))
    return time.perf_counter() - begin


def time_round(spec, task, threads):
    """One timing round of a two-layer task: a fresh net, burn-in, then steps within a budget."""
    from sidebyside import timing

    net, x, y, problem = build(spec, task, threads)
    try:
        losses, first_step_s, diverged_at = timing.start(net, x, y, task["warmup"])
        if diverged_at is not None:
            return {"samples": [], "cpu_utilization": None, "first_step_s": first_step_s}
        _, durations, _, utilization = timing.timed_steps(
            net, x, y, problem.steps - len(losses), budget_s=task["round_budget_s"],
            min_rounds=task.get("min_steps", 20), first_index=len(losses),
        )
        return {"samples": durations, "cpu_utilization": utilization, "first_step_s": first_step_s}
    finally:
        if hasattr(net, "close"):
            net.close()


def measure_digits(spec, task, entry):
    from sidebyside.digits import measure_digits as measure
    from sidebyside.digits import size_for

    entry["size"] = size_for(task.get("data"))  # kept if training raises
    result = measure(
        spec.name, device=task["device"], dtype=task["dtype"], threads=entry["threads"],
        epochs=task.get("epochs"), data=task.get("data"), quick=task.get("quick", False),
    )
    extra = result.pop("extra", {})
    entry.update(result)
    entry["extra"].update(extra)


def registry_for(workload):
    if workload == "digits":
        from sidebyside.implementations import digits as registry
    else:
        from sidebyside import implementations as registry
    return registry


def run_job(job, emit, log):
    """Every task of one implementation, each result emitted as soon as it exists."""
    from sidebyside.implementations import FrameworkBroken, FrameworkMissing
    from sidebyside.implementations.two_layer.problem import DeviceUnavailable, DtypeUnsupported

    run, threads, timing_round = job["run"], job["threads"], job["mode"] == "timing"
    registry = registry_for(run["workload"])
    spec = registry.spec(run["implementation"])
    try:
        registry.load(spec.name)
    except (FrameworkMissing, FrameworkBroken) as error:
        for task in run["tasks"]:
            if timing_round:
                emit({"samples": [], "reason": str(error)})
                continue
            entry = base_entry(spec, task, threads)
            entry.update(status="n/a" if isinstance(error, FrameworkMissing) else "failed",
                         reason=str(error).split(": ", 1)[-1])
            emit(entry)
        return
    settings = fairness.apply(spec.requires, threads, job["tf32"])
    kernel = kernels(compute_framework(spec))
    # A timing round needs no process warm-up: each of its cases runs its
    # burn-in steps before the clock starts, and records no memory.
    process_warm_up_s = warm_up(spec, run["tasks"][0], threads) if run["tasks"] and not timing_round else None
    for task in run["tasks"]:
        if timing_round:
            try:
                emit(time_round(spec, task, threads))
            except KeyboardInterrupt:
                raise
            except Exception as error:  # the first round recorded it already
                emit({"samples": [], "reason": one_line(error)})
            continue
        entry = base_entry(spec, task, threads)
        entry["extra"].update({"kernels": kernel, "tf32": job["tf32"], "import_s": job.get("import_s"),
                               "process_warm_up_s": process_warm_up_s})
        entry["extra"].update({f"threads_{key}": value for key, value in settings.items() if key not in ("requested", "tf32")})
        try:
            if run["workload"] == "digits":
                measure_digits(spec, task, entry)
            else:
                measure_two_layer(spec, task, entry, threads)
        except (DeviceUnavailable, DtypeUnsupported) as error:
            entry.update(status="n/a", reason=str(error))
        except KeyboardInterrupt:
            raise
        except Exception as error:
            entry.update(status="failed", reason=one_line(error))
            log.write(f"--- {spec.name} {task}\n{traceback.format_exc()}\n")
            log.flush()
        emit(entry)


def child(request, import_s):
    """A forked child: run one job, write its results, and return the exit code."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with open(request["job"]) as job_file:
        job = json.load(job_file)
    job["import_s"] = import_s
    try:
        with open(request["out"], "a") as out:
            def emit(record):
                out.write(json.dumps(record, allow_nan=False) + "\n")
                out.flush()

            run_job(job, emit, sys.stderr)
    except KeyboardInterrupt:
        return 130
    return 0


def preload(jobs):
    """Import what the children will import: the harness, each job's implementation module.

    Imports only (module code, no computation), so every child starts with
    them paid, as it starts with the framework paid. A failing import is left
    for the child, which raises it again and records it.
    """
    modules = ["sidebyside.cases", "sidebyside.timing", "sidebyside.machine"]
    if any(job.startswith("digits:") for job in jobs):
        modules += ["sidebyside.digits", "sklearn.datasets", "sklearn.model_selection"]
    for module in modules:
        try:
            __import__(module)
        except Exception:
            pass
    for job in jobs:
        workload, name = job.split(":", 1)
        try:
            registry = registry_for(workload)
            registry.load(name)
            for module in registry.spec(name).preload:
                __import__(module)
        except Exception:
            pass


def serve(threads, keras_backend, requires, jobs=()):
    """The zygote: import once, then fork a child per job read from stdin."""
    die_with_parent()
    # The protocol keeps its own copy of stdout; file descriptor 1 then goes
    # to the log, so whatever a framework prints cannot garble an answer.
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    fairness.set_environment(threads)  # pins the CPUs; before any framework is imported
    if keras_backend:
        os.environ["KERAS_BACKEND"] = keras_backend  # fixed at import: one backend per zygote
    start = time.perf_counter()
    for module in requires:
        try:
            __import__(module)
        except Exception:  # the child's import raises again and records it as "failed"
            traceback.print_exc()
    preload(jobs)
    import_s = time.perf_counter() - start
    # The imported modules are millions of objects shared with every child.
    # Left to the collector, a child's first full collection would walk them
    # all and write to each one's header, copying every page it touches
    # (seconds, inside some timed step). Frozen, the collector skips them.
    gc.collect()
    gc.freeze()
    answer.write(json.dumps({"ready": True, "import_s": import_s}) + "\n")
    answer.flush()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                answer.close()
                code = child(request, import_s)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        answer.write(json.dumps({"pid": pid}) + "\n")
        answer.flush()
        _, status = os.waitpid(pid, 0)
        answer.write(json.dumps({"exit": os.waitstatus_to_exitcode(status)}) + "\n")
        answer.flush()
    # The runner hung up. Skip the interpreter's tear-down: TensorFlow's and
    # XLA's take seconds, and this process holds nothing that needs it.
    sys.stderr.flush()
    os._exit(0)


def main(argv=None):
    threads, keras_backend, requires, *jobs = (sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))  # the runner's stop: no traceback
    jobs = [job for job in (jobs[0] if jobs else "").split(",") if job]
    return serve(int(threads), keras_backend, [name for name in requires.split(",") if name], jobs)


if __name__ == "__main__":
    sys.exit(main())
