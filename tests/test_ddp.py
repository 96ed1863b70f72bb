"""torch_ddp: data parallelism that leaves the trajectory alone, and ranks that always go away.

The two-rank default is checked with every other implementation (agreement,
determinism, interface, gradients, the CUDA error). Here: three ranks on an
uneven split, where averaging the gradients (DDP's default) and multiplying
back by the number of ranks would not be exact; replicas that stay
bit-identical; the communication cost it records; bad input; and shutdown
in every way a run can end: close(), garbage collection, a rank that dies,
Ctrl-C in the parent, and the parent killed outright.

Then torchrun: `sidebyside ddp` refuses to start outside it; `sidebyside run
--impl torch_ddp` goes through it (agreement in both dtypes, threads and
CPUs per rank, communication, memory over ranks, a killed rank); two
torchrun agents as two nodes on loopback (the issue's done-when check); and
a rank that stops answering, which meets the process group's timeout.
"""

import gc
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from sidebyside import implementations
from sidebyside.implementations.two_layer.problem import Problem, make_data
from sidebyside.jobs.torchrun import TIMEOUT_S, failure
from tests.conftest import ROOT, all_succeed, oracle_run, skip_if_missing

pytestmark = pytest.mark.e2e  # every test here starts processes that import torch

SMALL = Problem(N=8, D_in=20, H=6, D_out=3, learning_rate=1e-3)


@pytest.fixture(scope="module")
def Net():
    skip_if_missing("torch_ddp")
    import torch.distributed

    if not torch.distributed.is_available():
        pytest.skip("n/a: this torch was built without torch.distributed")
    return implementations.load("torch_ddp")


def alive(pids):
    """Which of these processes still run (a zombie has exited)."""
    import psutil

    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


def wait_until_gone(pids, timeout=20):
    deadline = time.monotonic() + timeout
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


@pytest.fixture(scope="module")
def three_ranks(Net):
    """The tutorial in float64 on three ranks: 64 rows split 22, 21, 21."""
    x, y, w1, w2 = make_data(Problem(dtype="float64"))
    net = Net(w1, w2, Problem.learning_rate, dtype="float64", ranks=3)
    try:
        x, y = net.prepare(x, y)
        first = net.step(x, y)
        losses = np.concatenate([[first], net.train(x, y, Problem.steps - 1)])
        yield net, losses
    finally:
        net.close()


def test_uneven_split_on_three_ranks_agrees_with_the_oracle(three_ranks):
    net, losses = three_ranks
    assert net.info()["rows_per_rank"] == "22,21,21"
    reference, w1_reference, w2_reference = oracle_run()
    assert np.max(np.abs(losses - reference) / reference) < 1e-8
    w1, w2 = net.params()
    assert np.max(np.abs(w1 - w1_reference)) / np.max(np.abs(w1_reference)) < 1e-10
    assert np.max(np.abs(w2 - w2_reference)) / np.max(np.abs(w2_reference)) < 1e-10


def test_replicas_stay_bit_identical(three_ranks):
    net, _ = three_ranks
    first, *others = net.ask_all("params")
    for other in others:
        assert all(np.array_equal(a, b) for a, b in zip(first, other))


def test_communication_cost_is_recorded(three_ranks):
    net, _ = three_ranks
    info = net.info()
    assert (info["ranks"], info["backend"], info["threads_per_rank"]) == (3, "gloo", 1)
    assert 0 < info["communication_s_per_step"] < info["rank_step_s"]
    assert info["compute_s_per_step"] == pytest.approx(info["rank_step_s"] - info["communication_s_per_step"])
    assert info["startup_s"] > 0
    assert json.dumps(info)  # JSON scalars, as results.json needs


def test_bad_options_are_refused_before_any_process_starts(Net):
    _, _, w1, w2 = make_data(SMALL)
    for ranks in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="ranks must be a positive integer"):
            Net(w1, w2, 1e-3, ranks=ranks)


def test_close_ends_the_ranks_and_the_net(Net):
    x, y, w1, w2 = make_data(SMALL)
    net = Net(w1, w2, SMALL.learning_rate, ranks=2)
    pids = [process.pid for process in net.processes]
    assert len(alive(pids)) == 2
    with pytest.raises(ValueError, match="1 rows cannot be split over 2 ranks"):
        net.prepare(x[:1], y[:1])
    assert np.isfinite(net.step(x, y)), "a refused batch leaves the net usable"
    net.close()
    assert alive(pids) == [], "close() waits for the ranks"
    net.close()  # a second close does nothing
    with pytest.raises(RuntimeError, match="closed"):
        net.step(x, y)


def test_garbage_collection_ends_the_ranks(Net):
    x, y, w1, w2 = make_data(SMALL)
    net = Net(w1, w2, SMALL.learning_rate)
    net.step(x, y)
    pids = [process.pid for process in net.processes]
    del net
    gc.collect()
    assert wait_until_gone(pids) == []


def test_a_rank_that_dies_is_an_error_not_a_hang(Net):
    x, y, w1, w2 = make_data(SMALL)
    net = Net(w1, w2, SMALL.learning_rate)
    pids = [process.pid for process in net.processes]
    net.processes[1].kill()
    net.processes[1].wait()
    with pytest.raises(RuntimeError, match="rank 1"):
        net.train(x, y, 5)
    assert wait_until_gone(pids) == []


PARENT = """
import json
from sidebyside.implementations.two_layer.problem import Problem, make_data
from sidebyside.implementations.two_layer.torch_ddp import Net
x, y, w1, w2 = make_data(Problem(N=8, D_in=20, H=6, D_out=3))
net = Net(w1, w2, 1e-3)
print(json.dumps([process.pid for process in net.processes]), flush=True)
while True:
    net.train(x, y, 50)
"""


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_the_ranks_end_with_their_parent(Net, signal_number):
    """Ctrl-C: the parent closes the ranks on its way out. Killed: they see the pipe close."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        pids = json.loads(parent.stdout.readline())
        time.sleep(0.5)  # well inside the training loop
        parent.send_signal(signal_number)
        parent.wait(timeout=30)
        assert wait_until_gone(pids) == []
    finally:
        parent.kill()
        parent.wait()


# torchrun: `sidebyside ddp` is a rank torchrun starts, and `sidebyside run`
# launches torch_ddp through torchrun. Checked by their effects: the results
# file rank 0 writes (validated as any result file), the losses against the
# oracle, the processes that exist and the ones left afterwards.

from sidebyside.results import load_results  # noqa: E402
from tests.test_cli import one_line_error, sidebyside  # noqa: E402
from tests.test_run_processes import descendants, start_long_run, still_running  # noqa: E402

RUN = ["run", "--impl", "torch_ddp", "--workload", "two_layer", "--device", "cpu", "--no-sweep", "--no-report",
       "--threads", "2", "--steps", "100", "--rounds", "1"]


def the_entries(out):
    return {entry["dtype"]: entry for entry in load_results(out / "results.json")["results"]}


def relative_difference(losses, reference):
    losses, reference = np.asarray(losses, dtype=np.float64), np.asarray(reference[:len(losses)])
    return float(np.max(np.abs(losses - reference) / reference))


def test_sidebyside_ddp_outside_torchrun_is_one_line():
    line = one_line_error(sidebyside("ddp", "--out", "unused"))
    assert line.startswith("sidebyside: error: sidebyside ddp is a rank started by torchrun"), line


@pytest.fixture(scope="module")
def run_through_torchrun(Net, tmp_path_factory):
    """`sidebyside run --impl torch_ddp` in float32 on 2 ranks, and in float64 on 1 rank.

    One dtype each: float64 on 2 ranks is the two nodes' job (`two_nodes`), through the same `sidebyside ddp`.
    """
    two, one = tmp_path_factory.mktemp("two-ranks"), tmp_path_factory.mktemp("one-rank")
    scratch = tmp_path_factory.mktemp("tmp")  # the runs' temporary folder: torchrun and its ranks leave nothing
    result = sidebyside(*RUN, "--ranks", "2", "--dtype", "float32", "--out", str(two), env={"TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr
    result = sidebyside(*RUN, "--ranks", "1", "--dtype", "float64", "--out", str(one), env={"TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr
    assert not list(scratch.iterdir())  # torchrun's torchelastic_* folders went with the job's own
    return the_entries(two), the_entries(one), one


def test_run_goes_through_torchrun_and_agrees_in_both_dtypes(run_through_torchrun):
    for entry, ranks in ((run_through_torchrun[0]["float32"], 2), (run_through_torchrun[1]["float64"], 1)):
        assert entry["status"] == "ok" and entry["agrees"] is True, entry["reason"]
        assert entry["extra"]["launcher"] == "torchrun"
        assert (entry["extra"]["world_size"], entry["extra"]["nodes"], entry["extra"]["processes_per_node"]) == (
            ranks, 1, ranks)
        assert len(entry["losses"]) == 100 and entry["step_time"]["rounds"] > 50
    reference, _, _ = oracle_run(100)
    assert relative_difference(run_through_torchrun[1]["float64"]["losses"], reference) < 1e-8


def test_threads_per_rank_are_the_run_threads_split_on_cpus_of_their_own(run_through_torchrun):
    for entry in [*run_through_torchrun[0].values(), *run_through_torchrun[1].values()]:
        ranks = entry["extra"]["world_size"]
        assert entry["threads"] == 2 and entry["extra"]["threads_per_process"] == 2 // ranks
        cpus = [set(map(int, share.split(","))) for share in entry["extra"]["threads_cpus"].split(";")]
        assert [len(share) for share in cpus] == [2 // ranks] * ranks
        assert len(set().union(*cpus)) == 2 and set().union(*cpus) <= set(os.sched_getaffinity(0))


def test_communication_is_measured_and_memory_counted_over_ranks(run_through_torchrun):
    two, one = run_through_torchrun[0]["float32"], run_through_torchrun[1]["float64"]
    for entry in (two, one):
        extra = entry["extra"]
        assert 0 < extra["communication_s_per_step"] < extra["rank_step_s"]
    # Memory is what the case adds in each rank above its baseline after imports and the warm-up, summed.
    # Every rank draws the whole problem (its arrays: Problem.bytes_needed) before keeping its rows; a whole
    # process with torch loaded is hundreds of MB, and torch._dynamo, which torch's optimizers import on
    # their first step unless a warm-up did, about 80.
    needed = Problem(N=64, D_in=1000, H=100, D_out=10).bytes_needed()
    for entry in (two, one):
        per_process = [int(value) for value in entry["extra"]["memory_per_process"].split(",")]
        assert len(per_process) == entry["extra"]["world_size"] and sum(per_process) == entry["peak_memory_bytes"]
        assert all(needed / 2 < value < 60e6 for value in per_process), (per_process, needed)


def rank_processes(parent):
    """The ranks among a process's descendants, by RANK: torchrun gives each its environment."""
    import psutil

    ranks = {}
    for process in parent.children(recursive=True):
        try:
            environment = process.environ()
        except psutil.Error:
            continue
        if "TORCHELASTIC_RUN_ID" in environment and "RANK" in environment:
            ranks[int(environment["RANK"])] = process
    return ranks


def test_killing_a_rank_mid_run_ends_the_job_with_one_line(Net, tmp_path):
    import psutil

    out = tmp_path / "killed-rank"
    process = start_long_run(out, ["torch_ddp"], ("--steps", "200000"))
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + 180
    while len(rank_processes(parent)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    ranks = rank_processes(parent)
    assert len(ranks) == 2, "torchrun started two ranks"
    time.sleep(3)  # the ranks have met and train
    spawned = descendants(parent)
    ranks[1].kill()
    killed = time.monotonic()
    _, stderr = process.communicate(timeout=TIMEOUT_S + 60)
    assert time.monotonic() - killed < TIMEOUT_S, "the job ended within the process group's timeout"
    assert process.returncode == 0, stderr
    (entry,) = entries_of(out)
    assert entry["status"] == "failed"
    assert "\n" not in entry["reason"] and "torchrun: rank 1 was killed by SIGKILL" in entry["reason"], entry["reason"]
    deadline = time.monotonic() + 10
    while still_running(spawned) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert still_running(spawned) == []


def entries_of(out):
    return load_results(out / "results.json")["results"]


def free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun_node(node_rank, port, out, *arguments):
    """One torchrun agent of a two-node job, as a user starts it on each machine."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
               "--node-rank", str(node_rank), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
               "--rdzv-id", f"sidebyside-test-{port}",
               "-m", "sidebyside.cli", "ddp", "--out", str(out), "--threads-per-process", "1", *arguments]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def two_nodes(Net, tmp_path_factory):
    """Two torchrun agents as two nodes on loopback; the folders they were given."""
    port = free_port()
    folder = tmp_path_factory.mktemp("two-nodes")
    outs = [folder / "node0", folder / "node1"]
    agents = [torchrun_node(node, port, outs[node], "--dtype", "float64", "--steps", "100") for node in (0, 1)]
    all_succeed(agents, timeout=240)
    return outs


def test_two_torchrun_nodes_on_loopback_agree_with_the_reference(two_nodes):
    """The done-when check: two agents as two nodes; rank 0's results.json holds the one entry."""
    written = [out for out in two_nodes if (out / "results.json").exists()]
    assert len(written) == 1, "rank 0 writes, the other rank writes nothing"
    (entry,) = entries_of(written[0])
    assert entry["implementation"] == "torch_ddp" and entry["status"] == "ok" and entry["agrees"] is True
    assert (entry["extra"]["world_size"], entry["extra"]["nodes"]) == (2, 2)
    assert entry["extra"]["communication_s_per_step"] > 0
    reference, _, _ = oracle_run(100)
    assert relative_difference(entry["losses"], reference) < 1e-8


def test_a_cluster_run_merges_with_a_single_machine_run_in_one_report(two_nodes, run_through_torchrun, tmp_path):
    """`sidebyside report a/results.json b/results.json`: both files' torch_ddp rows (float64) in one report."""
    (cluster,) = [out / "results.json" for out in two_nodes if (out / "results.json").exists()]
    single = run_through_torchrun[2] / "results.json"
    result = sidebyside("report", str(single), str(cluster), "--out", str(tmp_path / "merged"), "--format", "markdown")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "merged" / "report.md").exists()
    side_by_side = result.stdout.split("### Median step time on each machine", 1)[1].split("###", 1)[0]
    rows = [line for line in side_by_side.splitlines() if "torch\\_ddp" in line and "float64" in line]
    assert len(rows) == 1 and "not in this file" not in rows[0], side_by_side
    assert len(re.findall(r"\d (?:ms|µs|s)\b", rows[0])) == 2, "one step time from each file, in one row"


def test_a_rank_that_stops_answering_ends_the_job_within_the_timeout(Net, tmp_path):
    """A frozen rank (SIGSTOP: its sockets stay open, as a machine that vanished) meets the process group's timeout."""
    import psutil

    port = free_port()
    agents = [torchrun_node(node, port, tmp_path / f"node{node}", "--steps", "1000000", "--timeout", "5")
              for node in (0, 1)]
    try:
        deadline = time.monotonic() + 180
        ranks = {}
        while len(ranks) < 2 and time.monotonic() < deadline:
            ranks = {rank: process for agent in agents for rank, process in rank_processes(psutil.Process(agent.pid)).items()}
            time.sleep(0.2)
        assert len(ranks) == 2
        time.sleep(3)  # training
        ranks[1].suspend()
        stopped = time.monotonic()
        rank_0_agent = next(agent for agent in agents if ranks[0].pid in descendants(psutil.Process(agent.pid)))
        _, stderr = rank_0_agent.communicate(timeout=60)
        assert time.monotonic() - stopped < 30
        assert rank_0_agent.returncode != 0
        errors = [line for line in stderr.splitlines() if line.startswith("sidebyside: error: torch_ddp rank 0: ")]
        assert len(errors) == 1, stderr
        # gloo's "Timed out waiting ... for recv", or the store's "wait timeout" where
        # the frozen rank had not yet connected: the process group's timeout either way.
        assert re.search(r"timed out|wait timeout", errors[0], re.I), errors[0]
    finally:
        for agent in agents:
            for process in descendants(psutil.Process(agent.pid)) if agent.poll() is None else []:
                try:
                    psutil.Process(process).kill()
                except psutil.Error:
                    pass
            agent.kill()
            agent.wait()


KILLED_AFTER_PEER = """sidebyside: error: torch_ddp rank 0: RuntimeError: [pair.cc:537] Read error [127.0.0.1]:8898: Connection reset by peer
============================================================
sidebyside.cli FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-02_06:30:01
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 4243)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 4243
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-02_06:30:01
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 4242)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html
============================================================
"""


def test_a_rank_killed_from_outside_is_named_even_when_its_peer_failed_first():
    reason = failure(KILLED_AFTER_PEER.replace("exitcode  : -9 (pid: 4243)", "exitcode  : -9 (pid: 4243) (SIGKILL)"), 1)
    assert reason.startswith("torchrun: rank 1 was killed by SIGKILL") and "Connection reset by peer" in reason
    # Without a signal anywhere, torchrun's own root cause stands.
    assert failure(KILLED_AFTER_PEER, 1).startswith("torchrun: rank 0 exited with code 1: RuntimeError")


BOTH_KILLED = """============================================================
sidebyside.cli FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-02_21:00:43
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : -9 (pid: 3920)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 3920
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-02_21:00:42
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 3921)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 3921
============================================================
"""


def test_of_two_killed_ranks_the_one_killed_first_is_named():
    # A survivor blocked in a collective outlives torchrun's SIGTERM and is SIGKILLed in turn;
    # the summary lists it first, but the root cause is the rank killed from outside.
    assert failure(BOTH_KILLED, 1) == "torchrun: rank 1 was killed by SIGKILL"
