"""What every process of a data-parallel job measures, the one entry its process 0 writes, and the launch's shared parts.

Shared by torchrun.py (torch_ddp, `sidebyside ddp`) and multiworker.py (the
TensorFlow and JAX jobs, `sidebyside multiworker`). Every process runs the
harness's timing protocol (sidebyside/timing.py) on a net whose step returns
the loss of the whole batch (summed over the processes and fetched to the
host, so process 0's clock covers every process's step); then process 0
has its caller's Output (sidebyside/jobs/__init__.py; the CLI passes the
runner's) build the entry as the worker does, judge it against the float64
reference as `sidebyside run` judges, and write results.json. The other
processes write nothing.

Memory has the meaning it has for one process (sidebyside/timing.py
case_memory), taken in each process: the most bytes the case adds above
that process's own baseline, its memory after imports and the framework's
warm-up (`case_memory`), then summed over the processes, each one's in
`extra.memory_per_process`. Whole-process peaks would count every
process's imports, hundreds of MB that no single-process case is charged.
"""

import os
import statistics
from pathlib import Path

import numpy as np

from sidebyside import implementations, machine, timing
from sidebyside.config import RunConfig
from sidebyside.implementations.two_layer.problem import Problem
from sidebyside.workloads.two_layer import cases
from sidebyside.workloads.two_layer import tasks as two_layer

# The measurements of process 0's entry that the worker's entry takes; agreement and everything
# pooled over rounds the runner adds itself.
MEASURED = ("status", "reason", "diverged_at", "losses", "step_time", "unstable", "cpu_utilization",
            "first_step_s", "loop_time_s", "loop_steps", "flops_per_step", "gflops", "peak_memory_bytes")
# The folder that holds the sidebyside package: a job's processes import this very copy.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def child_environment(**extra):
    """The environment of a job's process started by the harness: this one's, importing this sidebyside."""
    return dict(os.environ, **extra,
                PYTHONPATH=os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])))


TUTORIAL_SIZE = two_layer.TUTORIAL_SIZE  # the default size of a job's process
size = two_layer.size  # the argparse type of --size


def size_text(task):
    return ",".join(str(task["size"][key]) for key in two_layer.SIZE_KEYS)


def processes_for(spec, task):
    """The job's processes: the run's --ranks, else the implementation's default."""
    return task.get("ranks") or spec.options["ranks"]


def take_measured(entry, measured):
    """Fill the worker's entry with process 0's."""
    for key in MEASURED:
        entry[key] = measured.get(key)
    entry["samples"] = (measured.get("step_time") or {}).get("samples") or []
    extra = dict(measured.get("extra") or {})
    extra.pop("agreement_ratio", None)  # the runner judges agreement itself
    entry["extra"].update(extra)


# In each process of a job ---------------------------------------------------------------


def configuration(name, size, steps, dtype, learning_rate, device, threads, label=""):
    return RunConfig(
        implementations=(name,), workloads=(two_layer.NAME,), devices=(device,), dtypes=(dtype,),
        steps=steps, options={"sizes": (tuple(size),), "sweep": (), "learning_rate": learning_rate},
        threads=threads, rounds=1, name=label,
    )


def task_for(config):
    return two_layer.task(config, config.devices[0], config.dtypes[0], two_layer.sizes(config)[0], full=True)


def problem_for(task):
    return Problem(**task["size"], learning_rate=task["learning_rate"], steps=task["steps"], seed=task["seed"],
                   dtype=task["dtype"])


def rows(array, processes, index):
    """This process's rows of the batch: np.array_split, as torch_ddp.Net splits them."""
    if len(array) < processes:
        raise ValueError(f"{len(array)} rows cannot be split over {processes} processes")
    return np.array_split(array, processes)[index]


# The single-process sibling whose warm-up (the workload's `warm_up`, which the worker runs before a
# process's first case) a job's process runs before its baseline, so that what the framework loads on
# first use (torch's optimizers import torch._dynamo, about 80 MB) is no more the case's than it is
# for one process. TensorFlow's strategy must exist before any TensorFlow op runs: none for tf_multiworker.
WARM_UP_WITH = {"torch_ddp": "torch_nn", "jax_distributed": "jax_jit"}


def case_memory(name, framework, task, threads):
    """This process's count of the case's memory, started after its warm-up (timing.case_memory)."""
    if name in WARM_UP_WITH:
        cases.warm_up(implementations.spec(WARM_UP_WITH[name]), task, threads)
    return timing.case_memory(framework, task["device"])


def memory_note(name, memory):
    """extra.memory of a job: what each process counted, from where, and how the processes add up."""
    start = "its imports and a warm-up" if name in WARM_UP_WITH else "its imports (no warm-up: see WARM_UP_WITH)"
    return f"{memory.method}, in each process after {start}, summed over the processes"


def measure(net, x, y, task, problem):
    """The timing protocol on one process; every process must call it alike (each step is collective)."""
    losses, first_step_s, diverged_at = timing.start(net, x, y, task["warmup"])
    durations, utilization, loop_time_s = [], None, None
    if diverged_at is None:
        more, durations, diverged_at, utilization = timing.timed_steps(
            net, x, y, problem.steps - len(losses), first_index=len(losses))
        losses += more
    if diverged_at is None:
        loop_time_s, _ = timing.time_loop(net, x, y, task["loop_steps"])
    return {"losses": losses, "first_step_s": first_step_s, "diverged_at": diverged_at, "durations": durations,
            "utilization": utilization, "loop_time_s": loop_time_s}


def own_facts(utilization, rows_here, memory, communication_s=None, step_s=None):
    """What each process reports to process 0: CPU use, the case's memory (None: n/a), CPUs, rows, its timings."""
    return {
        "utilization": utilization,
        "memory": memory,
        "cpus": ",".join(map(str, sorted(os.sched_getaffinity(0)))) if hasattr(os, "sched_getaffinity") else "",
        "rows": rows_here,
        "communication_s": communication_s,
        "step_s": step_s,
    }


def layout_facts(everyone, world_size, nodes, local, threads):
    facts = {
        "world_size": world_size,
        "nodes": nodes,
        "processes_per_node": local,
        "threads_per_process": threads,
        "ranks": world_size,
        "threads_per_rank": threads,
        "rows_per_rank": ",".join(str(record["rows"]) for record in everyone),
        "threads_cpus": ";".join(record["cpus"] for record in everyone),
        "memory_per_process": ",".join("n/a" if record["memory"] is None else str(record["memory"])
                                       for record in everyone),
    }
    if all(record["communication_s"] is not None and record["step_s"] is not None for record in everyone):
        step_s = statistics.fmean(record["step_s"] for record in everyone)
        communication_s = statistics.fmean(record["communication_s"] for record in everyone)
        facts.update(rank_step_s=step_s, communication_s_per_step=communication_s,
                     compute_s_per_step=step_s - communication_s)
    return facts


def write(output, out_dir, config, task, problem, measured, everyone, extra, label=None):
    """Process 0: the entry, judged against the reference, in OUT/results.json (through `output`). Returns it."""
    entry = output.entry(implementations.spec(config.implementations[0]), task, config.threads)
    losses, durations, diverged_at = measured["losses"], measured["durations"], measured["diverged_at"]
    entry["losses"] = [two_layer.finite_or_none(float(loss)) for loss in losses]
    timing.record_steps(entry, durations, problem.flops_per_step())
    entry["first_step_s"] = measured["first_step_s"]
    if diverged_at is not None:
        entry.update(status="diverged", diverged_at=diverged_at,
                     reason=f"loss became {losses[-1]} at step {diverged_at}")
    else:
        entry.update(loop_time_s=measured["loop_time_s"], loop_steps=task["loop_steps"])
    if all(record["utilization"] is not None for record in everyone):
        entry["cpu_utilization"] = float(sum(record["utilization"] for record in everyone))
    memory = [record["memory"] for record in everyone]
    entry["peak_memory_bytes"] = None if None in memory else int(sum(memory))
    entry["extra"].update(extra)
    return output.write(config, out_dir, task, entry, machine.describe(label or None))


def summary_line(entry, results_path):
    extra = entry["extra"]
    median = entry["step_time"]["median"] if entry["step_time"] else float("nan")
    communication = extra.get("communication_s_per_step")
    said = f", communication {communication * 1e3:.3f} ms" if communication is not None else ""
    return (f"{entry['implementation']}: {extra['world_size']} processes on {extra['nodes']} node(s), "
            f"{extra['threads_per_process']} thread(s) each: {entry['status']}, median step {median * 1e3:.3f} ms"
            f"{said}; results: {results_path}")
