"""torch_ddp in `sidebyside run`: launched through torchrun, exactly as on a cluster.

The worker's child for torch_ddp does not build a net in its own process.
It starts

    python -m torch.distributed.run --standalone --nproc-per-node R \\
        -m sidebyside.cli ddp --out TMP --size ... --steps ... --dtype ...

(`sidebyside ddp`, sidebyside/workloads/two_layer/ddp_train.py), waits for it, and takes the
measured fields of the one entry rank 0 wrote into TMP/results.json. The
runner then judges agreement and pools it like any other entry, so the
single-machine comparison and a cluster run are the same code.

Each rank gets the run's threads // R threads; torchrun inherits the
worker's CPUs (the run's), and each rank pins itself to its own share of
them (implementations/two_layer/ddp_rank.py settle_in). torchrun and its ranks die
with the worker (PR_SET_PDEATHSIG on torchrun; torchrun's ranks set their
own), and a worker stopped by Ctrl-C or SIGTERM stops torchrun first.

A rank that fails or vanishes ends the job (torchrun stops the others, and
every collective has the process group's timeout); the entry's reason is
one line: the first failure torchrun observed, with the rank's own error
line where it printed one.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

# The rank's measurements; agreement and everything pooled over rounds the runner adds itself.
MEASURED = ("status", "reason", "diverged_at", "losses", "step_time", "unstable", "cpu_utilization",
            "first_step_s", "loop_time_s", "loop_steps", "flops_per_step", "gflops", "peak_memory_bytes")
TIMEOUT_S = 60.0  # the process group's timeout: a rank waits this long for a vanished peer
STOP_S = 10.0  # torchrun asked to stop (SIGTERM) is killed after this


def torchrun_command(task, ranks, threads_per_rank, out):
    size = ",".join(str(task["size"][key]) for key in ("N", "D_in", "H", "D_out"))
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
        "--max-restarts", "0", "--monitor-interval", "0.1",
        "-m", "sidebyside.cli", "ddp", "--out", str(out), "--size", size, "--steps", str(task["steps"]),
        "--dtype", task["dtype"], "--learning-rate", repr(task["learning_rate"]), "--device", task["device"],
        "--threads-per-process", str(threads_per_rank), "--timeout", str(TIMEOUT_S),
    ]


def die_with_parent():
    from sidebyside.worker import die_with_parent as arrange

    arrange()


def launch(task, ranks, threads_per_rank):
    """Run the job; returns rank 0's entry, or raises RuntimeError with a one-line reason."""
    package_root = str(Path(__file__).resolve().parent.parent)
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads_per_rank),
                       PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryDirectory(prefix="sidebyside-ddp-") as folder:
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
            output = log.read()
        if code != 0:
            raise RuntimeError(failure(output, code))
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


def failure(output, code):
    """One line: which rank failed first (torchrun's root cause) and how, with its own error if it said one."""
    errors = {int(match["rank"]): first_sentence(match["message"]) for match in RANK_ERROR.finditer(output)}
    # A rank killed from outside (not torchrun's own SIGTERM to the survivors) is the cause, even where
    # a peer's "connection reset" reached torchrun first and became its root cause. Where several were
    # killed (torchrun escalates to SIGKILL on a survivor that outlives its SIGTERM), the root cause
    # among them is the one killed first.
    root = ROOT_CAUSE.search(output)
    killed = [match for match in FAILURE.finditer(output) if match["signal"] not in (None, "SIGTERM")]
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
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return f"torchrun exited with code {code}: {lines[-1].strip() if lines else 'no output'}"


def first_sentence(message):
    """gloo appends advice to its errors ("This is typically caused by ..."): the first sentence says what happened."""
    return message.strip().split(". ", 1)[0].rstrip(".")


def measure(spec, task, entry, threads):
    """Fill the worker's entry with what rank 0 measured."""
    ranks = task.get("ranks") or spec.options["ranks"]
    measured = launch(task, ranks, max(threads // ranks, 1))
    for key in MEASURED:
        entry[key] = measured.get(key)
    entry["samples"] = (measured.get("step_time") or {}).get("samples") or []
    extra = dict(measured.get("extra") or {})
    extra.pop("agreement_ratio", None)  # the runner judges agreement itself
    entry["extra"].update(extra)
