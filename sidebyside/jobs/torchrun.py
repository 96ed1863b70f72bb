"""torch_ddp as a job: `sidebyside ddp`, one rank started by torchrun, and its launch in `sidebyside run`.

One rank, on one machine or many:

    torchrun --no-python --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:PORT sidebyside ddp --out DIR --dtype float64

torchrun starts `sidebyside ddp` once per rank and tells it who it is (RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_WORLD_SIZE, MASTER_ADDR and
MASTER_PORT). Every rank builds the same problem
(implementations/two_layer/problem.py: the data and initial weights every
other implementation starts from), keeps its rows of the batch
(np.array_split, as torch_ddp.Net splits them) and trains the torch_nn net
wrapped in DistributedDataParallel: the Replica of
implementations/two_layer/ddp_rank.py, whose comm hook sums the gradients
for the summed loss and times the all-reduce.

Every rank runs the harness's timing protocol (sidebyside/timing.py: the
first step alone, burn-in, every later step timed, then the synced loop);
each step all-reduces its loss and fetches it to the host, so the clock on
rank 0 covers the whole step of every rank. Rank 0 alone writes
DIR/results.json (shared.py `write`): one entry built and judged as
`sidebyside run` builds and judges them, so `sidebyside report` reads it
like any other. The other ranks write nothing.

Memory: before its case each rank runs torch_nn's warm-up, then counts what
the case adds in it (shared.py `case_memory`); rank 0 sums the ranks'.
Communication per step is the wall time of the gradient all-reduce inside
DDP's comm hook (synchronous: it includes waiting for the slowest rank),
median over the timed steps of each rank, averaged over the ranks. The
loss's own all-reduce (one number) is not counted in it.

In `sidebyside run` the worker's child for torch_ddp builds no net in its
own process (`TorchRun.measure`): it starts

    python -m torch.distributed.run --standalone --nproc-per-node R \\
        -m sidebyside.cli ddp --out TMP --size ... --steps ... --dtype ...

waits for it, and takes the measured fields of the one entry rank 0 wrote
into TMP/results.json; the runner then judges and pools it like any other
entry, so the single-machine comparison and a cluster run are the same
code. Each rank gets the run's threads // R threads; torchrun inherits the
worker's CPUs (the run's), and each rank pins itself to its own share of
them (implementations/two_layer/ddp_rank.py settle_in). torchrun and its
ranks die with the worker (PR_SET_PDEATHSIG on torchrun; torchrun's ranks
set their own), and a worker stopped by Ctrl-C or SIGTERM stops torchrun
first.

A failing or vanished rank: every collective has the process group's
timeout (`--timeout`, 60 s by default), and a rank whose collective fails
prints one line, `sidebyside: error: torch_ddp rank R: ...`, and exits 1;
torchrun stops the others, and the entry's reason is one line: the first
failure torchrun observed, with the rank's own error line where it printed
one.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sidebyside.config import positive_float, positive_int
from sidebyside.implementations import one_line
from sidebyside.implementations.two_layer.problem import make_data
from sidebyside.jobs import CommandError, Job, shared
from sidebyside.processes import die_with_parent, launched_here, stay_with_the_launcher

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
TIMEOUT_S = 60.0  # the process group's timeout: a rank waits this long for a vanished peer
STOP_S = 10.0  # torchrun asked to stop (SIGTERM) is killed after this


class TorchRun(Job):
    name = "torchrun"
    implementations = ("torch_ddp",)
    launchers = ("torchrun",)

    def commands(self):
        return {"ddp": ("one torch_ddp rank, started by torchrun (rank 0 writes results.json)", add_arguments, run)}

    def measure(self, spec, task, entry, threads):
        """Fill the worker's entry with what rank 0 measured."""
        ranks = shared.processes_for(spec, task)
        shared.take_measured(entry, launch(task, ranks, max(threads // ranks, 1)))


# One rank: `sidebyside ddp` ---------------------------------------------------------------


def add_arguments(parser):
    parser.add_argument("--out", metavar="DIR", required=True, help="rank 0 writes DIR/results.json")
    parser.add_argument("--size", type=shared.size, default=shared.TUTORIAL_SIZE, metavar="N,D_in,H,D_out",
                        help="the problem (default the tutorial's 64,1000,100,10)")
    parser.add_argument("--steps", type=positive_int, default=500, help="training steps (default 500)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--learning-rate", type=positive_float, default=1e-6, help="SGD step (default 1e-6)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu (gloo) or cuda (NCCL)")
    parser.add_argument("--threads-per-process", type=positive_int,
                        help="torch threads of each rank (default: this machine's cores // its ranks)")
    parser.add_argument("--timeout", type=positive_float, default=TIMEOUT_S,
                        help="seconds any collective may wait for a rank before the job fails (default 60)")
    parser.add_argument("--name", help="this machine's label in reports (default: host name)")


def check_environment():
    absent = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if absent:
        raise CommandError(
            f"sidebyside ddp is a rank started by torchrun ({', '.join(absent)} not set); run it as "
            "torchrun --no-python --nproc-per-node R sidebyside ddp --out DIR"
        )


def run(args, output):
    """The rank's whole life; never returns but exits. Raises CommandError, outside torchrun, before importing torch."""
    check_environment()
    stay_with_the_launcher()
    rank = int(os.environ["RANK"])
    try:
        # Pins this rank to its share of the machine's CPUs before torch starts its pools.
        from sidebyside.implementations.two_layer import ddp_rank
    except Exception as error:
        return fail(rank, error)
    import torch.distributed as dist

    try:
        code = train(args, rank, output, ddp_rank.Replica)
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


def train(args, rank, output, Replica):
    import torch
    import torch.distributed as dist

    world_size, nodes, local = layout()
    threads = threads_for(args, local)
    config = shared.configuration("torch_ddp", args.size, args.steps, args.dtype, args.learning_rate,
                                  args.device, world_size * threads, args.name or "")
    task = shared.task_for(config)
    if rank == 0:
        output.check(config, args.out)  # before anything long: a bad folder fails now
    if args.device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # the warm-up and the memory count on this rank's GPU
    memory = shared.case_memory("torch_ddp", "torch", task, threads)
    problem = shared.problem_for(task)
    x, y, w1, w2 = make_data(problem)
    rows_x, rows_y = shared.rows(x, world_size, rank), shared.rows(y, world_size, rank)
    begin = time.perf_counter()
    replica = Replica(w1, w2, problem.learning_rate, args.device, args.dtype, threads, "highest", torchrun=True,
                      timeout=timedelta(seconds=args.timeout))
    replica.load(rows_x, rows_y)
    startup_s = time.perf_counter() - begin
    measured = shared.measure(DataParallelNet(replica), replica.x, replica.y, task, problem)
    # What every rank saw, for rank 0 to record: its step and communication
    # times, its CPU time over the timed steps, the memory the case added in it and its CPUs.
    timings = replica.timings()
    own = shared.own_facts(measured["utilization"], len(rows_x), memory.growth(), timings["communication_s"],
                           timings["step_s"])
    everyone = [None] * world_size
    dist.all_gather_object(everyone, own)
    if rank != 0:
        return 0
    extra = {
        "launcher": "torchrun",
        "compiled": False,
        **shared.layout_facts(everyone, world_size, nodes, local, threads),
        "memory": shared.memory_note("torch_ddp", memory),
        "backend": "nccl" if args.device == "cuda" else "gloo",
        "startup_s": startup_s,
        "communication_note": "gradient all-reduce timed inside DDP's comm hook; median per rank, mean over ranks",
        "torch": torch.__version__,
    }
    entry = shared.write(output, args.out, config, task, problem, measured, everyone, extra, args.name)
    print(shared.summary_line(entry, os.path.join(args.out, "results.json")), flush=True)
    return 0


# The harness's side: torchrun on this machine -----------------------------------------------


def torchrun_command(task, ranks, threads_per_rank, out):
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
        "--max-restarts", "0", "--monitor-interval", "0.1",
        "-m", "sidebyside.processes", "sidebyside.cli", "ddp", "--out", str(out), "--size", shared.size_text(task),
        "--steps", str(task["steps"]), "--dtype", task["dtype"], "--learning-rate", repr(task["learning_rate"]),
        "--device", task["device"], "--threads-per-process", str(threads_per_rank), "--timeout", str(TIMEOUT_S),
    ]


def launch(task, ranks, threads_per_rank):
    """Run the job; returns rank 0's entry, or raises RuntimeError with a one-line reason."""
    environment = shared.child_environment(OMP_NUM_THREADS=str(threads_per_rank), **launched_here())
    with tempfile.TemporaryDirectory(prefix="sidebyside-ddp-") as folder:
        # torchrun's own temporary folder (torchelastic_*, which it leaves behind) and the ranks' go in ours
        environment["TMPDIR"] = folder
        out = Path(folder) / "out"
        with open(Path(folder) / "torchrun.log", "w+") as log:
            process = subprocess.Popen(
                torchrun_command(task, ranks, threads_per_rank, out), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=environment, preexec_fn=die_with_parent,
            )
            try:
                code = process.wait()
            except BaseException:  # Ctrl-C or SIGTERM in the worker: torchrun stops its ranks
                stop(process)
                raise
            log.seek(0)
            text = log.read()
        if code != 0:
            raise RuntimeError(failure(text, code))
        document = json.loads((out / "results.json").read_text())
    (entry,) = document["results"]
    return entry


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


ROOT_CAUSE = re.compile(
    r"Root Cause.*?rank\s*:\s*(?P<rank>\d+)\s*\(local_rank:\s*\d+\)\s*exitcode\s*:\s*(?P<code>-?\d+)"
    r"[^\n]*?(?:\((?P<signal>SIG\w+)\))?\s*$", re.S | re.M)
FAILURE = re.compile(  # every rank of torchrun's failure summary, the root cause's and the others'
    r"rank\s*:\s*(?P<rank>\d+)\s*\(local_rank:\s*\d+\)\s*exitcode\s*:\s*(?P<code>-?\d+)"
    r"[^\n]*?(?:\((?P<signal>SIG\w+)\))?\s*$", re.M)
RANK_ERROR = re.compile(r"^sidebyside: error: torch_ddp rank (?P<rank>\d+): (?P<message>.*)$", re.M)


def failure(text, code):
    """One line: which rank failed first (torchrun's root cause) and how, with its own error if it said one."""
    errors = {int(match["rank"]): first_sentence(match["message"]) for match in RANK_ERROR.finditer(text)}
    # A rank killed from outside (not torchrun's own SIGTERM to the survivors) is the cause, even where
    # a peer's "connection reset" reached torchrun first and became its root cause. Where several were
    # killed (torchrun escalates to SIGKILL on a survivor that outlives its SIGTERM), the root cause
    # among them is the one killed first.
    root = ROOT_CAUSE.search(text)
    killed = [match for match in FAILURE.finditer(text) if match["signal"] not in (None, "SIGTERM")]
    root_killed = [match for match in killed if root and match["rank"] == root["rank"]]
    cause = (root_killed or killed or [root])[0]
    if cause:
        rank, exit_code = int(cause["rank"]), int(cause["code"])
        how = f"was killed by {cause['signal']}" if cause["signal"] else f"exited with code {exit_code}"
        reason = f"torchrun: rank {rank} {how}"
        if rank in errors:
            reason += f": {errors[rank]}"
        elif errors:
            other, message = next(iter(errors.items()))
            reason += f" (rank {other}: {message})"
        return reason
    if errors:
        rank, message = next(iter(errors.items()))
        return f"torchrun exited with code {code}: rank {rank}: {message}"
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return f"torchrun exited with code {code}: {lines[-1].strip() if lines else 'no output'}"


def first_sentence(message):
    """gloo appends advice to its errors ("This is typically caused by ..."): the first sentence says what happened."""
    return message.strip().split(". ", 1)[0].rstrip(".")


JOB = TorchRun()
