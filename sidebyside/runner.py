"""`sidebyside run`: plan the cases, measure them in rounds of fresh processes,
and keep results.json up to date after every finished case.

A run has `rounds` rounds (3 by default). Each round runs every
implementation once, in a freshly shuffled order, each in a fresh process
forked from its framework's zygote (see sidebyside/worker.py):

* round 1 trains every case for the full number of steps: the loss
  trajectory that agreement is judged on, the first step, the per-step
  timings, the loop view and the memory;
* later rounds time each case again, briefly, on a fresh net; the slow
  starters (torch.compile variants, torch_ddp: seconds of compiling or
  starting ranks in every fresh process) are timed in round 1 only, and
  ranked by the statistics of that round.

An entry's `step_time` pools the timed steps of all rounds and keeps each
round's median (`round_medians`): a burst of noise on a shared machine
then moves one round, not a ranking (sidebyside/ranking.py calls a tie
where the rounds do not separate two implementations).

The matmul peak is measured at the start and at the end of the run; the
higher counts, both are recorded.

results.json is rewritten atomically (a temporary file, then a rename) each
time an entry arrives, so Ctrl-C, SIGTERM, a crash or a full disk never
leaves a half-written file, and `--resume DIR` can pick up where a run stopped.
"""

import datetime
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sidebyside import machine, noise, ranking, timing, workloads
from sidebyside.results import SCHEMA_VERSION, gflops, peak_for, peak_fraction, validate_document

from sidebyside.files import atomic_write, probe_writable

SCHEMA = SCHEMA_VERSION  # the results.json layout this runner writes (sidebyside/results.py)
KEY_FIELDS = ("workload", "implementation", "device", "dtype")
TIMED_STATUSES = ("ok", "disagrees")  # entries whose step time later rounds refine


class RunError(Exception):
    """A problem that stops the run before it starts: one line for the user."""


def entry_key(entry):
    return tuple(entry[field] for field in KEY_FIELDS) + tuple(sorted(entry["size"].items()))


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
    """One run per workload and implementation, with its tasks (the workload's `tasks`)."""
    runs = []
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
            runs.append(run)
    return runs


def task_key(run, task):
    """The same key as entry_key, for a task not yet run."""
    return (task["workload"], run["implementation"], task["device"], task["dtype"]) + tuple(sorted(task["size"].items()))


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

    def __init__(self, group, keras_backend, requires, threads, log, command=None, jobs=()):
        self.group = group
        environment = dict(os.environ, PYTHONUNBUFFERED="1")
        command = command or [sys.executable, "-m", "sidebyside.worker", str(threads), keras_backend or "",
                              ",".join(requires), ",".join(jobs)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=environment,
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

    def finish_entry(self, entry, task):
        """Add what the worker cannot know: agreement (the workload's `judge`), share of peak, the verdict."""
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
            entry["step_time"]["samples"] = compact(self.samples[entry_key(entry)]) or None
        self.set_peak_fraction(entry)
        return entry

    def set_peak_fraction(self, entry):
        peak = peak_for(self.document["machine"].get("peak_gflops"), entry["device"], entry["dtype"])
        entry["peak_fraction"] = peak_fraction(entry.get("gflops"), peak)

    def add_round(self, entry, record):
        """Pool one later round's timed steps into an entry."""
        samples = record.get("samples") or []
        if not samples or not entry.get("step_time"):
            return
        step_time = entry["step_time"]
        rounds = step_time.get("round_medians", []) + [float(np.median(samples))]
        pooled = self.samples.setdefault(entry_key(entry), [])
        if pooled:
            previous_wall = sum(pooled)
            pooled.extend(samples)
            entry["step_time"] = timing.summarize(pooled)
            if entry.get("cpu_utilization") is not None and record.get("cpu_utilization") is not None:
                wall = sum(samples)
                entry["cpu_utilization"] = (entry["cpu_utilization"] * previous_wall
                                            + record["cpu_utilization"] * wall) / (previous_wall + wall)
        entry["step_time"]["round_medians"] = rounds
        entry["step_time"]["samples"] = compact(pooled)
        entry["unstable"] = timing.is_unstable(entry["step_time"])
        if entry.get("flops_per_step"):
            entry["gflops"] = gflops(entry["flops_per_step"], entry["step_time"]["median"])
        self.set_peak_fraction(entry)

    # Processes --------------------------------------------------------------

    def launch(self, spec):
        """The zygote of the spec's group, started now if it is not running.

        It imports what every implementation of its group in this run needs
        (as `start_zygotes` gathered it), and sets KERAS_BACKEND where one
        of them is a Keras variant.
        """
        group = process_group(spec)
        zygote = self.zygotes.get(group)
        if zygote is None or not zygote.alive():
            requires = self.group_requires.get(group) or tuple(spec.requires)
            keras_backend = spec.backend if "keras" in requires else None
            zygote = Zygote(group, keras_backend, requires, self.config.threads, self.log,
                            jobs=self.group_jobs.get(group, ()))
            self.zygotes[group] = zygote
        return zygote

    def start_zygotes(self, runs, wait=True):
        """Start every group's zygote at once, before anything is timed; with `wait`, until all are ready.

        Their imports overlap (seconds each, much of it waiting on the disk),
        and no clock is running yet, so nothing measured pays for that.
        """
        specs = [spec_of(run) for run in runs]
        for run, spec in zip(runs, specs):
            group = process_group(spec)
            self.group_requires[group] = tuple(dict.fromkeys(self.group_requires.get(group, ()) + tuple(spec.requires)))
            self.group_jobs.setdefault(group, []).append(f"{run['workload']}:{run['implementation']}")
        for spec in specs:
            self.launch(spec)
        if wait:
            for spec in specs:
                self.zygote(spec)

    def zygote(self, spec):
        """The spec's zygote, ready for a job, or None if it cannot start."""
        zygote = self.launch(spec)
        try:
            zygote.wait_ready(self.config.worker_timeout_s)
        except OSError as error:
            self.log.write(f"{error}\n")
            self.log.flush()
            self.zygotes.pop(process_group(spec), None)
            return None
        return zygote

    def run_job(self, run, mode, on_record):
        """Run one implementation's tasks in a fresh process; call on_record(record, task) as each lands.

        Returns the tasks left without a record, and the child's exit code.
        """
        spec = spec_of(run)
        tasks = run["tasks"]
        stem = f"{run['workload']}-{run['implementation']}"
        job_path = self.out_dir / f".job-{stem}.json"
        stream_path = self.out_dir / f".entries-{stem}.jsonl"
        job = {"run": run, "mode": mode, "threads": self.config.threads, "tf32": self.config.tf32}
        try:
            job_path.write_text(json.dumps(job))
            stream_path.write_text("")
            self.mark(f"{stem} ({mode})")
            zygote = self.zygote(spec)
            if zygote is None or not zygote.submit(job_path, stream_path):
                return tasks, "the worker did not start"
            received, code = 0, None
            last_progress = time.monotonic()
            while True:
                answer = zygote.read(0.05)
                if answer is not None and "exit" in answer:
                    code = answer["exit"]
                lines = stream_path.read_text().splitlines()
                complete = [line for line in lines if line.endswith("}")]
                for line in complete[received:]:
                    on_record(json.loads(line), tasks[received])
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
        return tasks[received:], code

    def mark(self, phase):
        """A phase's start in worker.log, with the Unix time: where a run's wall time goes."""
        self.log.write(f"=== {phase} at {time.time():.2f}\n")
        self.log.flush()

    def stop_workers(self):
        for zygote in [*self.zygotes.values(), *self.peaks]:
            zygote.stop()
        self.zygotes, self.peaks = {}, []

    def close_workers(self):
        """Hang up on every zygote at once, then wait for them all within one deadline."""
        for zygote in self.zygotes.values():
            zygote.hang_up()
        deadline = time.monotonic() + 5
        for zygote in self.zygotes.values():
            zygote.close(max(deadline - time.monotonic(), 0.1))
        self.zygotes = {}


PEAK_TIMEOUT_S = 300


def start_peak(config, log):
    """A process that measures the matmul peak when told to (`python -m sidebyside.peak ... --wait`).

    Started with the workers, it imports and builds its cases while they
    import; the timing waits for `measure_peak`, when nothing else runs.
    """
    command = [sys.executable, "-m", "sidebyside.peak", str(config.threads), "1" if config.tf32 else "0",
               str(config.peak_budget_s), "--wait"]
    return Zygote("peak", None, (), config.threads, log, command=command)


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
    from sidebyside.worker import base_entry

    entry = base_entry(spec_of(run), task, config.threads)
    entry.update(status=status, reason=reason)
    return entry


def shuffled(items, generator):
    items = list(items)
    generator.shuffle(items)
    return items


def execute(config, out_dir, document=None, show_progress=True, create_parents=True):
    """Run every planned case not already in `document`; returns the Run.

    Raises KeyboardInterrupt after saving what was measured, if interrupted.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sidebyside import peak

    run = Run(config, out_dir, document)
    run.check_writable(create_parents)
    runs = plan(config)
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
        run.start_zygotes(measured, wait=False)
        if run.document is None:
            record = machine.describe(config.name or None)
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

            def on_entry(entry, task):
                entry = run.finish_entry(entry, task)
                run.document["results"].append(entry)
                entries[entry_key(entry)] = entry
                run.save()
                progress.advance(bar)

            for item in skipped:
                status, reason = item["skip"].split(": ", 1)
                for task in item["tasks"]:
                    on_entry(empty_entry(item, task, config, status, reason), task)
            progress.update(bar, description="starting the workers (importing the frameworks)")
            run.start_zygotes(measured)
            order = shuffled(measured, generator)
            if order:
                orders.append([f"{item['workload']}:{item['implementation']}" for item in order])
            for item in order:
                progress.update(bar, description=f"round 1 · {item['workload']} {item['implementation']:<20}")
                left, code = run.run_job(item, "full", on_entry)
                for task in left:
                    reason = f"worker exited with status {code} before finishing (see worker.log)"
                    on_entry(empty_entry(item, task, config, "failed", reason), task)
            for number in range(2, config.rounds + 1):
                order = shuffled(timing_round(number), generator)
                if order:
                    orders.append([f"{item['workload']}:{item['implementation']}" for item in order])
                for item in order:
                    progress.update(bar, description=f"round {number} · {item['workload']} {item['implementation']:<20}")

                    def on_timing(record, task, item=item):
                        run.add_round(entries[task_key(item, task)], record)
                        run.save()
                        progress.advance(bar)

                    left, _ = run.run_job(item, "timing", on_timing)
                    progress.advance(bar, len(left))
            run.mark("closing the workers")
            run.close_workers()
            run.mark("measuring the peak again")
            progress.update(bar, description="measuring the peak again")
            final = measure_peak(run.peaks.pop())
            machine_record = run.document["machine"]
            start = {"peak_gflops": machine_record.get("peak_gflops"), "peak_detail": machine_record.get("peak_detail")}
            machine_record.update(peak.combine(start, final))
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
