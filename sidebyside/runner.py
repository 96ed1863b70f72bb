"""`sidebyside run`: plan the cases, measure them in rounds of fresh processes,
and keep results.json up to date after every finished case.

A run has `rounds` rounds (5 by default). Each round runs every
implementation once, in a freshly shuffled order, each in a fresh process
forked from its framework's zygote (see sidebyside/worker.py):

* round 1 trains every case for the full number of steps: the loss
  trajectory that agreement is judged on, the first step, the per-step
  timings, the loop view and the memory;
* later rounds time each case again, briefly, on a fresh net; the slow
  starters (torch.compile variants, torch_ddp: seconds of compiling or
  starting ranks in every fresh process) are timed in round 1 only, and
  ranked by the statistics of that round.

A round is the unit of evidence (sidebyside/rounds.py): an entry's median is
the median of its round medians (`round_medians`), each round one vote, and
its `step_time` keeps every timed step of every round as `samples`. Beside
every process the drift canary (sidebyside/canary.py) is timed, before and
after, in a process of its own on the same CPUs; the geometric mean of the
two is that round's `canary`, which `sidebyside compare` divides by.

With `environments` (`--env NAME=PYTHON`, repeatable) every case runs in
each environment's interpreter, with one set of zygotes per environment;
round k of every environment runs before round k + 1, in one shuffled
order, so the rounds being compared ran side by side. Each entry names its
environment, and `machine.environments` records each one's versions. An
environment given as requirements (`--env NAME=REQUIREMENTS`) is built, or
found in the cache, first (sidebyside/envs.py); one that cannot be built
has its cases "failed" with the reason, and the others run.

The matmul peak is measured at the start and at the end of the run; the
higher counts, both are recorded. Where a step beat it, the peak is
measured once more (sidebyside.peak.remeasured), and a step that beats that
too is shown as faster than an unsound peak, never as a share above 100 %.

results.json is rewritten atomically (a temporary file, then a rename) each
time an entry arrives, so Ctrl-C, SIGTERM, a crash or a full disk never
leaves a half-written file, and `--resume DIR` can pick up where a run stopped.
A resumed run keeps every finished round of an entry (its median, canary and
samples, which the rounds still owed join) and times only those rounds, so
its entries hold what an uninterrupted run's do.
"""

import datetime
import json
import math
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sidebyside import envs, jobs, machine, noise, peak, ranking, rounds, timing, workloads
from sidebyside.results import SCHEMA_VERSION, gflops, peak_for, peak_fraction, validate_document

from sidebyside.files import atomic_write, probe_writable
from sidebyside.worker import base_entry

SCHEMA = SCHEMA_VERSION  # the results.json layout this runner writes (sidebyside/results.py)
KEY_FIELDS = ("workload", "implementation", "device", "dtype", "environment")
TIMED_STATUSES = ("ok", "disagrees")  # entries whose step time later rounds refine


class RunError(Exception):
    """A problem that stops the run before it starts: one line for the user."""


def entry_key(entry):
    return tuple(entry.get(field) for field in KEY_FIELDS) + tuple(sorted(entry["size"].items()))


def spec_of(run):
    return workloads.get(run["workload"]).spec(run["implementation"])


def process_group(spec):
    """Implementations whose processes fork from one zygote: Keras joins its backend's.

    Keras on torch imports torch (and JAX, which Keras 3 imports wherever it
    is installed), so one zygote importing both saves importing torch twice;
    likewise for TensorFlow and JAX. A zygote holds one Keras backend.
    """
    return spec.backend if "keras" in spec.requires else spec.framework


def plan(config):
    """One run per workload, implementation and environment, with its tasks (the workload's `tasks`)."""
    runs = []
    environments = [name for name, _ in config.environments] or [None]
    for workload in [workloads.get(name) for name in config.workloads or workloads.names()]:
        names = config.implementations or tuple(workload.names())
        missing = workload.missing()
        for name in names:
            if name not in workload.names():
                continue  # e.g. an implementation that exists for one workload only
            spec = workload.spec(name)
            tasks = [task for device in config.devices for task in workload.tasks(config, spec, device)]
            run = {"implementation": name, "workload": workload.name, "tasks": tasks}
            if missing:
                run["skip"] = missing
            elif config.quick and spec.slow_start:
                run["skip"] = "n/a: skipped by --quick (it needs several seconds to compile or start before its first step)"
            elif spec.slow_start and not config.slow_starters and name not in config.implementations:
                run["skip"] = (f"n/a: {ranking.LEFT_OUT} (it compiles, dispatches op by op or starts ranks for "
                               f"seconds in every fresh process); add --all, or --impl {name}")
            elif "ranks" in spec.options and config.threads < config.ranks:
                run["skip"] = (f"n/a: {config.ranks} ranks need at least {config.ranks} threads "
                               f"(--threads {config.threads}); ask for --ranks {config.threads} or more threads")
            runs += [{**run, "environment": environment} for environment in environments]
    return runs


def task_key(run, task):
    """The same key as entry_key, for a task not yet run."""
    return ((task["workload"], run["implementation"], task["device"], task["dtype"], run.get("environment"))
            + tuple(sorted(task["size"].items())))


def job_label(run):
    """"two_layer:numpy_manual", with "@environment" where the run has environments."""
    label = f"{run['workload']}:{run['implementation']}"
    return label + (f"@{run['environment']}" if run.get("environment") else "")


class References:
    """The run's reference trajectories: each computed once per key, and recorded in results.json."""

    def __init__(self, recorded):
        self.recorded = recorded  # the document's "references" list
        self.values = {}

    def once(self, key, make):
        """(value, record) for `key`; `make()` returns them the first time, and the record is kept."""
        if key not in self.values:
            value, record = make()
            self.values[key] = (value, record)
            self.recorded.append(record)
        return self.values[key]


def compact(durations):
    """Every timed step's seconds, to four significant digits: kept so later comparisons can test significance."""
    return [float(f"{duration:.4g}") for duration in durations]


class Zygote:
    """One framework group's zygote process, and the line protocol to it."""

    def __init__(self, group, keras_backend, requires, threads, log, command=None, jobs=(), python=None, cwd=None):
        self.group = group
        environment = dict(os.environ, PYTHONUNBUFFERED="1")
        if python:
            # Another environment's interpreter imports its own sidebyside, never one from the current
            # folder (a checkout of the other side): no current folder on its path, and a folder of ours.
            environment["PYTHONSAFEPATH"] = "1"
        command = command or [python or sys.executable, "-m", "sidebyside.worker", str(threads), keras_backend or "",
                              ",".join(requires), ",".join(jobs)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=environment, cwd=cwd,
            start_new_session=True,  # Ctrl-C in a terminal reaches the runner, which stops this group
        )
        self.buffer = b""
        self.child = None
        self.started = False

    def wait_ready(self, timeout_s):
        """Wait until the zygote has imported its frameworks; OSError if it never does."""
        if not self.started:
            ready = self.read(timeout_s)
            if not ready or not ready.get("ready"):
                self.stop()
                raise OSError(f"the {self.group} worker did not start within {timeout_s:.0f} s (see worker.log)")
            self.started = True

    def read(self, timeout_s):
        """The next protocol line as a dict, or None if none came in time or the zygote ended."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.process.stdout], [], [], min(left, 0.05))
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    return None  # the zygote exited
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def submit(self, job_path, out_path):
        self.process.stdin.write((json.dumps({"job": str(job_path), "out": str(out_path)}) + "\n").encode())
        self.process.stdin.flush()
        answer = self.read(60)
        self.child = answer.get("pid") if answer else None
        return self.child is not None

    def alive(self):
        return self.process.poll() is None

    def ask(self, timeout_s):
        """Send one line and return the answer (the peak process's "go"); None if none came."""
        try:
            self.process.stdin.write(b"go\n")
            self.process.stdin.flush()
        except OSError:
            return None
        return self.read(timeout_s)

    def stop(self):
        """Stop the zygote, its child and everything they started, within about two seconds."""
        process = self.process
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(timeout=1.5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def hang_up(self):
        """Close the zygote's stdin: it exits at once (see `close`)."""
        try:
            self.process.stdin.close()
        except OSError:
            pass

    def close(self, timeout_s=5):
        """End the zygote politely (it exits when its stdin closes), or stop it."""
        self.hang_up()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        self.stop()


class Run:
    """One run's output folder, its document, and the processes that fill it."""

    def __init__(self, config, out_dir, document=None):
        self.config = config
        self.out_dir = Path(out_dir)
        self.results_path = self.out_dir / "results.json"
        self.document = document
        self.references = None  # References, once the document exists
        self.zygotes = {}
        self.samples = {}  # entry key -> every timed step of every round, for pooling
        self.log = None
        self.group_requires = {}  # zygote group -> the frameworks it imports
        self.group_jobs = {}  # zygote group -> "workload:implementation" whose modules it imports
        self.peaks = []  # the peak process, until it has measured for the last time
        self.canary = None  # the drift canary's process (sidebyside/canary.py)
        self.last_canary = None  # the canary timed at the end of the last process, if nothing ran since
        self.canary_before = None  # the canary timed before the process running now (run_job)
        self.pythons = dict(config.environments)  # environment name -> its interpreter

    # Output ---------------------------------------------------------------

    def check_writable(self, create_parents=True):
        """Fail now, in one line, if the output folder cannot take our files."""
        if not create_parents and not self.out_dir.parent.is_dir():
            raise RunError(f"cannot write to {self.out_dir}: its parent folder {self.out_dir.parent} does not exist")
        try:
            self.out_dir.mkdir(parents=create_parents, exist_ok=True)
            probe_writable(self.out_dir)
        except OSError as error:
            raise RunError(f"cannot write to {self.out_dir}: {error.strerror or error}") from None

    def save(self):
        """Write results.json atomically, once the model (sidebyside/results.py) has checked it.

        A document the model rejects is a bug of the writer: ResultsError, and nothing written.
        """
        validate_document(self.document, str(self.results_path))
        text = json.dumps(self.document, indent=1, allow_nan=False)
        try:
            atomic_write(self.results_path, text)
        except OSError as error:
            raise RunError(f"cannot write {self.results_path}: {error.strerror or error}") from None

    def start_document(self, machine_record):
        self.document = {
            "schema": SCHEMA,
            "tool": "sidebyside",
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine_record,
            "config": self.config.as_dict(),
            "references": [],
            "results": [],
        }

    # Agreement --------------------------------------------------------------

    def finish_entry(self, entry, task, environment=None):
        """Add what the worker cannot know: agreement (the workload's `judge`), share of peak, the verdict."""
        entry["environment"] = environment
        self.samples[entry_key(entry)] = entry.pop("samples", None) or []
        if self.references is None:
            self.references = References(self.document["references"])
        if entry["losses"]:  # something to judge: not an n/a or a failure before the first step
            workloads.get(entry["workload"]).judge(entry, task, self.references)
        if entry["status"] == "ok" and entry["agrees"] is False:
            # Finished, but not the same computation: never ranked, never "fastest".
            difference = f"{entry['agreement']:.1e}" if entry.get("agreement") is not None else "inf"
            entry["status"] = "disagrees"
            entry["reason"] = (f"loss differs from the float64 reference by {difference} relative "
                               f"(tolerance {entry['agreement_tolerance']:.1e})")
        if entry.get("step_time"):
            entry["step_time"]["round_medians"] = [entry["step_time"]["median"]]
            entry["step_time"]["canary"] = [self.canary_before]  # the process's, once it has ended (set_canary)
            entry["step_time"]["samples"] = compact(self.samples[entry_key(entry)]) or None
        self.set_peak_fraction(entry)
        return entry

    @staticmethod
    def set_canary(entry, seconds):
        """The canary of the entry's last round, timed around the process that measured it."""
        step_time = entry.get("step_time")
        if step_time and step_time.get("canary"):
            step_time["canary"][-1] = seconds

    def set_peak_fraction(self, entry):
        peak = peak_for(self.document["machine"].get("peak_gflops"), entry["device"], entry["dtype"])
        entry["peak_fraction"] = peak_fraction(entry.get("gflops"), peak)

    def add_round(self, entry, record):
        """Add one later round to an entry (True), or nothing where the round timed no step (False).

        The round's median is one more vote, its steps join the samples.

        The entry's median is then the median of its round medians
        (sidebyside/rounds.py); the spread statistics (IQR, min, max, ...)
        stay those of every timed step pooled.
        """
        samples = record.get("samples") or []
        if not samples or not entry.get("step_time"):
            return False
        step_time = entry["step_time"]
        medians = step_time.get("round_medians", []) + [float(np.median(samples))]
        canaries = list(step_time.get("canary") or [None] * (len(medians) - 1)) + [self.canary_before]
        # Resumed: the samples saved so far are where the pool starts.
        pooled = self.samples.setdefault(entry_key(entry), list(step_time.get("samples") or ()))
        previous_wall = sum(pooled)
        pooled.extend(samples)
        if entry.get("cpu_utilization") is not None and record.get("cpu_utilization") is not None:
            wall = sum(samples)
            entry["cpu_utilization"] = (entry["cpu_utilization"] * previous_wall
                                        + record["cpu_utilization"] * wall) / (previous_wall + wall)
        entry["step_time"] = timing.summarize(pooled)
        entry["step_time"].update(median=rounds.median(medians), round_medians=medians, canary=canaries,
                                  samples=compact(pooled))
        entry["unstable"] = timing.is_unstable(entry["step_time"])
        if entry.get("flops_per_step"):
            entry["gflops"] = gflops(entry["flops_per_step"], entry["step_time"]["median"])
        self.set_peak_fraction(entry)
        return True

    # Processes --------------------------------------------------------------

    def launch(self, spec, environment=None):
        """The zygote of the spec's group in an environment, started now if it is not running.

        It imports what every implementation of its group in this run needs
        (as `start_zygotes` gathered it), and sets KERAS_BACKEND where one
        of them is a Keras variant.
        """
        group = process_group(spec)
        zygote = self.zygotes.get((environment, group))
        if zygote is None or not zygote.alive():
            requires = self.group_requires.get((environment, group)) or tuple(spec.requires)
            keras_backend = spec.backend if "keras" in requires else None
            zygote = Zygote(group, keras_backend, requires, self.config.threads, self.log,
                            jobs=self.group_jobs.get((environment, group), ()), python=self.pythons.get(environment),
                            cwd=self.out_dir if environment else None)
            self.zygotes[(environment, group)] = zygote
        return zygote

    def start_zygotes(self, runs, wait=True):
        """Start every group's zygote at once, before anything is timed; with `wait`, until all are ready.

        Their imports overlap (seconds each, much of it waiting on the disk),
        and no clock is running yet, so nothing measured pays for that.
        """
        specs = [spec_of(run) for run in runs]
        for run, spec in zip(runs, specs):
            key = (run.get("environment"), process_group(spec))
            self.group_requires[key] = tuple(dict.fromkeys(self.group_requires.get(key, ()) + tuple(spec.requires)))
            self.group_jobs.setdefault(key, []).append(f"{run['workload']}:{run['implementation']}")
        for run, spec in zip(runs, specs):
            self.launch(spec, run.get("environment"))
        if wait:
            for run, spec in zip(runs, specs):
                self.zygote(spec, run.get("environment"))

    def zygote(self, spec, environment=None):
        """The spec's zygote in an environment, ready for a job, or None if it cannot start."""
        zygote = self.launch(spec, environment)
        try:
            zygote.wait_ready(self.config.worker_timeout_s)
        except OSError as error:
            self.log.write(f"{error}\n")
            self.log.flush()
            self.zygotes.pop((environment, process_group(spec)), None)
            return None
        return zygote

    def time_canary(self):
        """The drift canary's seconds now (sidebyside/canary.py), or None where its process cannot answer."""
        if self.canary is None:
            return None
        try:
            self.canary.wait_ready(self.config.worker_timeout_s)
            answer = self.canary.ask(30)
        except OSError:
            answer = None
        if not answer or not answer.get("seconds"):
            self.log.write("the drift canary did not answer; its rounds read null\n")
            self.canary.stop()
            self.canary = None
            return None
        return float(answer["seconds"])

    def run_job(self, run, mode, on_record):
        """Run one implementation's tasks in a fresh process; on_record(record, task) takes each as it lands
        and returns the entry it filled.

        The canary is timed before and after the process (the one after also
        serves as the next process's before), and set as the last round's
        canary of every entry the process filled. Until then an entry holds the
        canary before, so one cut short by Ctrl-C keeps that (and a resumed
        run has a canary for every round). Returns the tasks left without a
        record, and the child's exit code.
        """
        spec = spec_of(run)
        tasks = run["tasks"]
        stem = f"{run['workload']}-{run['implementation']}" + (f"-{run['environment']}" if run.get("environment") else "")
        before = self.last_canary if self.last_canary is not None else self.time_canary()
        self.last_canary = None
        self.canary_before = before
        job_path = self.out_dir / f".job-{stem}.json"
        stream_path = self.out_dir / f".entries-{stem}.jsonl"
        job = {"run": run, "mode": mode, "threads": self.config.threads, "tf32": self.config.tf32}
        try:
            job_path.write_text(json.dumps(job))
            stream_path.write_text("")
            self.mark(f"{stem} ({mode})")
            zygote = self.zygote(spec, run.get("environment"))
            if zygote is None or not zygote.submit(job_path, stream_path):
                return tasks, "the worker did not start"
            received, code, filled = 0, None, []
            last_progress = time.monotonic()
            while True:
                answer = zygote.read(0.05)
                if answer is not None and "exit" in answer:
                    code = answer["exit"]
                lines = stream_path.read_text().splitlines()
                complete = [line for line in lines if line.endswith("}")]
                for line in complete[received:]:
                    filled.append(on_record(json.loads(line), tasks[received]))
                    received += 1
                    last_progress = time.monotonic()
                if code is not None or not zygote.alive():
                    break
                if time.monotonic() - last_progress > self.config.worker_timeout_s:
                    zygote.stop()
                    self.log.write(f"timed out after {self.config.worker_timeout_s:.0f} s without a result\n")
                    code = "timed out"
                    break
        finally:
            job_path.unlink(missing_ok=True)
            stream_path.unlink(missing_ok=True)
            self.mark(f"{stem} ended")
        if code is None:
            code = zygote.process.returncode
        after = self.last_canary = self.time_canary()
        for entry in filter(None, filled):
            self.set_canary(entry, math.sqrt(before * after) if before and after else None)
        return tasks[received:], code

    def mark(self, phase):
        """A phase's start in worker.log, with the Unix time: where a run's wall time goes."""
        self.log.write(f"=== {phase} at {time.time():.2f}\n")
        self.log.flush()

    def stop_workers(self):
        for zygote in [*self.zygotes.values(), *self.peaks, *([self.canary] if self.canary else [])]:
            zygote.stop()
        self.zygotes, self.peaks, self.canary = {}, [], None

    def close_workers(self):
        """Hang up on every zygote at once, then wait for them all within one deadline."""
        closing = [*self.zygotes.values(), *([self.canary] if self.canary else [])]
        for zygote in closing:
            zygote.hang_up()
        deadline = time.monotonic() + 5
        for zygote in closing:
            zygote.close(max(deadline - time.monotonic(), 0.1))
        self.zygotes, self.canary = {}, None


class JobOutput(jobs.Output):
    """How process 0 of a data-parallel job (sidebyside/jobs/) writes results.json: one entry, judged as a run's are."""

    def check(self, config, out_dir):
        Run(config, out_dir).check_writable()

    def entry(self, spec, task, threads):
        return base_entry(spec, task, threads)

    def write(self, config, out_dir, task, entry, machine_record):
        run = Run(config, out_dir)
        run.check_writable()
        run.start_document(machine_record)
        run.document["machine"]["threads"] = {"requested": config.threads}
        run.document["rounds"] = [[f"{task['workload']}:{entry['implementation']}"]]
        run.document["results"].append(run.finish_entry(entry, task))
        run.save()
        return entry


PEAK_TIMEOUT_S = 300


def start_peak(config, log):
    """A process that measures the matmul peak when told to (`python -m sidebyside.peak ... --wait`).

    Started with the workers, it imports and builds its cases while they
    import; the timing waits for `measure_peak`, when nothing else runs.
    """
    command = [sys.executable, "-m", "sidebyside.peak", str(config.threads), "1" if config.tf32 else "0",
               str(config.peak_budget_s), "--wait"]
    return Zygote("peak", None, (), config.threads, log, command=command)


def start_canary(config, log):
    """The drift canary's process (`python -m sidebyside.canary THREADS SECONDS`), pinned like the workers."""
    command = [sys.executable, "-m", "sidebyside.canary", str(config.threads), str(config.canary_s)]
    return Zygote("canary", None, (), config.threads, log, command=command)


def measure_peak(process, last=True):
    """The attainable matmul peak per device and dtype, from a process `start_peak` started.

    The same process measures at the start and at the end; `last` ends it.
    """
    failed = {"peak_gflops": {"cpu": None, "cuda": None}}
    try:
        process.wait_ready(PEAK_TIMEOUT_S)
        result = process.ask(PEAK_TIMEOUT_S)
    except OSError:
        result = None
    finally:
        if last or result is None:
            process.close(timeout_s=2)
    if result is None:
        return {**failed, "peak_detail": {"error": "the peak measurement did not finish (see worker.log)"}}
    return result


def empty_entry(run, task, config, status, reason):
    entry = base_entry(spec_of(run), task, config.threads)
    entry.update(status=status, reason=reason, environment=run.get("environment"))
    return entry


def prepare_environments(config, out_dir):
    """(records, pythons, unbuilt) of the run's --env environments, before anything is measured.

    Every interpreter (NAME=PYTHON) answers and holds sidebyside first, else RunError; then each
    NAME=REQUIREMENTS is built or found in the cache (sidebyside/envs.py), one line each on stdout. One that
    cannot be built is one line on stderr, and `unbuilt` maps its name to the reason its cases fail with.
    """
    records, pythons, unbuilt = {}, {}, {}
    try:  # every environment's interpreter answers, and holds sidebyside, before anything starts
        for name, value in config.environments:
            if envs.is_interpreter(value):
                records[name], pythons[name] = machine.environment(value), value
    except machine.EnvironmentUnusable as error:
        raise RunError(f"--env: {error}") from None
    wanted = [(name, value) for name, value in config.environments if not envs.is_interpreter(value)]
    if not wanted:
        return records, pythons, unbuilt
    with open(Path(out_dir) / "environments.log", "a") as log:  # uv's own words, for a build that failed
        for name, value in wanted:
            try:
                built = envs.ensure(name, value, log=log)
                record = machine.environment(built.python)
            except (envs.BuildFailed, machine.EnvironmentUnusable) as error:
                print(f"sidebyside: --env {name}: could not be built: {error}", file=sys.stderr)
                records[name] = {"requirements": value.strip(), "error": str(error)}
                unbuilt[name] = f"environment {name} could not be built: {error}"
                continue
            records[name], pythons[name] = {**record, **built.record}, built.python
            versions = ", ".join(f"{key} {version}" for key, version in built.record["installed"].items())
            print(f"environment {name}: {versions or value.strip()} ({'cached' if built.record['cached'] else 'built'}"
                  f" in {built.record['setup_s']:.2f} s: {built.folder})")
    return {name: records[name] for name, _ in config.environments}, pythons, unbuilt


def shuffled(items, generator):
    items = list(items)
    generator.shuffle(items)
    return items


def execute(config, out_dir, document=None, show_progress=True, create_parents=True):
    """Run every planned case not already in `document`; returns the Run.

    Raises KeyboardInterrupt after saving what was measured, if interrupted.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    run = Run(config, out_dir, document)
    run.check_writable(create_parents)
    environments, run.pythons, unbuilt = prepare_environments(config, run.out_dir)
    runs = plan(config)
    for item in runs:  # an environment that could not be built: its cases fail with the reason, the rest run
        if item.get("environment") in unbuilt:
            item["skip"] = f"failed: {unbuilt[item['environment']]}"
    entries = {entry_key(entry): entry for entry in (run.document or {}).get("results", [])}
    pending = []
    for item in runs:
        left = [task for task in item["tasks"] if task_key(item, task) not in entries]
        if left:
            pending.append({**item, "tasks": left})
    skipped = [item for item in pending if item.get("skip")]
    measured = [item for item in pending if not item.get("skip")]
    run.log = open(run.out_dir / "worker.log", "a")
    try:
        # Everything that imports starts at once, before any clock runs: the
        # workers and the process that measures the peak at the start and the end.
        run.mark("starting the workers")
        run.peaks = [start_peak(config, run.log)]
        run.canary = start_canary(config, run.log)
        run.start_zygotes(measured, wait=False)
        if run.document is None:
            record = machine.describe(config.name or None)
            if environments:
                record["environments"] = environments
            record["conditions"] = noise.conditions()  # others' load, sampled while ours import
            run.start_zygotes(measured)  # every worker ready and idle
            run.mark("measuring the peak")
            record.update(measure_peak(run.peaks[0], last=False))
            record["tf32"] = config.tf32
            record["threads"] = {"requested": config.threads}
            run.start_document(record)
    except BaseException:
        run.stop_workers()
        run.log.close()
        raise
    # Order is drawn afresh (not from the run's seed): a fixed order would
    # favour the same implementation in every run. It is recorded.
    generator = random.Random()
    orders = run.document.setdefault("rounds", [])
    run.save()

    def retimed(item):
        """Whether later rounds time this run again: its workload's choice, never a slow starter's."""
        # Slow starters (seconds of compiling per fresh process) are timed in round 1 only.
        return workloads.get(item["workload"]).timed_rounds and not item.get("skip") and not spec_of(item).slow_start

    def timing_round(number):
        """The runs still short of `number` rounds, with just those tasks."""
        items = []
        for item in runs:
            if not retimed(item):
                continue
            tasks = [task for task in item["tasks"] if (entry := entries.get(task_key(item, task))) is not None
                     and entry["status"] in TIMED_STATUSES and entry.get("step_time")
                     and len(entry["step_time"].get("round_medians", [])) < number]
            if tasks:
                items.append({**item, "tasks": tasks})
        return items

    total = sum(len(item["tasks"]) for item in pending)
    total += (config.rounds - 1) * sum(len(item["tasks"]) for item in runs if retimed(item))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, disable=not show_progress, transient=False) as progress:
            bar = progress.add_task("measuring", total=total)

            def on_entry(entry, task, environment=None):
                entry = run.finish_entry(entry, task, environment)
                run.document["results"].append(entry)
                entries[entry_key(entry)] = entry
                run.save()
                progress.advance(bar)
                return entry

            def described(item):
                where = f" @ {item['environment']}" if item.get("environment") else ""
                return f"{item['workload']} {item['implementation']}{where}"

            for item in skipped:
                status, reason = item["skip"].split(": ", 1)
                for task in item["tasks"]:
                    on_entry(empty_entry(item, task, config, status, reason), task, item.get("environment"))
            progress.update(bar, description="starting the workers (importing the frameworks)")
            run.start_zygotes(measured)
            order = shuffled(measured, generator)
            if order:
                orders.append([job_label(item) for item in order])
            for item in order:
                progress.update(bar, description=f"round 1 · {described(item):<28}")
                left, code = run.run_job(
                    item, "full", lambda entry, task, item=item: on_entry(entry, task, item.get("environment")))
                for task in left:
                    reason = f"worker exited with status {code} before finishing (see worker.log)"
                    on_entry(empty_entry(item, task, config, "failed", reason), task, item.get("environment"))
                run.save()  # with the process's canary
            for number in range(2, config.rounds + 1):
                order = shuffled(timing_round(number), generator)
                if order:
                    orders.append([job_label(item) for item in order])
                for item in order:
                    progress.update(bar, description=f"round {number} · {described(item):<28}")

                    def on_timing(record, task, item=item):
                        entry = entries[task_key(item, task)]
                        added = run.add_round(entry, record)
                        run.save()
                        progress.advance(bar)
                        return entry if added else None  # a round without steps takes no canary

                    left, _ = run.run_job(item, "timing", on_timing)
                    run.save()  # with the process's canary
                    progress.advance(bar, len(left))
            run.mark("closing the workers")
            run.close_workers()
            run.mark("measuring the peak again")
            progress.update(bar, description="measuring the peak again")
            final = measure_peak(run.peaks[-1], last=False)
            machine_record = run.document["machine"]
            start = {"peak_gflops": machine_record.get("peak_gflops"), "peak_detail": machine_record.get("peak_detail")}
            machine_record.update(peak.combine(start, final))
            if run.peaks[-1].alive() and peak.beaten(run.document["results"], machine_record["peak_gflops"]):
                # No step beats a sound peak: measure once more before calling this one unsound.
                run.mark("measuring the peak once more")
                progress.update(bar, description="a step beat the peak: measuring the peak once more")
                machine_record.update(peak.remeasured(machine_record, measure_peak(run.peaks[-1]),
                                                      run.document["results"]))
            run.peaks.pop().close(timeout_s=2)
            for entry in run.document["results"]:
                run.set_peak_fraction(entry)
            run.save()
            run.mark("done")
    except KeyboardInterrupt:
        run.stop_workers()
        run.save()
        raise
    finally:
        run.stop_workers()
        run.log.close()
    return run
