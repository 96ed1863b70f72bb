"""The `sidebyside` command: list, run, report, compare, envs, schema, and the data-parallel jobs' processes (ddp, multiworker).

Every user error ends in one line on stderr and exit status 2; Ctrl-C during
a run saves what was measured and exits 130, SIGTERM the same with 143.
"""

import argparse
import datetime
import json
import os
import re
import signal
import sys
from pathlib import Path

from sidebyside import envs, implementations, noise, runner, settings
from sidebyside import jobs as known_jobs
from sidebyside import workloads as known_workloads
from sidebyside.config import DEVICE_CHOICES, RunConfig, positive_float, positive_int
from sidebyside.fairness import default_threads
from sidebyside.implementations import absent_modules, missing_entry, not_installed
from sidebyside.migrate import migrate
from sidebyside.results import SCHEMA_VERSION, ResultsError, json_schema_text, load_results
from sidebyside.document import JobOutput, RunError


class UsageError(Exception):
    """Bad arguments: reported in one line, exit status 2."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, a CI time-out, `docker stop`): stopped like Ctrl-C."""


def raise_terminated(signum, frame):
    raise Terminated()


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}")


def environment(text):
    """--env NAME=PYTHON -> (NAME, PYTHON): an interpreter of an environment where sidebyside is installed;
    --env NAME=REQUIREMENTS -> (NAME, REQUIREMENTS): an environment built from them (sidebyside/envs.py)."""
    name, equals, value = text.partition("=")
    if not equals or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=PYTHON or NAME=REQUIREMENTS (for example "
                                         f"base=../base/.venv/bin/python, or np2=\"numpy>=2\")")
    if not ENVIRONMENT_NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(f"{name!r} is not a usable environment name (letters, numbers, _ . + -)")
    if envs.is_interpreter(value):
        return name, os.path.expanduser(value.strip())
    try:
        envs.parse_requirements(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--env {name}: {error}") from None
    return name, value.strip()


def installed_version():
    from importlib import metadata

    try:
        return metadata.version("sidebyside")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def build_parser():
    parser = Parser(prog="sidebyside", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"sidebyside {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    commands.add_parser("list", help="every registered implementation and whether it can run here")

    run = commands.add_parser("run", help="measure and write results.json and the report")
    run.add_argument("--impl", action="append", metavar="NAME",
                     help="an implementation (repeatable; default: all but the slow starters)")
    run.add_argument("--all", action="store_true", dest="slow_starters",
                     help="also the slow starters (torch.compile variants, keras_jax_eager, the data-parallel jobs)")
    run.add_argument("--workload", action="append", choices=known_workloads.names(),
                     help="repeatable; default: all")
    run.add_argument("--device", choices=DEVICE_CHOICES, default="all",
                     help="all (default) means the CPU and, where present, the GPU")
    run.add_argument("--threads", type=positive_int, help="threads for every framework (default: all cores)")
    run.add_argument("--steps", type=positive_int, help="training steps (default 500)")
    run.add_argument("--dtype", choices=("float32", "float64"), help="default: both")
    run.add_argument("--ranks", type=positive_int,
                     help="the data-parallel jobs (torch_ddp, tf_multiworker, jax_distributed): processes (default 2), "
                          "threads // ranks each")
    run.add_argument("--rounds", type=positive_int, help="timing rounds, each in fresh processes (default 5; 1 with --quick)")
    run.add_argument("--peak-budget", type=positive_float, metavar="SECONDS",
                     help="seconds of matrix products per device for the peak, at the start and the end (default 2; "
                          "0.5 with --quick)")
    run.add_argument("--env", action="append", type=environment, metavar="NAME=PYTHON|REQUIREMENTS",
                     help="run every case in this environment's interpreter too, rounds interleaved (repeatable); "
                          "requirements (\"numpy==1.26.*\") build a cached environment with uv")
    run.add_argument("--tf32", action="store_true", help="allow TF32 matmuls on GPUs (off by default)")
    run.add_argument("--quick", action="store_true", help="a smoke run: a few seconds per implementation")
    run.add_argument("--name", help="this machine's label in reports (default: host name)")
    run.add_argument("--out", metavar="DIR", help="output folder (default: reports/<timestamp>)")
    run.add_argument("--resume", metavar="DIR", help="finish an interrupted run in DIR")
    run.add_argument("--no-report", action="store_true", help="write results.json only")
    run.add_argument("--strict", action="store_true",
                     help="exit 1 if any case failed, diverged or disagrees (after writing everything)")

    declared = set()
    for workload in known_workloads.every():  # each workload's own options (its sizes, its learning rate, ...)
        for option in workload.options:
            if option not in declared:
                declared.add(option)
                option.add_to(run)
    parser.run_parser = run  # sidebyside/settings.py reads its options
    # Commands a workload brings.
    parser.workload_commands = {}
    for workload in known_workloads.every():
        for name, (text, add_arguments, run_command) in workload.commands().items():
            add_arguments(commands.add_parser(name, help=text))
            parser.workload_commands[name] = run_command
    # Commands a data-parallel job brings, each one process of it (torch_ddp's `ddp`, one rank under torchrun).
    parser.job_commands = {}
    for job in known_jobs.every():
        for name, (text, add_arguments, run_command) in job.commands().items():
            add_arguments(commands.add_parser(name, help=text))
            parser.job_commands[name] = run_command

    report = commands.add_parser("report", help="build the HTML report from result files")
    try:
        from sidebyside.report.cli import add_arguments
    except ImportError:  # the report builder is not installed
        report.add_argument("files", nargs="+")
    else:
        add_arguments(report)

    compare = commands.add_parser("compare", help="compare two result files case by case: change and significance")
    try:
        from sidebyside.report.compare_cli import add_arguments as add_compare_arguments
    except ImportError:  # the report package is not installed
        compare.add_argument("files", nargs=2)
    else:
        add_compare_arguments(compare)
    cached = commands.add_parser("envs", help="list the environments built for --env NAME=REQUIREMENTS, or remove them")
    cached.add_argument("action", nargs="?", choices=("list", "clear"), default="list",
                        help="list (default), or clear: remove them")
    cached.add_argument("match", nargs="?",
                        help="only those with this name (a glob), key, or part of their requirements")
    commands.add_parser("schema", help="print the JSON Schema of results.json (sidebyside/results.schema.json)")
    return parser


def validate_names(names, workloads):
    """Unknown implementation names, checked against every chosen workload."""
    known = []
    for workload in workloads:
        known += [name for name in known_workloads.get(workload).names() if name not in known]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise UsageError(f"unknown implementation {unknown[0]!r}; valid names: {', '.join(known)}")


def unique_environments(pairs):
    names = [name for name, _ in pairs]
    twice = [name for name in names if names.count(name) > 1]
    if twice:
        raise UsageError(f"--env {twice[0]} given twice; each environment needs a name of its own")
    return tuple(pairs)


def resolve_devices(choice):
    """"all" keeps the GPU rows even without a GPU: they read "n/a: no CUDA device"."""
    return ("cpu", "cuda") if choice == "all" else (choice,)


def config_from(args):
    workloads = tuple(dict.fromkeys(args.workload or known_workloads.names()))
    if args.impl:
        validate_names(args.impl, workloads)
    dtypes = (args.dtype,) if args.dtype else ("float32", "float64")
    steps = args.steps or (100 if args.quick else RunConfig.steps)
    threads = args.threads or default_threads()
    ranks = args.ranks or RunConfig.ranks
    if threads < ranks:
        ranked = [name for name in args.impl or () if name in implementations.REGISTRY
                  and "ranks" in implementations.spec(name).options]
        if ranked:
            raise UsageError(f"{ranked[0]} with {ranks} ranks needs at least {ranks} threads, got --threads {threads}")
    config = RunConfig(
        implementations=tuple(dict.fromkeys(args.impl or ())),
        slow_starters=args.slow_starters,
        settings_file=getattr(args, "settings_file", ""),
        workloads=workloads,
        devices=resolve_devices(args.device),
        dtypes=("float32",) if args.quick and not args.dtype else dtypes,
        steps=steps,
        threads=threads,
        tf32=args.tf32,
        ranks=ranks,
        rounds=args.rounds or (1 if args.quick else RunConfig.rounds),
        peak_budget_s=args.peak_budget or (0.5 if args.quick else RunConfig.peak_budget_s),
        quick=args.quick,
        name=args.name or "",
        environments=unique_environments(args.env or ()),
        options={key.partition(":")[2]: value for key, value in vars(args).items()
                 if key.startswith("option:") and value is not None},
    )
    config = known_workloads.settle(config)  # each workload's options as it will run them, defaults filled in
    for name in config.workloads:  # each workload refuses what it cannot run (sizes that do not fit, a bad data file)
        try:
            known_workloads.get(name).check(config)
        except ValueError as error:
            raise UsageError(str(error)) from None
    return config


def default_out_dir():
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("reports") / stamp


def point_latest(out_dir):
    """reports/latest -> the newest run folder, when it lives under reports/."""
    out_dir = Path(out_dir)
    if out_dir.parent.name != "reports":
        return
    latest = out_dir.parent / "latest"
    try:
        if latest.is_symlink() or latest.exists():
            latest.unlink()
        latest.symlink_to(out_dir.name, target_is_directory=True)
    except OSError:
        pass  # a file system without symbolic links: the folder is still printed


def command_list():
    """Every implementation, whether it runs here, and the extra that installs what is missing.

    Names are never cut: in a narrow terminal the other columns wrap.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text


    table = Table("workload", "implementation", "framework", "available here", "install")
    for column in table.columns[:3]:
        column.no_wrap = True
    for column in table.columns[3:]:
        column.overflow = "fold"  # wrapped, never cut with an ellipsis
    for workload in known_workloads.every():
        for name in workload.names():
            spec = workload.spec(name)
            absent = absent_modules(spec)
            reason = f"{', '.join(absent)} not installed" if absent else missing_entry(spec)
            install = f'pip install -e ".[{spec.extra}]"' if absent else ""
            # Text, not markup: the brackets of ".[torch]" are not a style tag.
            table.add_row(workload.name, name, spec.backend if spec.framework == "keras" else spec.framework,
                          Text("yes" if reason is None else f"no: {reason}"), Text(install))
    Console().print(table)
    return 0


def command_run(args):
    from sidebyside.summary import print_summary  # rich: not loaded for `--help` and the other commands

    if args.resume:
        out_dir = Path(args.resume)
        config, document = load_resume(out_dir)
    else:
        config = config_from(args)
        out_dir = Path(args.out) if args.out else default_out_dir()
        document = None
    try:
        run = runner.execute(config, out_dir, document, create_parents=not args.out)
    except KeyboardInterrupt as interruption:
        what = "terminated" if isinstance(interruption, Terminated) else "interrupted"
        print(f"{what}: results so far are in {out_dir / 'results.json'}; "
              f"finish with: sidebyside run --resume {out_dir}", file=sys.stderr)
        return 143 if isinstance(interruption, Terminated) else 130
    point_latest(out_dir)
    print_summary(run.document)
    results = run.document["results"]
    if results and all(entry["status"] == "n/a" for entry in results):
        reasons = sorted({entry["reason"] for entry in results})
        print(f"sidebyside: error: nothing could run here: {'; '.join(reasons)}", file=sys.stderr)
        return 2
    for line in run_warnings(run.document):  # what skewed the timings, once there are some
        print(f"warning: {line}", file=sys.stderr)
    print(f"results: {run.results_path}")
    if not args.no_report and report_missing():
        print(f"report: not built: {report_missing()}; results.json is complete, and "
              f"`sidebyside report {run.results_path} --out DIR` builds it once they are", file=sys.stderr)
    elif not args.no_report:
        from sidebyside.report.build import OutputError, build_report

        try:
            index = build_report([run.results_path], out_dir)
        except (ResultsError, OutputError) as error:
            print(f"sidebyside: error: {error}", file=sys.stderr)
            return 2
        print(f"report: {index}")
    return strict_status(results) if args.strict else 0


REPORT_LIBRARIES = ("pandas", "matplotlib", "jinja2", "pygments", "plotly", "scipy")  # import names = packages


def report_missing():
    """What the report and compare need and is not installed, as one phrase; "" when all is there."""
    missing = not_installed(REPORT_LIBRARIES)
    return f"{', '.join(missing)} not installed (pip install -e \".[report]\")" if missing else ""


def run_warnings(document):
    """What skewed this run's timings: a busy machine, a moving peak, a drifting canary (as the report says)."""
    lines = noise.warnings(document["machine"].get("conditions"))
    try:
        from sidebyside.report.findings import drift_warning, peak_spread_warning
    except ImportError:  # without the report extra; results.json keeps the spread (machine.peak_detail)
        return lines
    return lines + [line for line in (peak_spread_warning(document["machine"]), drift_warning(document)) if line]


BAD_STATUSES = ("failed", "diverged", "disagrees")


def strict_status(results):
    """--strict: one line on stderr per case that failed, diverged or disagrees; 1 if any did."""
    bad = [entry for entry in results if entry["status"] in BAD_STATUSES]
    for entry in bad:
        size = known_workloads.reading(entry["workload"]).size_label(entry["size"])
        where = f" @ {entry['environment']}" if entry.get("environment") else ""
        print(f"strict: {entry['workload']} {entry['implementation']}{where} {entry['device']} {entry['dtype']} {size}: "
              f"{entry['status']}: {entry.get('reason') or ''}".rstrip(": "), file=sys.stderr)
    return 1 if bad else 0


def with_settings(args, argv, run_parser):
    """Settings from sidebyside.toml or pyproject's [tool.sidebyside] where the command line gave none."""
    try:
        args, path = settings.apply(args, argv[argv.index("run") + 1:], run_parser)
    except settings.SettingsError as error:
        raise UsageError(str(error)) from None
    args.settings_file = str(path) if path else ""
    return args


def load_resume(out_dir):
    path = out_dir / "results.json"
    try:
        load_results(path)  # validates: untrusted until proven otherwise
    except ResultsError as error:
        raise UsageError(str(error)) from None

    document = migrate(json.loads(path.read_text()))  # a run resumed from an older schema goes on in the current one
    if document.get("schema") != SCHEMA_VERSION or "config" not in document:
        raise UsageError(f"{path}: not a results file from sidebyside run")
    return RunConfig.from_dict(document["config"]), document


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command == "run" and not args.resume:
            args = with_settings(args, argv, parser.run_parser)
        if args.command == "list":
            return command_list()
        if args.command == "envs":
            return envs.command(args)
        if args.command == "schema":
            sys.stdout.write(json_schema_text())
            return 0
        if args.command == "run":
            return command_run(args)
        if args.command in parser.workload_commands:
            try:
                return parser.workload_commands[args.command](args)
            except known_workloads.CommandError as error:
                raise UsageError(str(error)) from None
        if args.command in parser.job_commands:  # process 0 writes its results.json as the runner does
            try:
                return parser.job_commands[args.command](args, JobOutput())
            except known_jobs.CommandError as error:
                raise UsageError(str(error)) from None
        if report_missing():
            raise UsageError(f"sidebyside {args.command} needs the report's libraries: {report_missing()}")
        if args.command == "compare":
            from sidebyside.report.compare_cli import run as compare

            return compare(args)
        from sidebyside.report.cli import run as report

        return report(args)
    except (UsageError, RunError) as error:
        print(f"sidebyside: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interruption:
        print("terminated" if isinstance(interruption, Terminated) else "interrupted", file=sys.stderr)
        return 143 if isinstance(interruption, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
