"""tf_multiworker and jax_distributed: data-parallel over processes, launched by the harness, judged like the rest.

`sidebyside run` starts each as a job of two processes on this machine
(TF_CONFIG for TensorFlow's MultiWorkerMirroredStrategy, a coordinator
address for jax.distributed); each process has its own CPUs, and the
exchange is measured. Two processes started by hand as two nodes on
loopback (`sidebyside multiworker`, as on two machines) write one entry on
process 0. Process 0's entry must agree with the float64 reference in both
dtypes: float32 from the run, float64 from the two nodes (one run each,
shared by the tests), checked against the independent oracle too. A
process started without its job's description refuses in one line.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sidebyside.implementations.two_layer.problem import Problem
from sidebyside.jobs.multiworker import free_ports
from sidebyside.results import load_results
from tests.conftest import ROOT, all_succeed, oracle_run, skip_if_missing
from tests.test_cli import sidebyside

pytestmark = pytest.mark.e2e  # each job starts processes that import TensorFlow or JAX

JOBS = ("tf_multiworker", "jax_distributed")


@pytest.fixture(scope="module")
def entries(tmp_path_factory):
    for name in JOBS:
        skip_if_missing(name)
    out = tmp_path_factory.mktemp("multiworker")
    # float32 only: the float64 job is the two nodes' (`nodes`), the same job started as on two machines.
    result = sidebyside("run", "--impl", "tf_multiworker", "--impl", "jax_distributed", "--workload", "two_layer",
                        "--device", "cpu", "--no-sweep", "--no-report", "--threads", "2", "--steps", "100",
                        "--dtype", "float32", "--rounds", "1", "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stderr
    return {(entry["implementation"], entry["dtype"]): entry for entry in load_results(out / "results.json")["results"]}


@pytest.mark.parametrize("name", JOBS)
def test_the_job_agrees_with_the_reference_in_both_dtypes(entries, nodes, name):
    for entry in (entries[name, "float32"], nodes[name]):
        assert entry["status"] == "ok" and entry["agrees"] is True, entry["reason"]
        assert len(entry["losses"]) == 100 and entry["step_time"]["rounds"] > 50
    assert nodes[name]["dtype"] == "float64"
    reference, _, _ = oracle_run(100)
    losses = np.asarray(nodes[name]["losses"])
    assert np.max(np.abs(losses - reference) / reference) < 1e-8


@pytest.mark.parametrize("name", JOBS)
def test_two_processes_on_cpus_of_their_own_and_the_exchange_measured(entries, name):
    extra = entries[name, "float32"]["extra"]
    assert (extra["world_size"], extra["nodes"], extra["processes_per_node"], extra["threads_per_process"]) == (2, 1, 2, 1)
    assert extra["launcher"] == {"tf_multiworker": "TF_CONFIG", "jax_distributed": "jax.distributed"}[name]
    cpus = [set(share.split(",")) for share in extra["threads_cpus"].split(";")]
    assert len(cpus) == 2 and all(len(share) == 1 for share in cpus) and not cpus[0] & cpus[1]
    assert extra["communication_s_per_step"] > 0
    # What the case adds in each process above its baseline after imports, summed: at least part of the
    # whole problem each process draws (Problem.bytes_needed), never a whole process with its framework.
    needed = Problem(N=64, D_in=1000, H=100, D_out=10).bytes_needed()
    per_process = [int(value) for value in extra["memory_per_process"].split(",")]
    assert len(per_process) == 2 and sum(per_process) == entries[name, "float32"]["peak_memory_bytes"]
    assert all(needed / 2 < value < 120e6 for value in per_process), (per_process, needed)


@pytest.mark.parametrize("arguments, expected", [
    (["tf_multiworker"], "tf_multiworker needs TF_CONFIG"),
    (["jax_distributed"], "jax_distributed needs --coordinator HOST:PORT"),
])
def test_a_process_without_its_job_is_refused_in_one_line(arguments, expected, tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    result = subprocess.run([sys.executable, "-m", "sidebyside.cli", "multiworker", *arguments, "--out", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, env={**environment, "PYTHONPATH": str(ROOT)},
                            timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sidebyside: error: {expected}"), result.stderr


def node_commands(name, out):
    """Two processes as two machines start them (README, "Running on several machines"), on 127.0.0.1."""
    common = [sys.executable, "-m", "sidebyside.cli", "multiworker", name, "--dtype", "float64", "--steps", "100",
              "--threads-per-process", "1"]
    if name == "tf_multiworker":
        workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
        return [([*common, "--out", str(out / f"node{index}")],
                 {"TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})})
                for index in (0, 1)]
    (port,) = free_ports(1)
    return [([*common, "--out", str(out / f"node{index}"), "--coordinator", f"127.0.0.1:{port}", "--processes", "2",
              "--process-id", str(index)], {}) for index in (0, 1)]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """Each job's two processes started as two nodes on loopback, float64: {name: process 0's entry}."""
    for name in JOBS:
        skip_if_missing(name)
    written = {}
    for name in JOBS:
        folder = tmp_path_factory.mktemp(f"{name}-nodes")
        processes = [subprocess.Popen(command, cwd=ROOT, env={**os.environ, **extra, "PYTHONPATH": str(ROOT)},
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for command, extra in node_commands(name, folder)]
        all_succeed(processes, timeout=300)
        assert not (folder / "node1" / "results.json").exists(), "only process 0 writes"
        (written[name],) = load_results(folder / "node0" / "results.json")["results"]
    return written


@pytest.mark.parametrize("name", JOBS)
def test_two_nodes_on_loopback_write_one_entry_on_process_0(nodes, name):
    entry = nodes[name]
    assert entry["implementation"] == name and entry["status"] == "ok" and entry["agrees"] is True
    assert (entry["extra"]["world_size"], entry["extra"]["nodes"]) == (2, 2)
