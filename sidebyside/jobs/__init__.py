"""The data-parallel jobs: implementations that run as several processes, each a plug-in beside the workloads.

An implementation whose registry entry names a `launcher` (torch_ddp's
"torchrun", tf_multiworker's "tf_config", jax_distributed's
"jax_coordinator") is not built in the worker's process: the worker hands
its case to the job that serves that launcher (`serving`), which starts the
job's processes, waits for them and fills the worker's entry with what
process 0 measured. Each process of a job is a command of `sidebyside`
(`sidebyside ddp`, one rank under torchrun; `sidebyside multiworker`),
which a user may start by hand on several machines (docs/distributed.md).

A job module defines `JOB`, an instance of a `Job` subclass. The bundled
ones are found by listing this folder (a module that defines no `JOB`, such
as shared.py, is the jobs' own helpers); others are plug-ins, the modules
named in the environment variable SIDEBYSIDE_JOBS (import paths,
comma-separated), which every process of a run inherits.

Jobs use the harness only through its public interfaces: they import the
layers below them, never the runner, the worker or the CLI. What process 0
needs from those to write its results.json (the worker's entry, the
runner's judging and writing) its caller passes in as an `Output`.
"""

import importlib

from sidebyside import plugins

from sidebyside.workloads import CommandError  # noqa: F401  (bad use of a job's command: one line, exit 2)

PLUGINS = "SIDEBYSIDE_JOBS"


class Job:
    """One kind of data-parallel job: the implementations it runs, how it launches them, its commands."""

    name = ""  # the job's own name
    implementations = ()  # the implementations it runs (their registry names)
    launchers = ()  # the registry's `launcher` values it serves

    def commands(self):
        """Subcommands of `sidebyside` this job brings: each is one process of the job.

        {name: (help, add_arguments(parser), run(args, output) -> exit code)}; `output` is an
        Output; run raises CommandError for bad use.
        """
        return {}

    def measure(self, spec, task, entry, threads):
        """In the worker: run the job for one task with `threads` in all and fill `entry` with process 0's entry.

        Raises an exception with a one-line message where the job failed.
        """
        raise NotImplementedError


class Output:
    """What process 0 of a job writes its results.json with; the caller's (the CLI passes sidebyside.document.JobOutput)."""

    def check(self, config, out_dir):
        """Raise, in one line, if `out_dir` cannot take results.json: before anything long starts."""
        raise NotImplementedError

    def entry(self, spec, task, threads):
        """A new entry of this implementation and task, as the worker starts one."""
        raise NotImplementedError

    def write(self, config, out_dir, task, entry, machine_record):
        """Judge `entry` as `sidebyside run` judges and write it, alone, to OUT/results.json; returns it."""
        raise NotImplementedError


_registered = {}
_discovered = False


def register(job):
    """Add a job to this process's list; returns it."""
    if not isinstance(job, Job) or not job.name:
        raise TypeError(f"a job must be a named Job, got {job!r}")
    _registered[job.name] = job
    return job


def discover():
    """Import the bundled job modules and the plug-ins named in SIDEBYSIDE_JOBS, once."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    named = plugins.named(PLUGINS)
    for module_name in plugins.listed(__name__, __path__) + named:
        module = importlib.import_module(module_name)
        if hasattr(module, "JOB") or module_name in named:
            register(module.JOB)


def every():
    """Every job, in the order they were found."""
    discover()
    return list(_registered.values())


def serving(launcher):
    """The job that serves this registry `launcher`: KeyError, naming the known ones, if there is none."""
    for job in every():
        if launcher in job.launchers:
            return job
    known = ", ".join(launcher for job in every() for launcher in job.launchers)
    raise KeyError(f"no data-parallel job serves the launcher {launcher!r}; known: {known}")
