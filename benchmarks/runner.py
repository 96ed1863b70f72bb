"""`sidebyside run`: plan the cases, run each implementation in its own worker
process, and keep results.json up to date after every finished case.

results.json is rewritten atomically (a temporary file, then a rename) each
time an entry arrives, so Ctrl-C, a crash or a full disk never leaves a
half-written file, and `--resume DIR` can pick up where a run stopped.
"""

import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import agreement, machine
from benchmarks.config import RunConfig, sweep_learning_rate

SCHEMA = 1
WORKLOAD_ORDER = ("two_layer", "digits")
KEY_FIELDS = ("workload", "implementation", "device", "dtype")


class RunError(Exception):
    """A problem that stops the run before it starts: one line for the user."""


def entry_key(entry):
    size = entry["size"]
    return tuple(entry[field] for field in KEY_FIELDS) + (size["N"], size["D_in"], size["H"], size["D_out"])


def size_dict(size):
    return dict(zip(("N", "D_in", "H", "D_out"), size))


def registry_for(workload):
    if workload == "digits":
        import implementations.digits as registry
    else:
        import implementations as registry
    return registry


def process_group(spec):
    """Implementations that share a worker process: Keras joins its backend's."""
    return spec.backend if "keras" in spec.requires else spec.framework


def group_jobs(runs):
    """Worker jobs: the runs of one framework together, in first-seen order."""
    jobs = {}
    for run in runs:
        spec = registry_for(run["workload"]).spec(run["implementation"])
        group = process_group(spec)
        job = jobs.setdefault(group, {"group": group, "keras_backend": None, "runs": []})
        if "keras" in spec.requires:
            job["keras_backend"] = spec.backend
        job["runs"].append(run)
    for job in jobs.values():
        job["runs"].sort(key=lambda run: WORKLOAD_ORDER.index(run["workload"]))
    return list(jobs.values())


def plan(config):
    """One run per workload and implementation, with its tasks."""
    runs = []
    for workload in config.workloads:
        registry = registry_for(workload)
        names = config.implementations or tuple(registry.names())
        for name in names:
            if name not in registry.REGISTRY:
                continue  # e.g. an implementation that exists for one workload only
            tasks = []
            for device in config.devices:
                if workload == "digits":
                    from benchmarks.digits import size_for

                    for dtype in config.dtypes:
                        tasks.append({
                            "workload": workload, "device": device, "dtype": dtype,
                            "size": size_for(config.digits_data or None),
                            "epochs": 1 if config.quick else config.epochs,
                            "data": config.digits_data or None, "quick": config.quick,
                        })
                    continue
                for size in config.sizes:
                    for dtype in config.dtypes:
                        tasks.append(two_layer_task(config, device, dtype, size, full=True))
                for size in config.sweep:
                    tasks.append(two_layer_task(config, device, config.dtypes[0], size, full=False))
            run = {"implementation": name, "workload": workload, "tasks": tasks}
            if config.quick and registry.spec(name).slow_start:
                run["skip"] = "n/a: skipped by --quick (it needs several seconds to compile or start before its first step)"
            runs.append(run)
    return runs


def two_layer_task(config, device, dtype, size, full):
    task = {
        "workload": "two_layer", "device": device, "dtype": dtype, "size": size_dict(size),
        "steps": config.steps, "seed": config.seed, "warmup": min(config.warmup, max(config.steps // 10, 1)),
        "learning_rate": config.learning_rate if full else sweep_learning_rate(config.learning_rate, size),
        "loop_budget_s": config.loop_budget_s,
    }
    if not full:
        task.update(budget_s=config.sweep_budget_s, warmup=3)
    return task


def task_key(run, task):
    """The same key as entry_key, for a task not yet run."""
    size = task["size"]
    return (task["workload"], run["implementation"], task["device"], task["dtype"],
            size["N"], size["D_in"], size["H"], size["D_out"])


class Run:
    """One run's output folder, its document, and the workers that fill it."""

    def __init__(self, config, out_dir, document=None):
        self.config = config
        self.out_dir = Path(out_dir)
        self.results_path = self.out_dir / "results.json"
        self.document = document
        self.references = {}
        self.worker = None

    # Output ---------------------------------------------------------------

    def check_writable(self, create_parents=True):
        """Fail now, in one line, if the output folder cannot take our files."""
        if not create_parents and not self.out_dir.parent.is_dir():
            raise RunError(f"cannot write to {self.out_dir}: its parent folder {self.out_dir.parent} does not exist")
        try:
            self.out_dir.mkdir(parents=create_parents, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.out_dir, prefix=".write-test-"):
                pass
        except OSError as error:
            raise RunError(f"cannot write to {self.out_dir}: {error.strerror or error}") from None

    def save(self):
        """Write results.json atomically: a temporary file, then a rename.

        A failed write (a full disk, say) leaves the previous results.json whole.
        """
        text = json.dumps(self.document, indent=1, allow_nan=False)
        try:
            self.write_atomically(text)
        except OSError as error:
            raise RunError(f"cannot write {self.results_path}: {error.strerror or error}") from None

    def write_atomically(self, text):
        handle, temporary = tempfile.mkstemp(dir=self.out_dir, prefix=".results-", suffix=".json")
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, self.results_path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

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

    def reference(self, task):
        """The float64 reference trajectory for a full-length two-layer task."""
        from implementations.problem import Problem, make_data

        key = (tuple(task["size"].values()), task["learning_rate"], task["seed"], task["steps"])
        if key not in self.references:
            problem = Problem(**task["size"], learning_rate=task["learning_rate"], steps=task["steps"],
                              seed=task["seed"], dtype="float64")
            x, y, w1, w2 = make_data(problem)
            losses = agreement.reference_losses(x, y, w1, w2, problem.learning_rate, problem.steps)
            self.references[key] = (losses, y)
            self.document["references"].append(
                {"workload": "two_layer", "size": task["size"], "dtype": "float64",
                 "learning_rate": task["learning_rate"],
                 "losses": [float(v) if np.isfinite(v) else None for v in losses]}
            )
        return self.references[key]

    def digits_reference(self, task):
        """Record the digits' float64 reference trajectory once per data and epochs."""
        from benchmarks.digits import reference_record

        key = ("digits", task["epochs"], task["data"], task["quick"])
        if key not in self.references:
            self.references[key] = True
            self.document["references"].append(reference_record(task["epochs"], task["data"], task["quick"]))

    def finish_entry(self, entry, task):
        """Add what the worker cannot know: agreement and share of peak."""
        peak = (self.document["machine"].get("peak_gflops") or {}).get(entry["device"])
        if entry.get("gflops") and peak:
            entry["peak_fraction"] = entry["gflops"] / peak
        if entry["workload"] == "digits" and entry["losses"]:
            self.digits_reference(task)  # the entry carries its own agreement
        if entry["workload"] == "two_layer" and "budget_s" not in task and entry["losses"]:
            reference, y = self.reference(task)
            result = agreement.compare(entry["losses"], reference, entry["dtype"], y)
            entry["extra"]["agreement_ratio"] = result.pop("agreement_ratio")
            entry.update(result)
            if entry["status"] == "ok" and entry["agrees"] is False:
                entry["extra"]["disagrees"] = True
        return entry

    # Workers ----------------------------------------------------------------

    def run_job(self, job, on_entry):
        """Run one worker; call on_entry(entry, run, task) as each entry lands.

        Returns the (run, task) pairs left without an entry, and the exit code.
        """
        pairs = [(run, task) for run in job["runs"] for task in run["tasks"]]
        stem = job["group"]
        job_path = self.out_dir / f".job-{stem}.json"
        stream_path = self.out_dir / f".entries-{stem}.jsonl"
        log_path = self.out_dir / "worker.log"
        job_path.write_text(json.dumps({**job, "threads": self.config.threads, "tf32": self.config.tf32}))
        stream_path.write_text("")
        environment = dict(os.environ, PYTHONUNBUFFERED="1")
        if job["keras_backend"]:
            environment["KERAS_BACKEND"] = job["keras_backend"]  # fixed at import: one backend per process
        with open(log_path, "a") as log:
            log.write(f"=== {stem}\n")
            log.flush()
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.worker", str(job_path), str(stream_path), str(log_path)],
                stdout=log, stderr=log, env=environment, start_new_session=True,
            )
            received = 0
            last_progress = time.monotonic()
            try:
                while True:
                    finished = self.worker.poll() is not None
                    lines = stream_path.read_text().splitlines()
                    complete = [line for line in lines if line.endswith("}")]
                    for line in complete[received:]:
                        run, task = pairs[received]
                        on_entry(self.finish_entry(json.loads(line), task), run, task)
                        received += 1
                        last_progress = time.monotonic()
                    if finished:
                        break
                    if time.monotonic() - last_progress > self.config.worker_timeout_s:
                        self.stop_worker()
                        log.write(f"timed out after {self.config.worker_timeout_s:.0f} s without a result\n")
                        break
                    time.sleep(0.05)
            finally:
                self.stop_worker()
        code = self.worker.returncode
        self.worker = None
        job_path.unlink(missing_ok=True)
        stream_path.unlink(missing_ok=True)
        return pairs[received:], code

    def stop_worker(self):
        """Stop the worker and everything it started, within about two seconds."""
        worker = self.worker
        if worker is None or worker.poll() is not None:
            return
        try:
            os.killpg(worker.pid, signal.SIGINT)
            worker.wait(timeout=1.5)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
        if worker.poll() is None:
            try:
                os.killpg(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            worker.wait()


def measure_peak(config):
    """The attainable float32 matmul peak per device, in a worker of its own."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.peak", str(config.threads), "1" if config.tf32 else "0"],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        return {"peak_gflops": {"cpu": None, "cuda": None}, "peak_detail": {"error": result.stderr.strip()[-300:]}}
    return json.loads(result.stdout.strip().splitlines()[-1])


def empty_entry(run, task, config, status, reason):
    registry = registry_for(run["workload"])
    spec = registry.spec(run["implementation"])
    from benchmarks.worker import base_entry

    entry = base_entry(spec, task, config.threads)
    entry.update(status=status, reason=reason)
    return entry


def execute(config, out_dir, document=None, show_progress=True, create_parents=True):
    """Run every planned case not already in `document`; returns the Run.

    Raises KeyboardInterrupt after saving what was measured, if interrupted.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    run = Run(config, out_dir, document)
    run.check_writable(create_parents)
    runs = plan(config)
    if run.document is None:
        record = machine.describe(config.name or None)
        record.update(measure_peak(config))
        record["tf32"] = config.tf32
        record["threads"] = {"requested": config.threads}
        run.start_document(record)
    done = {entry_key(entry) for entry in run.document["results"]}
    for item in runs:
        item["tasks"] = [task for task in item["tasks"] if task_key(item, task) not in done]
    skipped = [item for item in runs if item.get("skip")]
    jobs = group_jobs([item for item in runs if item["tasks"] and not item.get("skip")])
    run.save()
    total = sum(len(item["tasks"]) for job in jobs for item in job["runs"]) + sum(len(item["tasks"]) for item in skipped)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, disable=not show_progress, transient=False) as progress:
        bar = progress.add_task("measuring", total=total)

        def on_entry(entry, item, task):
            run.document["results"].append(entry)
            run.save()
            progress.advance(bar)
            progress.update(bar, description=f"{entry['workload']} {entry['implementation']:<20}")

        for item in skipped:
            for task in item["tasks"]:
                status, reason = item["skip"].split(": ", 1)
                on_entry(empty_entry(item, task, config, status, reason), item, task)
        try:
            for job in jobs:
                first = job["runs"][0]
                progress.update(bar, description=f"{first['workload']} {first['implementation']:<20}")
                left, code = run.run_job(job, on_entry)
                for item, task in left:
                    reason = f"worker exited with status {code} before finishing (see worker.log)"
                    on_entry(empty_entry(item, task, config, "failed", reason), item, task)
        except KeyboardInterrupt:
            run.stop_worker()
            run.save()
            raise
    return run
