"""Threads as the pools have them, and more runnable threads than CPUs, each checked by its effect.

A worker records each pool's size as its library reports it after the
settings (fairness.read_back), not the request: in a real worker process the
record equals what threadpoolctl and torch say in that same process, a pool
changed behind the settings' back is recorded as it is and flagged, and the
runnable threads sampled during the timed steps flag a process with more of
them than CPUs, while a normal run is not flagged.
"""

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from importlib.util import find_spec

import pytest

from sidebyside import ranking, timing
from sidebyside.config import RunConfig
from sidebyside.plan import plan, spec_of
from tests.conftest import ROOT

# The worker as `sidebyside run` starts it, with two test-only changes: after
# each job the child also writes each library's own report of its pools
# (threadpoolctl, torch), and the job of DRIFTING has its BLAS pool set to
# one thread more than asked behind the settings' back.
DRIFTING = "numpy_tuned"
WORKER = f"""
import sys
from sidebyside import fairness, worker

run_job, apply = worker.run_job, fairness.apply

def drifting(names, threads, tf32=False):
    from threadpoolctl import threadpool_limits
    settings = apply(names, threads, tf32)
    fairness.drift = threadpool_limits(threads + 1, user_api="blas")
    return settings

def reporting(job, emit, log):
    if job["run"]["implementation"] == {DRIFTING!r}:
        fairness.apply = drifting
    run_job(job, emit, log)
    from threadpoolctl import threadpool_info
    own = {{"native": sorted([library["internal_api"], library["num_threads"]] for library in threadpool_info())}}
    if job["run"]["implementation"].startswith("torch"):
        import torch
        own.update(torch_intra_op=torch.get_num_threads(), torch_inter_op=torch.get_num_interop_threads())
    emit({{"own": own}})

worker.run_job = reporting
worker.main(sys.argv[1:])
"""


def worker_records(tmp_path, threads, names, steps):
    """Run `names` (two_layer, float32, `steps` steps) in one worker zygote at `threads`: [(entry, own report)]."""
    config = RunConfig(implementations=tuple(names), workloads=("two_layer",), dtypes=("float32",), options={"sweep": ()},
                       steps=steps, warmup=2, loop_flops=0.0, threads=threads)
    runs = [run for run in plan(config) if "skip" not in run]
    assert [run["implementation"] for run in runs] == list(names)
    out = tmp_path / f"out-{threads}-{names[0]}.jsonl"
    requests = []
    for run in runs:
        job = tmp_path / f"{run['implementation']}-{threads}.json"
        job.write_text(json.dumps({"run": run, "mode": "full", "threads": threads, "tf32": False}))
        requests.append(json.dumps({"job": str(job), "out": str(out)}) + "\n")
    requires = sorted({module for run in runs for module in spec_of(run).requires})
    result = subprocess.run([sys.executable, "-c", WORKER, str(threads), "", ",".join(requires)], cwd=ROOT,
                            input="".join(requests), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 * len(names), result.stderr[-3000:]
    return [(entry, report["own"]) for entry, report in zip(records[::2], records[1::2])]


def read_back_matches(pools, own):
    """The entry's pools against the library's own report: native libraries by kind and size, torch's by name."""
    native = sorted([pool.split(" (")[0], size] for pool, size in pools.items() if not pool.startswith("torch_"))
    torch = {pool: size for pool, size in pools.items() if pool.startswith("torch_")}
    return native == own["native"] and torch == {pool: size for pool, size in own.items() if pool != "native"}


@pytest.mark.parametrize("threads", [1, 2])
def test_pools_are_recorded_as_each_library_reports_them(tmp_path, threads):
    if len(os.sched_getaffinity(0)) < threads:
        pytest.skip(f"needs {threads} CPUs")
    names = ["numpy_manual"] + (["torch_manual"] if find_spec("torch") else [])
    # Enough steps for the sampler to judge the normal runs; few for the drifting one, whose
    # oversubscribed BLAS pool makes every step many times slower.
    records = worker_records(tmp_path, threads, names, steps=400) + worker_records(tmp_path, threads, [DRIFTING], steps=30)
    for entry, own in records:
        assert entry["status"] == "ok", entry
        pools = entry["extra"]["threads_read_back"]
        assert own["native"] and read_back_matches(pools, own), (pools, own)
        if entry["implementation"] == DRIFTING:
            # The BLAS pool was changed after the settings: the record says so, and the report flags it.
            off = ranking.pools_off(entry)
            assert off and all(item.endswith(f" {threads + 1} (asked {threads})") for item in off), pools
            continue
        # The effect of asking for `threads`: every pool has that many (an inter-op pool one), on as many CPUs.
        assert pools == {pool: 1 if pool.endswith("_inter_op") else threads for pool in pools}
        assert ranking.pools_off(entry) == []
        sample = entry["extra"]["runnable_threads"]
        assert sample["cpus"] == threads and sample["samples"] >= ranking.MIN_RUNNABLE_SAMPLES
        if threads == 1:  # a normal run is not flagged: one thread per pool, nothing beside the step
            assert ranking.oversubscribed(entry) is None, sample
        # At 2 threads on 2 CPUs a second library's pool that still spins after the case's set-up
        # (OpenBLAS's, beside torch's) can keep 3 threads runnable: the flag then says so, truly.


class Spin:
    """A test-only step: 1 ms of Python on the calling thread, with `busy` threads hashing meanwhile."""

    def __init__(self, busy):
        self.busy, self.done, self.threads = busy, threading.Event(), []

    def step(self, x, y):
        if not self.threads:
            data = os.urandom(1 << 20)  # hashlib lets go of the GIL on blocks this large: the threads run at once
            self.threads = [threading.Thread(target=self.hash, args=(data,)) for _ in range(self.busy)]
            for thread in self.threads:
                thread.start()
        end = time.perf_counter() + 1e-3
        while time.perf_counter() < end:
            pass
        return 1.0

    def hash(self, data):
        while not self.done.is_set():
            hashlib.sha256(data).digest()

    def close(self):
        self.done.set()
        for thread in self.threads:
            thread.join()


def sampled(busy):
    """An entry of timed steps with `busy` hashing threads beside the step."""
    net, extra = Spin(busy), {}
    try:
        timing.timed_steps(net, None, None, 100_000, budget_s=1.0, extra=extra)
    finally:
        net.close()
    assert not [thread for thread in threading.enumerate() if thread.name == "sidebyside-runnable"]
    return {"implementation": f"{busy} busy", "threads": 1, "extra": extra}


def test_more_runnable_threads_than_cpus_is_flagged_and_a_normal_run_is_not():
    from sidebyside.summary import notes

    cpus = len(os.sched_getaffinity(0))
    normal, forced = sampled(0), sampled(2 * cpus)
    assert normal["extra"]["runnable_threads"]["cpus"] == cpus and normal["extra"]["runnable_threads"]["samples"] >= ranking.MIN_RUNNABLE_SAMPLES
    assert ranking.oversubscribed(normal) is None and normal["extra"]["runnable_threads"]["median"] >= 1  # the step
    sample = forced["extra"]["runnable_threads"]
    assert sample["median"] > cpus, sample
    assert ranking.oversubscribed(forced) == f"{sample['median']:g} runnable threads on {cpus} CPU" + (
        "s" if cpus > 1 else "")
    lines = notes([normal, forced], [])
    assert lines == [f"  ! oversubscribed: {2 * cpus} busy ({ranking.oversubscribed(forced)})"]


def test_a_missing_or_malformed_sample_is_no_flag():
    for extra in ({}, {"runnable_threads": None}, {"runnable_threads": "5"}, {"runnable_threads": {"median": 3}},
                  {"threads_read_back": [2]},
                  {"runnable_threads": {"median": 3, "cpus": 2, "samples": ranking.MIN_RUNNABLE_SAMPLES - 1}}):
        entry = {"threads": 2, "extra": extra}
        assert ranking.oversubscribed(entry) is None and ranking.pools_off(entry) == []
    assert ranking.oversubscribed({"extra": None}) is None and ranking.pools_off({"threads": 2}) == []
