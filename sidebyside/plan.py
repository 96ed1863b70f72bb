"""What a configuration expands to: the runs and their tasks, each case's key, and what each round still owes.

`plan` gives one run per workload, implementation and environment, with
its tasks (the workload's `tasks`) and, where it cannot run here, the
reason it is skipped. A case is known by its key (`entry_key` of an entry,
`task_key` of a task not yet run), so a resumed run runs only what its
document lacks (`left_to_run`) and each later round times only the runs
still short of it (`timing_round`).

The rule: nothing here starts a process, writes a file or reads a clock;
given the same configuration and document, the same plan.
"""

from sidebyside import ranking, workloads

KEY_FIELDS = ("workload", "implementation", "device", "dtype", "environment")
TIMED_STATUSES = ("ok", "disagrees")  # entries whose step time later rounds refine


def entry_key(entry):
    return tuple(entry.get(field) for field in KEY_FIELDS) + tuple(sorted(entry["size"].items()))


def spec_of(run):
    return workloads.get(run["workload"]).spec(run["implementation"])


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


def fail_unbuilt(runs, unbuilt):
    """The runs, those of an environment that could not be built (name -> reason) failing with the reason."""
    for item in runs:  # the rest run
        if item.get("environment") in unbuilt:
            item["skip"] = f"failed: {unbuilt[item['environment']]}"
    return runs


def task_key(run, task):
    """The same key as entry_key, for a task not yet run."""
    return ((task["workload"], run["implementation"], task["device"], task["dtype"], run.get("environment"))
            + tuple(sorted(task["size"].items())))


def left_to_run(runs, entries):
    """The runs with just the tasks that have no entry yet (`entries`: entry key -> entry)."""
    pending = []
    for item in runs:
        left = [task for task in item["tasks"] if task_key(item, task) not in entries]
        if left:
            pending.append({**item, "tasks": left})
    return pending


def retimed(item):
    """Whether later rounds time this run again: its workload's choice, never a slow starter's."""
    # Slow starters (seconds of compiling per fresh process) are timed in round 1 only.
    return workloads.get(item["workload"]).timed_rounds and not item.get("skip") and not spec_of(item).slow_start


def timing_round(runs, entries, number):
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


def progress_total(pending, runs, rounds):
    """The progress bar's length: every pending task once, and every retimed task once per later round."""
    return (sum(len(item["tasks"]) for item in pending)
            + (rounds - 1) * sum(len(item["tasks"]) for item in runs if retimed(item)))


def job_label(run):
    """"two_layer:numpy_manual", with "@environment" where the run has environments."""
    label = f"{run['workload']}:{run['implementation']}"
    return label + (f"@{run['environment']}" if run.get("environment") else "")


def described(item):
    """"two_layer numpy_manual", with " @ environment" where the run has one: the progress bar's words."""
    where = f" @ {item['environment']}" if item.get("environment") else ""
    return f"{item['workload']} {item['implementation']}{where}"


def shuffled(items, generator):
    items = list(items)
    generator.shuffle(items)
    return items
