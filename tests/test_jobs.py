"""The data-parallel jobs are plug-ins: found by listing sidebyside/jobs/ and SIDEBYSIDE_JOBS, each serving its launchers.

In-process and quick; the jobs themselves run in tests/test_ddp.py and tests/test_multiworker.py.
"""

import os
import subprocess
import sys

from sidebyside import jobs, workloads
from sidebyside.cli import build_parser
from tests.conftest import ROOT


def test_every_launcher_of_the_registries_has_the_job_that_runs_it():
    launched = {}
    for workload in workloads.every():
        for name in workload.names():
            spec = workload.spec(name)
            if spec.launcher:
                launched[name] = spec.launcher
    assert {"torch_ddp", "tf_multiworker", "jax_distributed"} <= set(launched)
    for name, launcher in launched.items():
        job = jobs.serving(launcher)
        assert name in job.implementations, (name, job.name)


def test_each_job_brings_its_commands_to_the_cli():
    parser = build_parser()
    for job in jobs.every():
        assert set(job.commands()) <= set(parser.job_commands), job.name
    assert {"ddp", "multiworker"} <= set(parser.job_commands)


def test_an_unknown_launcher_is_refused_naming_the_known_ones():
    try:
        jobs.serving("carrier-pigeon")
    except KeyError as error:
        assert "torchrun" in str(error) and "tf_config" in str(error)
    else:
        raise AssertionError("no KeyError")


PLUGIN = '''
from sidebyside.jobs import Job


class Pigeons(Job):
    name = "pigeons"
    implementations = ("pigeon_ddp",)
    launchers = ("carrier-pigeon",)


JOB = Pigeons()
'''


def test_a_job_named_in_sidebyside_jobs_joins_the_listed_ones(tmp_path):
    (tmp_path / "pigeon_job.py").write_text(PLUGIN)
    code = "from sidebyside import jobs; print(jobs.serving('carrier-pigeon').name, sorted(job.name for job in jobs.every()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
                                 jobs.PLUGINS: "pigeon_job"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" ", 1) == ["pigeons", "['multiworker', 'pigeons', 'torchrun']\n"]


def test_a_job_process_whose_launcher_is_gone_exits_before_importing_anything():
    """`python -m sidebyside.processes MODULE`: the launcher's pid checked first, then MODULE runs as `-m` would."""
    from sidebyside.processes import LAUNCHER

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = finished.stdout.strip()  # a pid whose process has exited
    command = [sys.executable, "-X", "importtime", "-m", "sidebyside.processes", "json.tool"]
    alive = subprocess.run(command, input='{"a": 1}', capture_output=True, text=True, timeout=60,
                           env={**os.environ, LAUNCHER: str(os.getpid())})
    assert alive.returncode == 0 and '"a": 1' in alive.stdout
    orphan = subprocess.run(command, input='{"a": 1}', capture_output=True, text=True, timeout=60,
                            env={**os.environ, LAUNCHER: gone})
    assert orphan.returncode == 1 and orphan.stdout == ""
    imported = [line.rsplit("|", 1)[-1].strip() for line in orphan.stderr.splitlines() if "|" in line]
    assert "ctypes" in imported and "json" not in imported  # it asked prctl, then left before MODULE's imports
