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
crash or Ctrl-C loses at most the case in progress (in a later round, the
implementation's round in progress: its cases are timed in turns).

Every process here asks the kernel to kill it when its parent dies
(PR_SET_PDEATHSIG), so a runner killed outright leaves nothing behind.
"""

import gc
import json
import os
import signal
import sys
import time
import traceback

from sidebyside import fairness, jobs, workloads
from sidebyside.processes import die_with_parent
from sidebyside.results import new_entry
from sidebyside.implementations import FrameworkBroken, FrameworkMissing, one_line
from sidebyside.implementations.devices import DeviceUnavailable, DtypeUnsupported
from sidebyside.frameworks import compute_framework, device, kernels


def base_entry(spec, task, threads):
    """A new entry of this implementation and task: every key of the model (sidebyside.results.Entry)."""
    return new_entry(
        workload=task["workload"], implementation=spec.name, framework=spec.framework, backend=spec.backend,
        device=task["device"], dtype=task["dtype"], threads=threads, size=task["size"], status="ok",
        unstable=False,
    )


def run_job(job, emit, log):
    """Every task of one implementation, each result emitted as soon as it exists."""
    run, threads, timing_round = job["run"], job["threads"], job["mode"] == "timing"
    workload = workloads.get(run["workload"])
    registry = workload.registry()
    spec = workload.spec(run["implementation"])
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
    process_warm_up_s = workload.warm_up(spec, run["tasks"][0], threads) if run["tasks"] and not timing_round else None
    if timing_round:
        def ready(task):  # the case's own device, or the adapter's reason why not
            device(compute_framework(spec), task["device"])

        for record in workload.time_rounds(spec, run["tasks"], threads, ready):
            emit(record)
        return
    for task in run["tasks"]:
        entry = base_entry(spec, task, threads)
        entry["extra"].update({"kernels": kernel, "tf32": job["tf32"], "import_s": job.get("import_s"),
                               "process_warm_up_s": process_warm_up_s})
        entry["extra"].update({f"threads_{key}": value for key, value in settings.items() if key not in ("requested", "tf32")})
        try:
            device(compute_framework(spec), task["device"])  # DeviceUnavailable: the adapter's reason, "n/a"
            # An implementation with a launcher runs as a data-parallel job of several processes (sidebyside/jobs/).
            (jobs.serving(spec.launcher) if spec.launcher else workload).measure(spec, task, entry, threads)
        except (DeviceUnavailable, DtypeUnsupported) as error:
            entry.update(status="n/a", reason=str(error))
        except KeyboardInterrupt:
            raise
        except Exception as error:
            entry.update(status="failed", reason=one_line(error))
            log.write(f"--- {spec.name} {task}\n{traceback.format_exc()}\n")
            log.flush()
        entry["extra"]["threads_read_back"] = fairness.read_back(spec.requires)  # what the case's pools had
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
    modules = ["sidebyside.timing", "sidebyside.machine"]
    for workload in dict.fromkeys(job.split(":", 1)[0] for job in jobs):
        try:
            modules += workloads.get(workload).preload()
        except Exception:
            pass
    for module in modules:
        try:
            __import__(module)
        except Exception:
            pass
    for job in jobs:
        workload, name = job.split(":", 1)
        try:
            registry = workloads.get(workload).registry()
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
