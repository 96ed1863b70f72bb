"""One rank of torch_ddp: a worker process that holds a replica of the net.

`torch_ddp.Net` starts one of these per rank with `python -m
sidebyside.implementations.two_layer.ddp_rank`, the way `torchrun` starts a training script: the
environment says who it is (RANK, WORLD_SIZE, LOCAL_RANK) and where the
rendezvous store listens (MASTER_ADDR, MASTER_PORT). The parent then drives
it through a pipe, one command at a time: set up, load a slice of the batch,
step, train, report weights or timings, close.

The same `Replica` is what `sidebyside ddp` trains when `torchrun` starts
the ranks (sidebyside/jobs/torchrun.py): there it joins the process group
through torchrun's environment (`store=None`), and nothing drives it but
its own training loop.

The replica is the torch_nn model wrapped in DistributedDataParallel. Every
rank runs the forward and backward pass on its own rows only; as backward
finishes, DDP all-reduces the gradients so that every rank applies the same
update and the replicas stay identical.
"""

import ctypes
import os
import signal
import statistics
import sys
import time
import traceback
from datetime import timedelta
from multiprocessing.connection import Connection


def settle_in():
    """Before torch starts its thread pools: die with the parent, and pin.

    PR_SET_PDEATHSIG asks Linux to kill this rank if the process that started
    it dies, so a killed harness leaves no rank running. Each rank then takes
    its own share of the CPUs it inherited (the run's T CPUs): rank r gets
    CPUs [r·T/R, (r+1)·T/R), so R ranks of T/R threads never share a core.
    Threads inherit the affinity of the thread that creates them, so this
    must come before any pool exists, i.e. before numpy and torch load.
    The share is by local rank among the ranks of this machine
    (LOCAL_RANK of LOCAL_WORLD_SIZE, as torchrun sets them): on several
    machines, each machine's ranks split that machine's CPUs.
    """
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux
        pass
    if hasattr(os, "sched_getaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        rank = int(os.environ.get("LOCAL_RANK", os.environ["RANK"]))
        local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
        share = len(cpus) // local_world_size
        if share:
            os.sched_setaffinity(0, cpus[rank * share:(rank + 1) * share])


settle_in()

import numpy as np  # noqa: E402  (after settle_in: the pools start pinned)
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

from sidebyside.implementations.two_layer.torch_nn import build_model  # noqa: E402

TIMEOUT = timedelta(seconds=60)  # a rank whose peers vanished gives up after this


class CommunicationTimer:
    """Wall time spent in gradient all-reduces, per training step.

    Only the step view is timed (`active`): on a GPU the timing waits for
    the device around every all-reduce, which the loop view, synced once
    at the end, must not do.
    """

    def __init__(self, device):
        self.device = device
        self.seconds = []  # one entry per timed step
        self.active = True

    def new_step(self):
        if self.active:
            self.seconds.append(0.0)

    def synchronize(self):
        # On a GPU, kernels run asynchronously: wait for them so that the
        # clock measures the exchange and nothing queued before or after it.
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def allreduce_sum_hook(timer, bucket):
    """Sum a bucket of gradients over the ranks, and time the exchange.

    DDP's default hook divides the all-reduced sum by the number of ranks:
    the right thing for a loss that is a mean over the batch. Our loss is a
    sum over the batch, so the gradient of the whole batch is the sum of the
    ranks' gradients, with nothing divided. Multiplying the loss by the
    number of ranks would undo the division too, but exactly only when that
    number is a power of two; summing is exact for any number of ranks, and
    for any split of the rows.

    The all-reduce here is synchronous: it returns once every rank has
    contributed, so the time includes waiting for the slowest rank. Our
    gradients fit in one bucket, which DDP fills only when backward is
    finished, so there was no backward work left to overlap with anyway.
    """
    tensor = bucket.buffer()
    if not timer.active:
        # The loop view: the all-reduce alone. On a GPU, NCCL queues it on
        # its own stream and the compute stream waits for it there: no host
        # wait. On a CPU, gloo returns once every rank has contributed.
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return done(tensor)
    timer.synchronize()
    start = time.perf_counter()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    timer.synchronize()
    timer.seconds[-1] += time.perf_counter() - start
    return done(tensor)


def done(tensor):
    # A comm hook returns a Future of the reduced bucket; ours is done already.
    future = torch.futures.Future()
    future.set_result(tensor)
    return future


class Replica:
    def __init__(self, w1, w2, learning_rate, device, dtype, threads, matmul_precision, torchrun=False,
                 timeout=TIMEOUT):
        rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        # Each rank gets its own share of the cores (one thread each by
        # default: two ranks on two cores), and the parent's float32 matmul
        # precision, so TF32 is used on a GPU only where the harness allows it.
        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        torch.set_float32_matmul_precision(matmul_precision)
        if device == "cuda":
            self.device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        self.dtype = getattr(torch, dtype)
        # Join the process group: gloo does collectives on CPU tensors over
        # TCP, NCCL on GPU tensors. Under torchrun, through its environment
        # (env://, the agent's store); driven by torch_ddp.Net, through the
        # parent's rendezvous store. The timeout bounds every collective: a
        # rank whose peer vanished without closing its sockets gives up then.
        backend = "nccl" if device == "cuda" else "gloo"
        if torchrun:
            dist.init_process_group(backend, timeout=timeout)
        else:
            store = dist.TCPStore(
                os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size, is_master=False,
                timeout=timeout,
            )
            dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
        w1, w2 = np.asarray(w1), np.asarray(w2)
        (D_in, H), (_, D_out) = w1.shape, w2.shape
        model = build_model(D_in, H, D_out, "sequential").to(self.device, self.dtype)
        self.linear1, self.linear2 = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
        # Load the shared initial weights, transposed to nn.Linear's (out, in).
        with torch.no_grad():
            self.linear1.weight.copy_(torch.as_tensor(w1.T))
            self.linear2.weight.copy_(torch.as_tensor(w2.T))
        # DDP broadcasts rank 0's weights to the others on construction, and
        # from then on all-reduces gradients during every backward pass.
        self.model = DistributedDataParallel(model, device_ids=[self.device.index] if device == "cuda" else None)
        self.timer = CommunicationTimer(self.device)
        self.model.register_comm_hook(self.timer, allreduce_sum_hook)
        self.step_seconds = []
        # reduction="sum" gives the tutorial's sum of squares, not the mean.
        self.loss_fn = torch.nn.MSELoss(reduction="sum")
        # Plain SGD: no momentum, no weight decay.
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=learning_rate)
        self.x = self.y = None

    def load(self, x, y):
        """Keep this rank's rows of the batch on its device."""
        self.x = torch.as_tensor(x, dtype=self.dtype, device=self.device)
        self.y = torch.as_tensor(y, dtype=self.dtype, device=self.device)

    def step(self):
        return self.train_step(self.x, self.y).cpu().numpy()

    def train(self, steps):
        # The loop view: no per-step clocks or device waits, the losses stay
        # on the device and come back in one copy at the end.
        self.timer.active = False
        try:
            losses = torch.stack([self.train_step(self.x, self.y) for _ in range(steps)])
            return losses.cpu().numpy()
        finally:
            self.timer.active = True

    def params(self):
        w1 = self.linear1.weight.detach().cpu().numpy().T.copy()
        w2 = self.linear2.weight.detach().cpu().numpy().T.copy()
        return w1, w2

    def timings(self):
        """Median seconds per step: the whole step, and its all-reduces."""
        if not self.step_seconds:
            return {"step_s": None, "communication_s": None, "steps": 0}
        return {
            "step_s": statistics.median(self.step_seconds),
            "communication_s": statistics.median(self.timer.seconds),
            "steps": len(self.step_seconds),
        }

    def train_step(self, x, y):
        start = time.perf_counter()
        self.timer.new_step()

        # Forward pass: compute predicted y for this rank's rows only
        y_pred = self.model(x)

        # Compute loss: the sum of squared errors over this rank's rows. The
        # parent adds the ranks' losses to get the loss of the whole batch.
        loss = self.loss_fn(y_pred, y)

        # Backward pass: clear the old gradients, then let autograd compute
        # this rank's gradients; DDP sums them over all ranks (the hook
        # above) before backward returns, so every rank holds the gradient
        # of the whole batch
        self.optimizer.zero_grad()
        loss.backward()

        # Update weights: the same summed gradient on every rank keeps the
        # replicas identical without ever sending the weights
        self.optimizer.step()
        if self.timer.active:
            self.step_seconds.append(time.perf_counter() - start)
        return loss.detach()


def serve(connection):
    """Answer the parent's commands until it says close or goes away."""
    replica = None
    while True:
        try:
            command, argument = connection.recv()
        except EOFError:  # the parent is gone: nothing left to do
            return
        if command == "close":
            return
        try:
            if command == "setup":
                replica = Replica(**argument)
                result = None
            elif command == "load":
                result = replica.load(*argument)
            elif command == "step":
                result = replica.step()
            elif command == "train":
                result = replica.train(argument)
            elif command == "params":
                result = replica.params()
            elif command == "timings":
                result = replica.timings()
            else:
                raise ValueError(f"unknown command {command!r}")
        except Exception as error:
            traceback.print_exc()
            summary = str(error).strip().splitlines()[0] if str(error).strip() else ""
            answer = ("error", f"{type(error).__name__}: {summary}")
        else:
            answer = ("ok", result)
        try:
            connection.send(answer)
        except OSError:  # the parent is gone: nothing left to do
            return


def main():
    # Ctrl-C belongs to the parent, which then closes the ranks in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connection = Connection(int(os.environ["SIDEBYSIDE_DDP_FD"]))
    try:
        serve(connection)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        connection.close()


if __name__ == "__main__":
    sys.exit(main())
