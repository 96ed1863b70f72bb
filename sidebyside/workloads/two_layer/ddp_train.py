"""`sidebyside ddp`: one rank of torch_ddp, started by torchrun, on one machine or many.

    torchrun --no-python --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:PORT sidebyside ddp --out DIR --dtype float64

torchrun starts this once per rank and tells it who it is (RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_WORLD_SIZE, MASTER_ADDR and
MASTER_PORT). Every rank builds the same problem (implementations/two_layer/problem.py:
the data and initial weights every other implementation starts from), keeps
its rows of the batch (np.array_split, as torch_ddp.Net splits them) and
trains the torch_nn net wrapped in DistributedDataParallel: the Replica of
implementations/two_layer/ddp_rank.py, whose comm hook sums the gradients for the
summed loss and times the all-reduce.

Every rank runs the harness's timing protocol (sidebyside/timing.py: the
first step alone, burn-in, every later step timed, then the synced loop);
each step all-reduces its loss and fetches it to the host, so the clock on
rank 0 covers the whole step of every rank. Rank 0 alone writes
DIR/results.json: one entry built like the worker's (sidebyside/worker.py
base_entry), judged against the float64 reference exactly as `sidebyside
run` judges (sidebyside/runner.py Run.finish_entry), so `sidebyside report`
reads it like any other. The other ranks write nothing.

Memory: before its case each rank runs torch_nn's warm-up, then counts what
the case adds in it (job_results.py `case_memory`); rank 0 sums the ranks'.

Communication per step is the wall time of the gradient all-reduce inside
DDP's comm hook (synchronous: it includes waiting for the slowest rank),
median over the timed steps of each rank, averaged over the ranks. The
loss's own all-reduce (one number) is not counted in it.

A failing or vanished rank: every collective has the process group's
timeout (`--timeout`, 60 s by default), and a rank whose collective fails
prints one line, `sidebyside: error: torch_ddp rank R: ...`, and exits 1.
"""

import os
import sys
import time
from datetime import timedelta

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
DEFAULT_TIMEOUT_S = 60.0


class NotUnderTorchrun(Exception):
    """Started without torchrun's environment: a usage error, one line."""


def check_environment():
    absent = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if absent:
        raise NotUnderTorchrun(
            f"sidebyside ddp is a rank started by torchrun ({', '.join(absent)} not set); run it as "
            "torchrun --no-python --nproc-per-node R sidebyside ddp --out DIR"
        )


def add_arguments(parser, positive_int, positive_float, size):
    from sidebyside.config import TUTORIAL_SIZE

    parser.add_argument("--out", metavar="DIR", required=True, help="rank 0 writes DIR/results.json")
    parser.add_argument("--size", type=size, default=TUTORIAL_SIZE, metavar="N,D_in,H,D_out",
                        help="the problem (default the tutorial's 64,1000,100,10)")
    parser.add_argument("--steps", type=positive_int, default=500, help="training steps (default 500)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--learning-rate", type=positive_float, default=1e-6, help="SGD step (default 1e-6)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu (gloo) or cuda (NCCL)")
    parser.add_argument("--threads-per-process", type=positive_int,
                        help="torch threads of each rank (default: this machine's cores // its ranks)")
    parser.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT_S,
                        help="seconds any collective may wait for a rank before the job fails (default 60)")
    parser.add_argument("--name", help="this machine's label in reports (default: host name)")


def run(args):
    """The rank's whole life; returns the exit code. Raises NotUnderTorchrun before importing torch."""
    check_environment()
    rank = int(os.environ["RANK"])
    try:
        # Pins this rank to its share of the machine's CPUs before torch starts its pools.
        import sidebyside.implementations.two_layer.ddp_rank  # noqa: F401
    except Exception as error:
        return fail(rank, error)
    import torch.distributed as dist

    try:
        code = train(args, rank)
    except Exception as error:
        code = fail(rank, error)
    if dist.is_initialized():
        try:
            if code == 0:
                dist.barrier()  # no rank tears down while another still talks to it
            dist.destroy_process_group()
        except Exception as error:
            code = code or fail(rank, error)
    # Skip the interpreter's tear-down: one rank in three aborted in it here ("terminate called
    # without an active exception", SIGABRT) with gloo's threads still alive, after its work was done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def fail(rank, error):
    from sidebyside.implementations import one_line

    print(f"sidebyside: error: torch_ddp rank {rank}: {one_line(error)}", file=sys.stderr, flush=True)
    return 1


def layout():
    """(world size, nodes, processes on this node) from torchrun's environment."""
    world_size = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    nodes = int(os.environ.get("GROUP_WORLD_SIZE", max(world_size // local, 1)))
    return world_size, nodes, local


def threads_for(args, local):
    """The option, or the cores this process may use over the ranks on this machine."""
    return args.threads_per_process or max(machine_cores() // local, 1)


def machine_cores():
    """The cores this machine's ranks share: what torchrun's agent may use (a rank is pinned already)."""
    try:
        return len(os.sched_getaffinity(os.getppid()))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class DataParallelNet:
    """A Replica as the timing protocol sees a net: each step returns the loss of the whole batch.

    The loss of this rank's rows is all-reduced (summed) over the ranks and
    copied to the host, which waits for the step of every rank.
    """

    def __init__(self, replica):
        self.replica = replica

    def step(self, x, y):
        import torch.distributed as dist

        loss = self.replica.train_step(x, y)
        dist.all_reduce(loss, op=dist.ReduceOp.SUM)
        return float(loss.item())

    def train(self, x, y, steps):
        """The loop view: the losses stay on the device; one all-reduce and one copy at the end."""
        import torch
        import torch.distributed as dist

        timer = self.replica.timer
        timer.active = False
        try:
            losses = torch.stack([self.replica.train_step(x, y) for _ in range(steps)])
        finally:
            timer.active = True
        dist.all_reduce(losses, op=dist.ReduceOp.SUM)
        return losses.cpu().numpy()


def train(args, rank):
    import torch
    import torch.distributed as dist

    from sidebyside.workloads.two_layer import job_results
    from sidebyside.implementations.two_layer.ddp_rank import Replica
    from sidebyside.implementations.two_layer.problem import make_data

    world_size, nodes, local = layout()
    threads = threads_for(args, local)
    config = job_results.configuration("torch_ddp", args.size, args.steps, args.dtype, args.learning_rate,
                                       args.device, world_size * threads, args.name or "")
    task = job_results.task_for(config)
    if rank == 0:
        from sidebyside import runner

        runner.Run(config, args.out).check_writable()  # before anything long: a bad folder fails now
    if args.device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # the warm-up and the memory count on this rank's GPU
    memory = job_results.case_memory("torch_ddp", "torch", task, threads)
    problem = job_results.problem_for(task)
    x, y, w1, w2 = make_data(problem)
    rows_x, rows_y = job_results.rows(x, world_size, rank), job_results.rows(y, world_size, rank)
    begin = time.perf_counter()
    replica = Replica(w1, w2, problem.learning_rate, args.device, args.dtype, threads, "highest", torchrun=True,
                      timeout=timedelta(seconds=args.timeout))
    replica.load(rows_x, rows_y)
    startup_s = time.perf_counter() - begin
    measured = job_results.measure(DataParallelNet(replica), replica.x, replica.y, task, problem)
    # What every rank saw, for rank 0 to record: its step and communication
    # times, its CPU time over the timed steps, the memory the case added in it and its CPUs.
    timings = replica.timings()
    own = job_results.own_facts(measured["utilization"], len(rows_x), memory.growth(), timings["communication_s"],
                                timings["step_s"])
    everyone = [None] * world_size
    dist.all_gather_object(everyone, own)
    if rank != 0:
        return 0
    extra = {
        "launcher": "torchrun",
        "compiled": False,
        **job_results.layout_facts(everyone, world_size, nodes, local, threads),
        "memory": job_results.memory_note("torch_ddp", memory),
        "backend": "nccl" if args.device == "cuda" else "gloo",
        "startup_s": startup_s,
        "communication_note": "gradient all-reduce timed inside DDP's comm hook; median per rank, mean over ranks",
        "torch": torch.__version__,
    }
    entry = job_results.write(args.out, config, task, problem, measured, everyone, extra, args.name)
    print(job_results.summary_line(entry, os.path.join(args.out, "results.json")), flush=True)
    return 0
