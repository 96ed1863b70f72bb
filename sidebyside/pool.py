"""The processes of a run: one zygote per framework group and environment, their forked children, the peak and canary.

A zygote (sidebyside/worker.py) imports its group's frameworks once; every
job it is sent runs in a child forked from it, so each implementation is
timed in a fresh process without paying for the imports. `Zygote` is one
such process and its line protocol (JSON, one object a line); `Pool` holds
every process a run starts, runs one job (`Pool.run_job`), times the drift
canary (sidebyside/canary.py) between jobs, and stops them all.

The rule: every process starts in a session of its own, so Ctrl-C in a
terminal reaches the runner alone, and the runner stops each one
(`Pool.stop`, `Zygote.stop`: SIGINT to its group, then SIGKILL); none is
left behind. Nothing here judges or writes an entry: each record goes to
the caller's `on_record`.
"""

import json
import os
import select
import signal
import subprocess
import sys
import time

from sidebyside.plan import spec_of

PEAK_TIMEOUT_S = 300


def process_group(spec):
    """Implementations whose processes fork from one zygote: Keras joins its backend's.

    Keras on torch imports torch (and JAX, which Keras 3 imports wherever it
    is installed), so one zygote importing both saves importing torch twice;
    likewise for TensorFlow and JAX. A zygote holds one Keras backend.
    """
    return spec.backend if "keras" in spec.requires else spec.framework


class Zygote:
    """One framework group's zygote process, and the line protocol to it."""

    def __init__(self, group, keras_backend, requires, threads, log, command=None, jobs=(), python=None, cwd=None):
        self.group = group
        environment = dict(os.environ, PYTHONUNBUFFERED="1")
        if python:
            # Another environment's interpreter imports its own sidebyside, never one from the current
            # folder (a checkout of the other side): no current folder on its path, and a folder of ours.
            environment["PYTHONSAFEPATH"] = "1"
        command = command or [python or sys.executable, "-m", "sidebyside.worker", str(threads), keras_backend or "",
                              ",".join(requires), ",".join(jobs)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=environment, cwd=cwd,
            start_new_session=True,  # Ctrl-C in a terminal reaches the runner, which stops this group
        )
        self.buffer = b""
        self.child = None
        self.started = False

    def wait_ready(self, timeout_s):
        """Wait until the zygote has imported its frameworks; OSError if it never does."""
        if not self.started:
            ready = self.read(timeout_s)
            if not ready or not ready.get("ready"):
                self.stop()
                raise OSError(f"the {self.group} worker did not start within {timeout_s:.0f} s (see worker.log)")
            self.started = True

    def read(self, timeout_s):
        """The next protocol line as a dict, or None if none came in time or the zygote ended."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.process.stdout], [], [], min(left, 0.05))
            if ready:
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    return None  # the zygote exited
                self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def submit(self, job_path, out_path):
        self.process.stdin.write((json.dumps({"job": str(job_path), "out": str(out_path)}) + "\n").encode())
        self.process.stdin.flush()
        answer = self.read(60)
        self.child = answer.get("pid") if answer else None
        return self.child is not None

    def alive(self):
        return self.process.poll() is None

    def ask(self, timeout_s):
        """Send one line and return the answer (the peak process's "go"); None if none came."""
        try:
            self.process.stdin.write(b"go\n")
            self.process.stdin.flush()
        except OSError:
            return None
        return self.read(timeout_s)

    def stop(self):
        """Stop the zygote, its child and everything they started, within about two seconds."""
        process = self.process
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGINT)
                process.wait(timeout=1.5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def hang_up(self):
        """Close the zygote's stdin: it exits at once (see `close`)."""
        try:
            self.process.stdin.close()
        except OSError:
            pass

    def close(self, timeout_s=5):
        """End the zygote politely (it exits when its stdin closes), or stop it."""
        self.hang_up()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        self.stop()


class Pool:
    """Every process of one run: the zygotes, the peak process, the drift canary's; and worker.log, where they write."""

    def __init__(self, config, out_dir, pythons, log):
        self.config = config
        self.out_dir = out_dir
        self.pythons = pythons  # environment name -> its interpreter
        self.log = log  # worker.log, open for appending
        self.zygotes = {}  # (environment, zygote group) -> Zygote
        self.group_requires = {}  # zygote group -> the frameworks it imports
        self.group_jobs = {}  # zygote group -> "workload:implementation" whose modules it imports
        self.peaks = []  # the peak process, until it has measured for the last time
        self.canary = None  # the drift canary's process (sidebyside/canary.py)
        self.last_canary = None  # the canary timed at the end of the last process, if nothing ran since

    def start(self, runs):
        """Start everything that imports at once, before any clock runs: the peak process, the canary's, the zygotes."""
        self.mark("starting the workers")
        self.peaks = [start_peak(self.config, self.log)]
        self.canary = start_canary(self.config, self.log)
        self.start_zygotes(runs, wait=False)

    def launch(self, spec, environment=None):
        """The zygote of the spec's group in an environment, started now if it is not running.

        It imports what every implementation of its group in this run needs
        (as `start_zygotes` gathered it), and sets KERAS_BACKEND where one
        of them is a Keras variant.
        """
        group = process_group(spec)
        zygote = self.zygotes.get((environment, group))
        if zygote is None or not zygote.alive():
            requires = self.group_requires.get((environment, group)) or tuple(spec.requires)
            keras_backend = spec.backend if "keras" in requires else None
            zygote = Zygote(group, keras_backend, requires, self.config.threads, self.log,
                            jobs=self.group_jobs.get((environment, group), ()), python=self.pythons.get(environment),
                            cwd=self.out_dir if environment else None)
            self.zygotes[(environment, group)] = zygote
        return zygote

    def start_zygotes(self, runs, wait=True):
        """Start every group's zygote at once, before anything is timed; with `wait`, until all are ready.

        Their imports overlap (seconds each, much of it waiting on the disk),
        and no clock is running yet, so nothing measured pays for that.
        """
        specs = [spec_of(run) for run in runs]
        for run, spec in zip(runs, specs):
            key = (run.get("environment"), process_group(spec))
            self.group_requires[key] = tuple(dict.fromkeys(self.group_requires.get(key, ()) + tuple(spec.requires)))
            self.group_jobs.setdefault(key, []).append(f"{run['workload']}:{run['implementation']}")
        for run, spec in zip(runs, specs):
            self.launch(spec, run.get("environment"))
        if wait:
            for run, spec in zip(runs, specs):
                self.zygote(spec, run.get("environment"))

    def zygote(self, spec, environment=None):
        """The spec's zygote in an environment, ready for a job, or None if it cannot start."""
        zygote = self.launch(spec, environment)
        try:
            zygote.wait_ready(self.config.worker_timeout_s)
        except OSError as error:
            self.log.write(f"{error}\n")
            self.log.flush()
            self.zygotes.pop((environment, process_group(spec)), None)
            return None
        return zygote

    def time_canary(self):
        """The drift canary's seconds now (sidebyside/canary.py), or None where its process cannot answer."""
        if self.canary is None:
            return None
        try:
            self.canary.wait_ready(self.config.worker_timeout_s)
            answer = self.canary.ask(30)
        except OSError:
            answer = None
        if not answer or not answer.get("seconds"):
            self.log.write("the drift canary did not answer; its rounds read null\n")
            self.canary.stop()
            self.canary = None
            return None
        return float(answer["seconds"])

    def canary_before(self):
        """The canary before a process: the one timed after the last process, if nothing ran since, else timed now."""
        before = self.last_canary if self.last_canary is not None else self.time_canary()
        self.last_canary = None
        return before

    def canary_after(self):
        """The canary after a process, timed now; it also serves as the next process's before."""
        self.last_canary = self.time_canary()
        return self.last_canary

    def run_job(self, run, mode, on_record):
        """Run one implementation's tasks in a fresh process; on_record(record, task) takes each as it lands
        and returns the entry it filled.

        Returns the tasks left without a record, the child's exit code, and
        the entries filled; filled is None where no process started (the
        worker did not start), so there is no process to time the canary after.
        """
        spec = spec_of(run)
        tasks = run["tasks"]
        stem = f"{run['workload']}-{run['implementation']}" + (f"-{run['environment']}" if run.get("environment") else "")
        job_path = self.out_dir / f".job-{stem}.json"
        stream_path = self.out_dir / f".entries-{stem}.jsonl"
        job = {"run": run, "mode": mode, "threads": self.config.threads, "tf32": self.config.tf32}
        try:
            job_path.write_text(json.dumps(job))
            stream_path.write_text("")
            self.mark(f"{stem} ({mode})")
            zygote = self.zygote(spec, run.get("environment"))
            if zygote is None or not zygote.submit(job_path, stream_path):
                return tasks, "the worker did not start", None
            received, code, filled = 0, None, []
            last_progress = time.monotonic()
            while True:
                answer = zygote.read(0.05)
                if answer is not None and "exit" in answer:
                    code = answer["exit"]
                lines = stream_path.read_text().splitlines()
                complete = [line for line in lines if line.endswith("}")]
                for line in complete[received:]:
                    filled.append(on_record(json.loads(line), tasks[received]))
                    received += 1
                    last_progress = time.monotonic()
                if code is not None or not zygote.alive():
                    break
                if time.monotonic() - last_progress > self.config.worker_timeout_s:
                    zygote.stop()
                    self.log.write(f"timed out after {self.config.worker_timeout_s:.0f} s without a result\n")
                    code = "timed out"
                    break
        finally:
            job_path.unlink(missing_ok=True)
            stream_path.unlink(missing_ok=True)
            self.mark(f"{stem} ended")
        if code is None:
            code = zygote.process.returncode
        return tasks[received:], code, filled

    def mark(self, phase):
        """A phase's start in worker.log, with the Unix time: where a run's wall time goes."""
        self.log.write(f"=== {phase} at {time.time():.2f}\n")
        self.log.flush()

    def stop(self):
        """Stop every process of the run at once (Ctrl-C, SIGTERM, an error, or the end)."""
        for zygote in [*self.zygotes.values(), *self.peaks, *([self.canary] if self.canary else [])]:
            zygote.stop()
        self.zygotes, self.peaks, self.canary = {}, [], None

    def close(self):
        """Hang up on every zygote at once, then wait for them all within one deadline."""
        closing = [*self.zygotes.values(), *([self.canary] if self.canary else [])]
        for zygote in closing:
            zygote.hang_up()
        deadline = time.monotonic() + 5
        for zygote in closing:
            zygote.close(max(deadline - time.monotonic(), 0.1))
        self.zygotes, self.canary = {}, None


def start_peak(config, log):
    """A process that measures the matmul peak when told to (`python -m sidebyside.peak ... --wait`).

    Started with the workers, it imports and builds its cases while they
    import; the timing waits for `measure_peak`, when nothing else runs.
    """
    command = [sys.executable, "-m", "sidebyside.peak", str(config.threads), "1" if config.tf32 else "0",
               str(config.peak_budget_s), "--wait"]
    return Zygote("peak", None, (), config.threads, log, command=command)


def start_canary(config, log):
    """The drift canary's process (`python -m sidebyside.canary THREADS SECONDS`), pinned like the workers."""
    command = [sys.executable, "-m", "sidebyside.canary", str(config.threads), str(config.canary_s)]
    return Zygote("canary", None, (), config.threads, log, command=command)


def measure_peak(process, last=True):
    """The attainable matmul peak per device and dtype, from a process `start_peak` started.

    The same process measures at the start and at the end; `last` ends it.
    """
    failed = {"peak_gflops": {"cpu": None, "cuda": None}}
    try:
        process.wait_ready(PEAK_TIMEOUT_S)
        result = process.ask(PEAK_TIMEOUT_S)
    except OSError:
        result = None
    finally:
        if last or result is None:
            process.close(timeout_s=2)
    if result is None:
        return {**failed, "peak_detail": {"error": "the peak measurement did not finish (see worker.log)"}}
    return result
