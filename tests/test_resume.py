"""A run interrupted by Ctrl-C and resumed gives the entries an uninterrupted run gives.

The interruption is a real SIGINT to the `sidebyside run` process, sent at a
fixed point so the test does not race the run: right after the first record
of round 2 is added to its entry. One entry then holds two rounds (the
second from a process the interruption cut short), the other one round; the
resumed run owes them two and three more.
"""

import csv
import io
import json
import math
import os
import statistics
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.test_cli import available, load, sidebyside

ROUNDS = 4  # compare's fewest rounds a side for a verdict
CONFIG = ["--workload", "two_layer", "--device", "cpu", "--quick", "--size", "8,16,8,2", "--threads", "1",
          "--rounds", str(ROUNDS), "--no-report"]
# `sidebyside run` that sends itself SIGINT once the first record of a later round has landed in its entry.
INTERRUPTED = """
import os, signal, sys
from sidebyside import document
from sidebyside.cli import main

add_round = document.Run.add_round

def add_round_then_interrupt(self, entry, record):
    added = add_round(self, entry, record)
    os.kill(os.getpid(), signal.SIGINT)
    return added

document.Run.add_round = add_round_then_interrupt
sys.exit(main(sys.argv[1:]))
"""


def shape(value):
    """The keys of a value, recursively, with the kinds of what they hold: lists by the kinds of their items."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted({json.dumps(shape(item), sort_keys=True) for item in value})
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return type(value).__name__
    return "number"


def differences(first, second, path="entry"):
    """Where two shapes differ, as paths: "entry.step_time.canary"."""
    if isinstance(first, dict) and isinstance(second, dict):
        return [difference for key in sorted(first.keys() | second.keys())
                for difference in differences(first.get(key), second.get(key), f"{path}.{key}")]
    return [] if first == second else [f"{path}: {first} against {second}"]


def check_pooled(entry):
    """The entry's figures are those of all its rounds: the median of the round medians, the spread of every step."""
    timing = entry["step_time"]
    assert len(timing["round_medians"]) == len(timing["canary"]) == ROUNDS
    assert all(canary is not None for canary in timing["canary"]), "every round has its canary"
    assert timing["median"] == statistics.median(timing["round_medians"])
    samples = timing["samples"]
    assert timing["rounds"] == len(samples)
    for field, value in (("min", min(samples)), ("max", max(samples)), ("mean", statistics.fmean(samples))):
        assert math.isclose(timing[field], value, rel_tol=1e-3), field  # samples keep four digits
    assert math.isclose(entry["gflops"], entry["flops_per_step"] / timing["median"] / 1e9, rel_tol=1e-9)


@pytest.mark.e2e
def test_interrupted_and_resumed_run_has_the_entries_of_an_uninterrupted_one(tmp_path):
    names = available("numpy_manual", "torch_manual")
    impls = [argument for name in names for argument in ("--impl", name)]
    resumed, whole = tmp_path / "resumed", tmp_path / "whole"
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The uninterrupted run goes on beside the other: most of a run this small is starting and measuring the peak.
    running = subprocess.Popen([sys.executable, "-m", "sidebyside.cli", "run", *CONFIG, *impls, "--out", str(whole)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=environment)
    interrupted = subprocess.run([sys.executable, "-c", INTERRUPTED, "run", *CONFIG, *impls, "--out", str(resumed)],
                                 capture_output=True, text=True, cwd=ROOT, env=environment, timeout=300)
    _, stderr = running.communicate(timeout=300)
    assert running.returncode == 0, stderr
    assert interrupted.returncode == 130, interrupted.stderr
    assert "Traceback" not in interrupted.stderr and f"--resume {resumed}" in interrupted.stderr
    kept = {entry["implementation"]: entry for entry in load(resumed)["results"]}
    assert sorted(kept) == sorted(names)
    assert sorted(len(entry["step_time"]["round_medians"]) for entry in kept.values()) == [1] * (len(names) - 1) + [2]

    result = sidebyside("run", "--resume", str(resumed))
    assert result.returncode == 0, result.stderr

    finished = {entry["implementation"]: entry for entry in load(resumed)["results"]}
    uninterrupted = {entry["implementation"]: entry for entry in load(whole)["results"]}
    assert sorted(finished) == sorted(uninterrupted) == sorted(names)
    for name in names:
        assert finished[name]["status"] == uninterrupted[name]["status"] == "ok", name
        assert not differences(shape(finished[name]), shape(uninterrupted[name]), name)
        check_pooled(finished[name])
        check_pooled(uninterrupted[name])
        before = kept[name]["step_time"]
        after = finished[name]["step_time"]
        assert after["round_medians"][:len(before["round_medians"])] == before["round_medians"], "kept as measured"
        assert after["samples"][:len(before["samples"])] == before["samples"]

    compared = sidebyside("compare", str(resumed), str(whole), "--format", "csv")
    assert compared.returncode == 0, compared.stderr
    verdicts = [row["verdict"] for row in csv.DictReader(io.StringIO(compared.stdout))]
    assert len(verdicts) == len(names)
    assert not [verdict for verdict in verdicts if verdict.startswith("n/a")], verdicts
