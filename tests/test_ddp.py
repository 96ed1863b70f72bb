"""torch_ddp: data parallelism that leaves the trajectory alone, and ranks that always go away.

The two-rank default is checked with every other implementation (agreement,
determinism, interface, gradients, the CUDA error). Here: three ranks on an
uneven split, where averaging the gradients (DDP's default) and multiplying
back by the number of ranks would not be exact; replicas that stay
bit-identical; the communication cost it records; bad input; and shutdown
in every way a run can end: close(), garbage collection, a rank that dies,
Ctrl-C in the parent, and the parent killed outright.
"""

import gc
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import implementations
from implementations.problem import Problem, make_data
from tests.conftest import ROOT, oracle_run, skip_if_missing

pytestmark = pytest.mark.slow  # every test here starts processes that import torch

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
from implementations.problem import Problem, make_data
from implementations.torch_ddp import Net
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
