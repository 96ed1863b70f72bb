"""The run's results document: its output folder, its entries as they are judged, and its atomic rewrite.

The worker measures; what it cannot know is added here (`Run.finish_entry`):
agreement with the reference (the workload's `judge`, each reference
computed once per run, `References`), the share of the matmul peak, the
verdict. A later round joins its entry as one more vote (`Run.add_round`):
the entry's median is the median of its round medians (sidebyside/rounds.py),
its spread that of every timed step pooled, each round with its canary.

The rule: results.json is only ever written whole, once the model
(sidebyside/results.py) has accepted it, through a temporary file and a
rename (`Run.save`), so Ctrl-C, SIGTERM, a crash or a full disk never leaves
half of one. Nothing here starts a process.
"""

import datetime
import json
from pathlib import Path

import numpy as np

from sidebyside import jobs, rounds, timing, workloads
from sidebyside.files import atomic_write, probe_writable
from sidebyside.plan import entry_key, spec_of
from sidebyside.results import SCHEMA_VERSION, gflops, peak_for, peak_fraction, validate_document
from sidebyside.worker import base_entry

SCHEMA = SCHEMA_VERSION  # the results.json layout this runner writes (sidebyside/results.py)


class RunError(Exception):
    """A problem that stops the run before it starts: one line for the user."""


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


class Run:
    """One run's output folder and its document, entry by entry."""

    def __init__(self, config, out_dir, document=None):
        self.config = config
        self.out_dir = Path(out_dir)
        self.results_path = self.out_dir / "results.json"
        self.document = document
        self.references = None  # References, once the document exists
        self.samples = {}  # entry key -> every timed step of every round, for pooling
        self.canary_before = None  # the canary timed before the process running now (sidebyside/runner.py)

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


def empty_entry(run, task, config, status, reason):
    entry = base_entry(spec_of(run), task, config.threads)
    entry.update(status=status, reason=reason, environment=run.get("environment"))
    return entry
