"""tf_multiworker and jax_distributed as a job: one process per worker, started by `sidebyside run` or by you.

One process of a job:

    TF_CONFIG='{"cluster": {"worker": ["HOST0:PORT", "HOST1:PORT"]}, "task": {"type": "worker", "index": I}}' \\
        sidebyside multiworker tf_multiworker --out DIR [--size ...] [--steps ...] [--dtype ...]
    sidebyside multiworker jax_distributed --coordinator HOST0:PORT --processes 2 --process-id I \\
        --out DIR [--size ...] [--steps ...] [--dtype ...]

Each process pins itself to its share of this machine's CPUs (by
`--local-index` of `--local-processes`, by default the only process on its
machine; the harness, which starts them all on one, passes both), sizes its
thread pools (sidebyside/fairness.py), counts the memory its case adds
(shared.py `case_memory`), keeps its rows of the shared batch, runs the
timing protocol and reports to process 0, which writes DIR/results.json
(shared.py `write`). Communication per step is an all-reduce of
gradient-sized buffers timed apart, after training (median of 50): neither
framework exposes the step's own exchange to a clock.

`sidebyside run` starts the processes itself (`MultiWorker.measure`, for
the worker), with free ports on 127.0.0.1, `threads // R` threads each, and
takes process 0's entry. A process that fails makes the job fail: the
others are stopped, and the entry's reason is the failing process's
one-line error.
"""

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sidebyside import fairness
from sidebyside.config import positive_float, positive_int
from sidebyside.implementations.two_layer.problem import make_data
from sidebyside.inputs import check_prepared
from sidebyside.jobs import CommandError, Job, shared
from sidebyside.processes import launched_here, stay_with_the_launcher

NAMES = ("tf_multiworker", "jax_distributed")
JOB_TIMEOUT_S = 600.0  # a job that has not finished by then is stopped
FRAMEWORKS = {"tf_multiworker": "tensorflow", "jax_distributed": "jax"}


class MultiWorker(Job):
    name = "multiworker"
    implementations = NAMES
    launchers = ("tf_config", "jax_coordinator")

    def commands(self):
        return {"multiworker": ("one process of a tf_multiworker or jax_distributed job (process 0 writes results.json)",
                                add_arguments, run)}

    def measure(self, spec, task, entry, threads):
        """Fill the worker's entry with process 0's."""
        processes = shared.processes_for(spec, task)
        shared.take_measured(entry, launch(spec.name, task, processes, max(threads // processes, 1)))


# One process: `sidebyside multiworker NAME` ----------------------------------------------------


def add_arguments(parser):
    parser.add_argument("name", choices=NAMES)
    parser.add_argument("--out", required=True, metavar="DIR", help="process 0 writes DIR/results.json")
    parser.add_argument("--size", type=shared.size, default=shared.TUTORIAL_SIZE, metavar="N,D_in,H,D_out",
                        help="the problem (default the tutorial's 64,1000,100,10)")
    parser.add_argument("--steps", type=positive_int, default=500, help="training steps (default 500)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--learning-rate", type=positive_float, default=1e-6, help="SGD step (default 1e-6)")
    parser.add_argument("--threads-per-process", type=positive_int,
                        help="threads of this process (default: its share of this machine's cores)")
    parser.add_argument("--coordinator", help="jax_distributed: HOST:PORT of process 0")
    parser.add_argument("--processes", type=positive_int, help="jax_distributed: processes in the job")
    parser.add_argument("--process-id", type=int, help="jax_distributed: this process, 0 .. processes-1")
    parser.add_argument("--local-index", type=int, help="this process among those on its machine")
    parser.add_argument("--local-processes", type=positive_int, help="the job's processes on this machine")
    parser.add_argument("--name-label", dest="label", help="this machine's label in reports")


def run(args, output):
    """One process of a job; returns its exit code. Raises CommandError without the job's description."""
    try:
        index, processes = layout(args)
    except (ValueError, KeyError) as error:
        raise CommandError(str(error)) from None
    try:
        return train(args, index, processes, output)
    except Exception as error:
        print(f"sidebyside: error: {args.name} process {index}: {telling_line(error)}", file=sys.stderr, flush=True)
        return 1


def layout(args):
    """(index, processes) of this process in its job."""
    if args.name == "tf_multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("tf_multiworker needs TF_CONFIG (the workers' addresses and this one's index)")
        config = json.loads(os.environ["TF_CONFIG"])
        return int(config["task"]["index"]), len(config["cluster"]["worker"])
    if args.coordinator is None or args.processes is None or args.process_id is None:
        raise ValueError("jax_distributed needs --coordinator HOST:PORT, --processes N and --process-id I")
    return args.process_id, args.processes


def settle_in(args):
    """Die with the parent, take this process's share of the CPUs, size the pools: before any framework loads.

    Returns (threads, the job's processes on this machine).
    """
    stay_with_the_launcher()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the launcher's SIGTERM ends it at once, as a process it started
    local_index = args.local_index or 0
    local = args.local_processes or 1
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    share = len(cpus) // local if cpus else 0
    if share:
        os.sched_setaffinity(0, cpus[local_index * share:(local_index + 1) * share])
    threads = args.threads_per_process or max(share, 1)
    fairness.set_environment(threads)
    return threads, local


def telling_line(error):
    """`Type: message` in one line; TensorFlow's "in user code:" errors say what happened on their last line."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return f"{type(error).__name__}: {lines[-1] if lines[0].endswith(':') else lines[0]}"


def train(args, index, processes, output):
    threads, local = settle_in(args)
    # The implementation's module imports its framework: only now, with the pools sized.
    module = importlib.import_module(f"sidebyside.implementations.two_layer.{args.name}")
    framework = FRAMEWORKS[args.name]
    fairness.apply([framework], threads)
    if args.name == "jax_distributed":
        module.join(args.coordinator, processes, index)
    config = shared.configuration(args.name, args.size, args.steps, args.dtype, args.learning_rate, "cpu",
                                  processes * threads, args.label or "")
    task = shared.task_for(config)
    if index == 0:
        output.check(config, args.out)  # before anything long: a bad folder fails now
    memory = shared.case_memory(args.name, framework, task, threads)
    problem = shared.problem_for(task)
    x, y, w1, w2 = make_data(problem)
    rows_x, rows_y = shared.rows(x, processes, index), shared.rows(y, processes, index)
    begin = time.perf_counter()
    net = module.Net(w1, w2, problem.learning_rate, dtype=args.dtype)
    local_x, local_y = net.prepare(rows_x, rows_y)
    startup_s = time.perf_counter() - begin
    # jax_distributed's prepare makes this process's rows part of one global array: the whole batch's shape.
    check_prepared((x, y) if args.name == "jax_distributed" else (rows_x, rows_y), (local_x, local_y))
    measured = shared.measure(net, local_x, local_y, task, problem)
    communication_s = net.communication_s()
    step_s = float(np.median(measured["durations"])) if measured["durations"] else None
    own = shared.own_facts(measured["utilization"], len(rows_x), memory.growth(), communication_s, step_s)
    everyone = gather_facts(net, own, index, processes)
    if index != 0:
        return 0
    nodes = max(processes // local, 1)
    extra = {
        "launcher": "TF_CONFIG" if args.name == "tf_multiworker" else "jax.distributed",
        "compiled": True,
        **shared.layout_facts(everyone, processes, nodes, local, threads),
        "memory": shared.memory_note(args.name, memory),
        "startup_s": startup_s,
        "communication_note": "all-reduce of gradient-sized buffers timed apart after training (median of 50), "
                              "mean over processes",
    }
    entry = shared.write(output, args.out, config, task, problem, measured, everyone, extra, args.label)
    print(shared.summary_line(entry, os.path.join(args.out, "results.json")), flush=True)
    return 0


NUMERIC_FACTS = ("utilization", "memory", "rows", "communication_s", "step_s")


def gather_facts(net, own, index, processes):
    """Every process's facts, through the framework's own all-reduce (numbers only; CPUs as a bit mask)."""
    cpus = sum(1 << int(cpu) for cpu in own["cpus"].split(",") if cpu)
    values = [np.nan if own[key] is None else float(own[key]) for key in NUMERIC_FACTS] + [float(cpus)]
    rows = net.gather(np.array(values, dtype=np.float64), index, processes)
    everyone = []
    for row in rows:
        record = {key: (None if np.isnan(value) else float(value)) for key, value in zip(NUMERIC_FACTS, row)}
        record["rows"] = int(record["rows"])
        record["memory"] = None if record["memory"] is None else int(record["memory"])
        mask = int(row[-1])
        record["cpus"] = ",".join(str(cpu) for cpu in range(mask.bit_length()) if mask >> cpu & 1)
        everyone.append(record)
    return everyone


# The harness's side: start the processes of one job on this machine -----------------


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def commands(name, task, processes, threads_per_process, out):
    """(command, extra environment) for each process of a job on this machine."""
    common = [sys.executable, "-m", "sidebyside.processes", "sidebyside.cli", "multiworker", name, "--out", str(out),
              "--size", shared.size_text(task), "--steps", str(task["steps"]), "--dtype", task["dtype"],
              "--learning-rate", repr(task["learning_rate"]), "--threads-per-process", str(threads_per_process),
              "--local-processes", str(processes)]
    if name == "tf_multiworker":
        workers = [f"127.0.0.1:{port}" for port in free_ports(processes)]
        return [([*common, "--local-index", str(index)], {"TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                   "task": {"type": "worker", "index": index}})})
                for index in range(processes)]
    (port,) = free_ports(1)
    return [([*common, "--local-index", str(index), "--coordinator", f"127.0.0.1:{port}", "--processes", str(processes),
              "--process-id", str(index)], {}) for index in range(processes)]


def launch(name, task, processes, threads_per_process):
    """Run one job; returns process 0's entry, or raises RuntimeError with a one-line reason."""
    with tempfile.TemporaryDirectory(prefix=f"sidebyside-{name}-") as folder:
        out = Path(folder) / "out"
        logs, running = [], []
        try:
            for index, (command, extra) in enumerate(commands(name, task, processes, threads_per_process, out)):
                # Its share of the threads from the start: numpy's pool is sized as the process imports it.
                environment = shared.child_environment(**extra, **launched_here(),
                                                       **{name: str(threads_per_process) for name in fairness.THREAD_VARIABLES})
                environment.pop("XLA_FLAGS", None)  # each process sizes its own XLA pools
                log = open(Path(folder) / f"process-{index}.log", "w+")
                logs.append(log)
                running.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, env=environment))
            failed = wait_all(running, JOB_TIMEOUT_S)
        except BaseException:
            stop_all(running)
            raise
        finally:
            outputs = []
            for log in logs:
                log.seek(0)
                outputs.append(log.read())
                log.close()
        if failed is not None:
            raise RuntimeError(failure(failed, running, outputs))
        document = json.loads((out / "results.json").read_text())
    (entry,) = document["results"]
    return entry


def wait_all(running, timeout_s):
    """None once every process exited 0; else the index of the first to fail (the others are stopped)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        codes = [process.poll() for process in running]
        bad = [index for index, code in enumerate(codes) if code not in (None, 0)]
        if bad:
            stop_all(running)
            return bad[0]
        if all(code == 0 for code in codes):
            return None
        time.sleep(0.05)
    stop_all(running)
    return -1


def stop_all(running):
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in running:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def failure(index, running, outputs):
    if index == -1:
        return f"the job did not finish within {JOB_TIMEOUT_S:.0f} s"
    lines = [line for line in outputs[index].splitlines() if line.startswith("sidebyside: error:")]
    said = lines[-1].split("sidebyside: error: ", 1)[1] if lines else f"exited with code {running[index].returncode}"
    return f"process {index} failed: {said}"


JOB = MultiWorker()
