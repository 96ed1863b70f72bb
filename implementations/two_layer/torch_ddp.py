"""PyTorch DistributedDataParallel: the torch_nn net trained data-parallel.

Data parallelism splits the batch, not the model. Each rank is a separate
process holding a full replica of the net and a slice of the batch's rows;
it runs the forward and backward pass on its rows only, and then the ranks
all-reduce their gradients, so every rank applies the same update and the
replicas never drift apart. `torch.distributed` does the exchange: with the
gloo backend over TCP between CPU processes, with NCCL between GPUs.

`sidebyside run` launches torch_ddp the way users do, through torchrun
(`sidebyside/jobs/torchrun.py` starts `sidebyside ddp`, which it also defines,
once per rank), and that is what its results measure, on one machine or
several. This Net is the in-process interface to the same ranks, for the
tests and the pytest-benchmark suite, which drive a net step by step: it is
a launcher like torchrun, starting one process per rank
(`implementations/two_layer/ddp_rank.py`, which holds the training step that
`sidebyside ddp` trains too), holding the rendezvous store they meet at,
sending each its rows, and driving them step by step through pipes. The
loss of the whole batch is the sum of the ranks' losses, added here.

The loss is a sum over rows, so the gradient of the batch is the sum of the
ranks' gradients. DistributedDataParallel averages instead (it divides by
the number of ranks, right for a mean loss), so the ranks install a comm
hook that sums; with it, the trajectory is the single-process one up to
summation order. That hook also times the all-reduce: `info()` reports the
communication per step next to the whole step, as measured inside the ranks.
The parent's round trip over the pipes (tens of microseconds) is part of
the step time the harness measures, and is a cost of driving the ranks from
one process that a real torchrun job would not pay.

The ranks live until `close()` is called; the harness calls it, and a net
that is garbage-collected or still open at exit closes itself. POSIX only:
each rank inherits its end of the pipe as a file descriptor.
"""

import os
import subprocess
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing import Pipe

import numpy as np
import torch

from sidebyside import implementations
from sidebyside.implementations import FrameworkMissing
from sidebyside.implementations.two_layer.problem import DeviceUnavailable, demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "torch_ddp", "order": 120, "framework": "torch", "requires": ("torch",), "extra": "torch",
     "options": {"ranks": 2}, "slow_start": True, "launcher": "torchrun", "promise": {"compiled": False}},
]

STARTUP_TIMEOUT_S = 120  # launching the ranks: a fresh interpreter each, importing torch
CLOSE_TIMEOUT_S = 10  # a rank that has not exited by then is killed


@dataclass(frozen=True, eq=False)
class Shards:
    """Half of a prepared batch (x or y): already split across the ranks.

    The ranks keep one batch at a time. A Shards remembers the whole array
    (no copy when it already had our dtype), so a batch can be sent again
    if another batch was loaded since.
    """

    array: np.ndarray
    batch: int  # which load this was

    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32", ranks=2, threads_per_rank=1):
        for name, value in (("ranks", ranks), ("threads_per_rank", threads_per_rank)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not torch.distributed.is_available():
            raise FrameworkMissing(f"torch {torch.__version__} was built without torch.distributed")
        if device == "cuda" and torch.cuda.device_count() < ranks:
            # NCCL needs a GPU per rank: two ranks cannot share one GPU.
            raise DeviceUnavailable(f"{ranks} ranks need {ranks} CUDA devices, found {torch.cuda.device_count()}")
        if os.name != "posix":
            raise DeviceUnavailable("torch_ddp launches its ranks with POSIX file descriptors")
        self.device = device
        self.dtype = np.dtype(dtype)
        self.ranks = ranks
        self.threads_per_rank = threads_per_rank
        self.backend = "nccl" if device == "cuda" else "gloo"
        self.batches = 0  # batches loaded so far; the ranks hold the last one
        self.rows = None  # rows per rank of the loaded batch
        start = time.perf_counter()
        # The rendezvous store, held here like torchrun's agent holds it.
        # Port 0 lets the system pick a free port: no race with other jobs.
        self.store = torch.distributed.TCPStore(
            "127.0.0.1", 0, ranks, is_master=True, wait_for_workers=False, timeout=timedelta(seconds=60)
        )
        self.processes, self.connections, self.logs = [], [], []
        # Whatever happens from here on, the ranks are closed with the net:
        # by close(), when the net is garbage-collected, or at exit.
        self.finalizer = weakref.finalize(self, shut_down, self.processes, self.connections, self.logs, self.store)
        try:
            for rank in range(ranks):
                self.launch(rank)
            self.set_up(w1, w2, learning_rate, device, dtype)
        except BaseException:
            self.close()
            raise
        self.startup_s = time.perf_counter() - start

    def set_up(self, w1, w2, learning_rate, device, dtype):
        """Give every rank the weights and settings, and wait until all are ready."""
        settings = {
            "w1": np.asarray(w1, dtype=self.dtype),
            "w2": np.asarray(w2, dtype=self.dtype),
            "learning_rate": learning_rate,
            "device": device,
            "dtype": dtype,
            "threads": self.threads_per_rank,
            "matmul_precision": torch.get_float32_matmul_precision(),
        }
        self.ask_all("setup", settings, timeout=STARTUP_TIMEOUT_S)

    def launch(self, rank):
        """Start one rank the way torchrun does: a process told who it is."""
        parent_end, child_end = Pipe()
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(implementations.__file__)))
        environment = dict(
            os.environ,
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(self.store.port),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            LOCAL_WORLD_SIZE=str(self.ranks),
            WORLD_SIZE=str(self.ranks),
            OMP_NUM_THREADS=str(self.threads_per_rank),
            SIDEBYSIDE_DDP_FD=str(child_end.fileno()),
            PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        )
        # The rank's output goes to a file, read back only if it fails.
        log = tempfile.TemporaryFile()
        self.logs.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "sidebyside.implementations.two_layer.ddp_rank"],
            env=environment,
            pass_fds=(child_end.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # A session of its own: Ctrl-C in a terminal reaches only this
            # process, which then closes the ranks in order.
            start_new_session=True,
        )
        child_end.close()
        self.processes.append(process)
        self.connections.append(parent_end)

    def prepare(self, x, y):
        """Send each rank its rows of the batch; no resend if already there.

        The batch is split along its rows as evenly as possible: with N rows
        on R ranks, the first N % R ranks get one row more than the others.
        """
        if isinstance(x, Shards) and isinstance(y, Shards) and x.batch == y.batch == self.batches:
            return x, y
        x = x.array if isinstance(x, Shards) else x
        y = y.array if isinstance(y, Shards) else y
        x = np.ascontiguousarray(x, dtype=self.dtype)
        y = np.ascontiguousarray(y, dtype=self.dtype)
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} rows but y has {len(y)}")
        if len(x) < self.ranks:
            raise ValueError(f"{len(x)} rows cannot be split over {self.ranks} ranks")
        slices = list(zip(np.array_split(x, self.ranks), np.array_split(y, self.ranks)))
        self.ask_each("load", slices)
        self.batches += 1
        self.rows = [len(x_slice) for x_slice, _ in slices]
        return Shards(x, self.batches), Shards(y, self.batches)

    def step(self, x, y):
        """One step of gradient descent; returns the loss before the update."""
        self.prepare(x, y)
        return float(np.sum(self.ask_all("step"), axis=0))

    def train(self, x, y, steps):
        """Run `steps` steps; each rank keeps its losses until the end."""
        self.prepare(x, y)
        return np.sum(self.ask_all("train", steps), axis=0)

    def params(self):
        # The replicas are identical; rank 0 answers for all.
        self.send(0, "params")
        return self.receive(0)

    def info(self):
        timings = self.ask_all("timings")
        facts = {
            "compiled": False,  # each rank runs the torch_nn step eagerly
            "ranks": self.ranks,
            "backend": self.backend,
            "threads_per_rank": self.threads_per_rank,
            "rows_per_rank": ",".join(map(str, self.rows)) if self.rows else None,
            "startup_s": self.startup_s,
        }
        if all(timing["steps"] for timing in timings):
            # Medians over steps, averaged over ranks.
            step_s = float(np.mean([timing["step_s"] for timing in timings]))
            communication_s = float(np.mean([timing["communication_s"] for timing in timings]))
            facts.update(
                rank_step_s=step_s,
                communication_s_per_step=communication_s,
                compute_s_per_step=step_s - communication_s,
            )
        return facts

    def close(self):
        """Stop the ranks and wait for them to exit; safe to call twice."""
        self.finalizer()

    def ask_all(self, command, argument=None, timeout=None):
        """Send every rank the same command, then collect their answers."""
        return self.ask_each(command, [argument] * self.ranks, timeout)

    def ask_each(self, command, arguments, timeout=None):
        """Send each rank its own argument, then collect their answers.

        All ranks are sent their command before any answer is awaited: the
        ranks must run a step together, since each all-reduce waits for all.
        """
        for rank, argument in enumerate(arguments):
            self.send(rank, command, argument)
        return [self.receive(rank, timeout) for rank in range(self.ranks)]

    def send(self, rank, command, argument=None):
        if not self.finalizer.alive:
            raise RuntimeError("torch_ddp: the net was closed")
        try:
            self.connections[rank].send((command, argument))
        except OSError as error:  # the rank closed its end: it has exited
            self.close()
            raise RuntimeError(f"torch_ddp: rank {rank} is gone: {error}") from None

    def receive(self, rank, timeout=None):
        """The answer of one rank; an error if it fails, exits or times out."""
        connection = self.connections[rank]
        waited = 0.0
        while not connection.poll(0.1):
            waited += 0.1
            # Any rank that exits leaves the others waiting in an all-reduce.
            for other, process in enumerate(self.processes):
                if process.poll() is not None:
                    why = self.tail(other)
                    self.close()
                    raise RuntimeError(f"torch_ddp: rank {other} exited with code {process.returncode}: {why}")
            if timeout is not None and waited > timeout:
                self.close()
                raise RuntimeError(f"torch_ddp: rank {rank} did not answer within {timeout} s")
        status, value = connection.recv()
        if status == "error":
            raise RuntimeError(f"torch_ddp: rank {rank}: {value}")
        return value

    def tail(self, rank):
        """The last line a rank wrote, to say why it failed."""
        log = self.logs[rank]
        log.seek(0)
        lines = log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"


def shut_down(processes, connections, logs, store):
    """Ask every rank to close, then wait; kill any that do not exit."""
    for connection in connections:
        try:
            connection.send(("close", None))
        except OSError:  # that rank is gone already
            pass
    deadline = time.monotonic() + CLOSE_TIMEOUT_S
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for connection in connections:
        connection.close()
    for log in logs:
        log.close()


if __name__ == "__main__":
    demo(Net)
