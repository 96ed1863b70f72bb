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

This module holds the rounds loop (`execute`, `Rounds`) and the
environments' preparation; what a configuration expands to is
sidebyside/plan.py, the processes sidebyside/pool.py, the results document
sidebyside/document.py. The rule: `execute` returns or raises only once
every process it started is stopped, and what was measured is saved.
"""

import functools
import math
import random
import sys
from pathlib import Path

from sidebyside import envs, machine, noise, peak, workloads
from sidebyside.document import Run, RunError, empty_entry
from sidebyside.plan import (described, entry_key, fail_unbuilt, job_label, left_to_run, plan, progress_total,
                             shuffled, task_key, timing_round)
from sidebyside.pool import Pool, measure_peak


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


class Rounds:
    """The rounds of one run: each process in its turn, its records into the document, the progress bar moved."""

    def __init__(self, run, pool, runs, entries):
        self.run, self.pool, self.config = run, pool, run.config
        self.runs = runs
        self.entries = entries  # entry key -> entry: the document's, and each new one as it lands
        # Order is drawn afresh (not from the run's seed): a fixed order would
        # favour the same implementation in every run. It is recorded.
        self.generator = random.Random()
        self.orders = None  # the document's "rounds": each round's order, once it exists
        self.progress = self.bar = None

    def start(self, measured, environments):
        """Start every process before any clock runs; a new run's document begins with the machine and the peak."""
        run, pool, config = self.run, self.pool, self.config
        try:
            # Everything that imports starts at once, before any clock runs: the
            # workers and the process that measures the peak at the start and the end.
            pool.start(measured)
            if run.document is None:
                record = machine.describe(config.name or None)
                if environments:
                    record["environments"] = environments
                record["conditions"] = noise.conditions()  # others' load, sampled while ours import
                pool.start_zygotes(measured)  # every worker ready and idle
                pool.mark("measuring the peak")
                record.update(measure_peak(pool.peaks[0], last=False))
                record["tf32"] = config.tf32
                record["threads"] = {"requested": config.threads}
                run.start_document(record)
        except BaseException:
            pool.stop()
            pool.log.close()
            raise
        self.orders = run.document.setdefault("rounds", [])

    def on_entry(self, entry, task, environment=None):
        """A new entry: judged, kept, saved."""
        entry = self.run.finish_entry(entry, task, environment)
        self.run.document["results"].append(entry)
        self.entries[entry_key(entry)] = entry
        self.run.save()
        self.progress.advance(self.bar)
        return entry

    def on_timing(self, item, record, task):
        """A later round's record: one more round of its entry, saved; the entry, if the round timed a step."""
        entry = self.entries[task_key(item, task)]
        added = self.run.add_round(entry, record)
        self.run.save()
        self.progress.advance(self.bar)
        return entry if added else None  # a round without steps takes no canary

    def run_job(self, item, mode, on_record):
        """Run one process (sidebyside/pool.py), its canary timed before and after.

        The one after also serves as the next process's before, and the two
        set the last round's canary of every entry the process filled. Until
        then an entry holds the canary before, so one cut short by Ctrl-C
        keeps that (and a resumed run has a canary for every round). Returns
        the tasks left without a record, and the child's exit code.
        """
        before = self.run.canary_before = self.pool.canary_before()
        left, code, filled = self.pool.run_job(item, mode, on_record)
        if filled is None:  # no process started
            return left, code
        after = self.pool.canary_after()
        for entry in filter(None, filled):
            self.run.set_canary(entry, math.sqrt(before * after) if before and after else None)
        return left, code

    def order(self, items):
        """The items in a freshly shuffled order, recorded in the document's "rounds"."""
        order = shuffled(items, self.generator)
        if order:
            self.orders.append([job_label(item) for item in order])
        return order

    def skip(self, pending):
        """An entry for every task of a run that does not run here, with its status and reason."""
        for item in pending:
            if item.get("skip"):
                status, reason = item["skip"].split(": ", 1)
                for task in item["tasks"]:
                    self.on_entry(empty_entry(item, task, self.config, status, reason), task, item.get("environment"))

    def first(self, measured):
        """Round 1: every case in full, each run in a fresh process; a task left without a record has failed."""
        self.progress.update(self.bar, description="starting the workers (importing the frameworks)")
        self.pool.start_zygotes(measured)
        for item in self.order(measured):
            self.progress.update(self.bar, description=f"round 1 · {described(item):<28}")
            on_record = functools.partial(self.on_entry, environment=item.get("environment"))
            left, code = self.run_job(item, "full", on_record)
            for task in left:
                reason = f"worker exited with status {code} before finishing (see worker.log)"
                self.on_entry(empty_entry(item, task, self.config, "failed", reason), task, item.get("environment"))
            self.run.save()  # with the process's canary

    def later(self, number):
        """Round `number`: the runs still short of it, timed again briefly."""
        for item in self.order(timing_round(self.runs, self.entries, number)):
            self.progress.update(self.bar, description=f"round {number} · {described(item):<28}")
            left, _ = self.run_job(item, "timing", functools.partial(self.on_timing, item))
            self.run.save()  # with the process's canary
            self.progress.advance(self.bar, len(left))

    def finish(self):
        """Close the workers, measure the peak again (once more where a step beat it), and set every share of it."""
        run, pool, progress, bar = self.run, self.pool, self.progress, self.bar
        pool.mark("closing the workers")
        pool.close()
        pool.mark("measuring the peak again")
        progress.update(bar, description="measuring the peak again")
        final = measure_peak(pool.peaks[-1], last=False)
        machine_record = run.document["machine"]
        start = {"peak_gflops": machine_record.get("peak_gflops"), "peak_detail": machine_record.get("peak_detail")}
        machine_record.update(peak.combine(start, final))
        if pool.peaks[-1].alive() and peak.beaten(run.document["results"], machine_record["peak_gflops"]):
            # No step beats a sound peak: measure once more before calling this one unsound.
            pool.mark("measuring the peak once more")
            progress.update(bar, description="a step beat the peak: measuring the peak once more")
            machine_record.update(peak.remeasured(machine_record, measure_peak(pool.peaks[-1]),
                                                  run.document["results"]))
        pool.peaks.pop().close(timeout_s=2)
        for entry in run.document["results"]:
            run.set_peak_fraction(entry)
        run.save()
        pool.mark("done")


def execute(config, out_dir, document=None, show_progress=True, create_parents=True):
    """Run every planned case not already in `document`; returns the Run.

    Raises KeyboardInterrupt after saving what was measured, if interrupted.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    config = workloads.settle(config)  # results.json records every workload option, however config was built
    run = Run(config, out_dir, document)
    run.check_writable(create_parents)
    environments, pythons, unbuilt = prepare_environments(config, run.out_dir)
    runs = fail_unbuilt(plan(config), unbuilt)  # an environment that could not be built: its cases fail
    entries = {entry_key(entry): entry for entry in (run.document or {}).get("results", [])}
    pending = left_to_run(runs, entries)
    measured = [item for item in pending if not item.get("skip")]
    pool = Pool(config, run.out_dir, pythons, open(run.out_dir / "worker.log", "a"))
    rounds = Rounds(run, pool, runs, entries)
    rounds.start(measured, environments)
    run.save()
    total = progress_total(pending, runs, config.rounds)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, disable=not show_progress, transient=False) as progress:
            rounds.progress, rounds.bar = progress, progress.add_task("measuring", total=total)
            rounds.skip(pending)
            rounds.first(measured)
            for number in range(2, config.rounds + 1):
                rounds.later(number)
            rounds.finish()
    except KeyboardInterrupt:
        pool.stop()
        run.save()
        raise
    finally:
        pool.stop()
        pool.log.close()
    return run
