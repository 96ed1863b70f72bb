"""The workloads: each module here is one problem, and all the harness knows of it.

A workload module defines `WORKLOAD`, an instance of a `Workload` subclass:
its registry of implementations, the checks of a configuration, the tasks a
configuration expands to, how one task is measured (in the worker), how an
entry is judged against its reference (in the runner), the columns it adds
to the console summary, and its part of the report. The runner, the worker,
the CLI, the console summary and the report loop over `every()`; none of them
names a workload.

The bundled workloads are found by listing this folder. Others are
plug-ins: the modules named in the environment variable
SIDEBYSIDE_WORKLOADS (import paths, comma-separated) are imported by every
process of a run (the runner and each worker inherit it), and each one's
`WORKLOAD` joins the list. `register(workload)` adds one in this process
only, for code that measures in-process.
"""

import dataclasses
import importlib

from sidebyside import plugins
from sidebyside.implementations import one_line

PLUGINS = "SIDEBYSIDE_WORKLOADS"


class CommandError(ValueError):
    """Bad use of a workload's own command: the CLI prints it in one line, exit status 2."""


class Workload:
    """One problem. The defaults fit a workload that times steps and needs no sweep."""

    name = ""  # the entries' "workload"
    title = ""  # its section's heading in the report
    order = 100  # where it comes in every list (the CLI's, the plan's, the report's): lowest first
    # Its entries fill the report's summary, agreement and timing sections and
    # are ranked there; a workload without it gets a section of its own.
    main = False
    timed_rounds = False  # rounds 2, 3, ... time its cases again in fresh processes
    first_time = "first_step_s"  # the entry field the console summary shows as "1st (s)"
    size_in_title = True  # the console summary's table titles name the size
    summary_columns = ()  # ((header, cell(entry) -> text), ...): columns the console summary adds
    code_pair = ()  # (left module, right module): the code shown side by side first in the report
    # Its own options of `sidebyside run` (config.Option: flag, key, help, type),
    # in the parser and the settings file; the values in RunConfig.options.
    options = ()

    # The implementations -------------------------------------------------

    def registry(self):
        """An object with REGISTRY (name -> Implementation), names(), spec(name) and load(name)."""
        raise NotImplementedError

    def names(self):
        return self.registry().names()

    def spec(self, name):
        return self.registry().spec(name)

    def preload(self):
        """Modules the worker's zygote imports before forking, when it serves this workload."""
        return ()

    def commands(self):
        """Subcommands of `sidebyside` this workload brings.

        {name: (help, add_arguments(parser), run(args) -> exit code)}; the value types are in sidebyside.config;
        run raises CommandError for bad use.
        """
        return {}

    # Planning ----------------------------------------------------------------

    def missing(self):
        """Why every case is "n/a" where the libraries it needs are absent ("n/a: ..."), or None."""
        return None

    def check(self, config):
        """Refuse a configuration this workload cannot run, before anything starts: ValueError, one line."""

    def settled(self, config):
        """Its options as it runs them, every default filled in (JSON-able): what results.json records."""
        return {option.key: config.option(option.key) for option in self.options}

    def size_label(self, size):
        """A size (the entries' {key: value}) in one short phrase, as lists and messages write it."""
        return size_label(size)

    def tasks(self, config, spec, device):
        """The tasks (JSON-able dicts with "workload", "device", "dtype", "size") of one implementation."""
        raise NotImplementedError

    # Measuring (in the worker) -----------------------------------------------

    def warm_up(self, spec, task, threads):
        """A framework's one-time start, paid before the first case; seconds, or None where skipped."""
        return None

    def measure(self, spec, task, entry, threads):
        """Fill `entry` (worker.base_entry) with the losses and timings of one task."""
        raise NotImplementedError

    def time_round(self, spec, task, threads):
        """One later timing round: {"samples": [seconds], "cpu_utilization": ..., "first_step_s": ...}."""
        raise NotImplementedError

    def time_rounds(self, spec, tasks, threads, ready):
        """One later timing round of every task, a record each in the tasks' order; by default each alone.

        `ready(task)` raises where a task cannot run here (its device). A task
        that fails gets {"samples": [], "reason": one line}: the first round
        recorded why already.
        """
        for task in tasks:
            try:
                ready(task)
                yield self.time_round(spec, task, threads)
            except KeyboardInterrupt:
                raise
            except Exception as error:
                yield {"samples": [], "reason": one_line(error)}

    # Judging (in the runner) -------------------------------------------------

    def judge(self, entry, task, references):
        """Set entry's agreement, agreement_tolerance and agrees against the reference (an entry with losses).

        `references` is the run's References: `references.once(key, make)` computes
        a reference once per key and records it in results.json.
        """

    # Reading results (in the report) -----------------------------------------

    def flops(self, size):
        """FLOPs of one step at `size`, for result files that did not record them; None if unknown."""
        return None

    def section(self, collection, lines_of_code, palette):
        """This workload's own report section (report.tables.Section); None gets the plain one.

        `collection` holds this workload's rows only; `lines_of_code` maps its
        implementations to their lines; `palette` gives each implementation the
        colour it has in every chart of the page. Its id is "workload-<name>";
        the report adds its code side by side. The plain section
        (report.sections.workloads.entries_section) is one row per entry.
        """
        return None

    def findings(self, frame):
        """Sentences for the top of the report, from this workload's rows of one machine."""
        return []


def size_label(size):
    """The label of a size whose workload is not installed: its values, "×" between."""
    return "×".join(str(value) for value in size.values()) if isinstance(size, dict) else str(size)


class Unknown(Workload):
    """A workload a result file names that this installation does not have: shown, never measured."""

    def __init__(self, name):
        self.name = name
        self.title = name


_registered = {}
_discovered = False


def register(workload):
    """Add a workload to this process's list; returns it."""
    if not isinstance(workload, Workload) or not workload.name:
        raise TypeError(f"a workload must be a named Workload, got {workload!r}")
    _registered[workload.name] = workload
    return workload


def discover():
    """Import the bundled workload modules and the plug-ins named in SIDEBYSIDE_WORKLOADS, once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module_name in plugins.listed(__name__, __path__) + plugins.named(PLUGINS):
        module = importlib.import_module(module_name)
        register(module.WORKLOAD)


def every():
    """Every workload, in their `order` (then in the order they were registered)."""
    discover()
    return sorted(_registered.values(), key=lambda workload: workload.order)


def names():
    return [workload.name for workload in every()]


def get(name):
    """The workload of this name: KeyError, naming the known ones, if there is none."""
    discover()
    try:
        return _registered[name]
    except KeyError:
        raise KeyError(f"unknown workload {name!r}; known: {', '.join(_registered)}") from None


def reading(name):
    """The workload of this name for reading results: an Unknown stand-in where it is not installed."""
    discover()
    return _registered.get(name) or Unknown(name)


def settle(config):
    """`config` with each of its workloads' options as the workload runs them, defaults filled in.

    What results.json records, whoever built the configuration (the CLI,
    a script, a test); settling twice changes nothing.
    """
    settled = {}
    for name in config.workloads or names():
        settled.update(get(name).settled(config))
    return dataclasses.replace(config, options={**config.options, **settled})


def main_names():
    """The workloads whose entries fill the report's ranked sections."""
    return [workload.name for workload in every() if workload.main]
