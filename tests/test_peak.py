"""The measured matmul peak: its shape, how two measurements combine, and that it is a peak.

One real measurement runs once for the module, through the same entry point
the runner uses (`python -m sidebyside.peak THREADS TF32` in a subprocess);
the tests that read it are marked slow (importing torch and jax alone takes
seconds); the others use hand-made inputs and take well under a second.
"""

import json
import subprocess
import sys
import time
import timeit

import numpy as np
import pytest

from sidebyside import fairness, peak
from tests.conftest import ROOT

THREADS = fairness.default_threads()


@pytest.fixture(scope="module")
def measured():
    """One `python -m sidebyside.peak` run: its stdout and the JSON of its last line."""
    result = subprocess.run([sys.executable, "-m", "sidebyside.peak", str(THREADS), "0"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, json.loads(result.stdout.strip().splitlines()[-1])


def independent_best_gflops(size, seconds=0.6):
    """An oracle made here, not in sidebyside.peak: numpy's float32 `a @ b` under
    the same thread count, best of as many repeats as fit in `seconds`."""
    from threadpoolctl import threadpool_limits

    generator = np.random.default_rng(1)
    a, b = (generator.random((size, size), dtype=np.float32) for _ in range(2))
    with threadpool_limits(limits=THREADS):
        one = timeit.timeit(lambda: a @ b, number=1)  # also the warm-up
        best = min(timeit.repeat(lambda: a @ b, number=1, repeat=max(3, int(seconds / one))))
    return 2 * size**3 / best / 1e9


@pytest.mark.e2e  # the measurement imports torch and jax: over 10 s on 2 shared cores
def test_entry_point_prints_one_json_line(measured):
    stdout, _ = measured
    lines = stdout.strip().splitlines()
    assert len(lines) == 1
    assert set(json.loads(lines[0])) == {"peak_gflops", "peak_detail"}


@pytest.mark.e2e  # the measurement imports torch and jax: over 10 s on 2 shared cores
def test_shape_has_both_dtypes_and_serializes(measured):
    _, document = measured
    assert json.loads(json.dumps(document)) == document
    cpu = document["peak_gflops"]["cpu"]
    assert set(cpu) == {"float32", "float64"}
    assert all(isinstance(value, float) and value > 0 for value in cpu.values())
    # A float64 lane is twice as wide: no CPU multiplies float64 faster.
    assert cpu["float64"] < cpu["float32"]
    detail = document["peak_detail"]
    assert detail["threads"] == THREADS and detail["tf32"] is False
    assert detail["cpu"]["sizes"] == list(peak.SIZES["cpu"])
    for dtype in peak.DTYPES:
        # The headline is the best entry of the per-library table.
        best = detail["cpu"]["best"][dtype]
        assert detail["cpu"]["libraries"][best["library"]][dtype][str(best["size"])]["gflops"] == cpu[dtype]
        rows = [row for library in detail["cpu"]["libraries"].values() for row in library[dtype].values()]
        assert max(row["gflops"] or 0 for row in rows) == cpu[dtype]
        assert all(row["repeats"] >= 1 or row.get("note") for row in rows)  # measured, or says why not
    assert "numpy" in detail["cpu"]["libraries"]
    if document["peak_gflops"]["cuda"] is not None:
        assert set(document["peak_gflops"]["cuda"]) == {"float32", "float64"}


@pytest.mark.e2e  # the measurement imports torch and jax: over 10 s on 2 shared cores
def test_recorded_peak_is_not_beaten_by_a_plain_matmul(measured):
    # Measured right after the recorded peak: if a plain best-of numpy product
    # beats it by more than 15 %, the "peak" was not one.
    _, document = measured
    recorded = document["peak_gflops"]["cpu"]["float32"]
    oracle = max(independent_best_gflops(1024), independent_best_gflops(2048, seconds=1.0))
    assert recorded >= 0.85 * oracle, f"recorded {recorded:.1f} GFLOP/s, a plain numpy matmul did {oracle:.1f}"


def test_theoretical_peak_of_this_machine_is_left_out_with_its_readable_factors():
    # The count of FMA units is never readable (tests/test_peak_share.py checks the rule with made-up flags).
    theoretical = peak.theoretical_peak(THREADS)
    assert theoretical["float32"] is None and theoretical["float64"] is None and theoretical["why"]
    assert 1 <= theoretical["cores"] <= THREADS


def test_combine_keeps_the_higher_and_records_the_spread():
    start = {"peak_gflops": {"cpu": {"float32": 100.0, "float64": 50.0}, "cuda": None},
             "peak_detail": {"theoretical": {"float32": 150.0}, "cpu": {"marker": "start"}}}
    end = {"peak_gflops": {"cpu": {"float32": 80.0, "float64": 60.0}, "cuda": None},
           "peak_detail": {"theoretical": {"float32": 150.0}, "cpu": {"marker": "end"}}}
    combined = peak.combine(start, end)
    assert combined["peak_gflops"] == {"cpu": {"float32": 100.0, "float64": 60.0}, "cuda": None}
    detail = combined["peak_detail"]
    assert detail["start"] == start["peak_gflops"] and detail["end"] == end["peak_gflops"]
    assert detail["spread"]["cpu"]["float32"] == pytest.approx(20 / 100)
    assert detail["spread"]["cpu"]["float64"] == pytest.approx(10 / 60)
    assert detail["spread"]["cuda"] is None
    assert detail["cpu"] == {"marker": "start"} and detail["detail_from"] == "start"
    assert detail["theoretical"] == {"float32": 150.0}
    json.dumps(combined)


def test_combine_survives_a_failed_measurement():
    # The runner records {"cpu": None, "cuda": None} when the peak subprocess fails.
    failed = {"peak_gflops": {"cpu": None, "cuda": None}, "peak_detail": {"error": "killed"}}
    good = {"peak_gflops": {"cpu": {"float32": 90.0, "float64": 45.0},
                            "cuda": {"float32": 5e4, "float64": 2e4}}, "peak_detail": {"theoretical": None}}
    combined = peak.combine(failed, good)
    assert combined["peak_gflops"] == good["peak_gflops"]
    assert combined["peak_detail"]["spread"]["cpu"] == {"float32": None, "float64": None}
    assert combined["peak_detail"]["detail_from"] == "end"


def test_cases_interleave_keep_the_best_and_skip_sizes_too_slow():
    durations = iter([0.02] + [0.004] * 1000)  # one slow first product, then fast ones
    small = peak.Case("fake", "cpu", "float32", 64, lambda: time.sleep(next(durations)))
    # 16× the size is 4096× the work: predicted 0.004 s × 4096 / 2 ≈ 8 s, over MAX_PRODUCT_S.
    large = peak.Case("fake", "cpu", "float32", 1024, lambda: pytest.fail("too slow to run"), smaller=small)
    passes = peak.run_passes([small, large], budget_s=0.1)
    assert passes >= 2
    assert small.repeats > passes  # later passes repeat a fast case to fill a slice
    assert 0.004 <= small.best < 0.02  # the slow first product does not count
    assert small.gflops == pytest.approx(2 * 64**3 / small.best / 1e9)
    assert large.best is None and large.repeats == 0 and large.note.startswith("skipped")


def test_libraries_run_in_blocks_never_interleaved():
    # A library's spinning thread pool would slow the next library's product:
    # one library at a time, in two rounds, the second in reverse order.
    calls = []
    cases = [peak.Case(library, "cpu", dtype, 64, lambda library=library: calls.append(library))
             for library in ("numpy", "torch") for dtype in peak.DTYPES]
    passes = peak.run_rounds(cases, budget_s=0.05)
    blocks = [library for position, library in enumerate(calls) if position == 0 or calls[position - 1] != library]
    assert blocks == ["numpy", "torch", "numpy"]  # torch's two blocks meet in the middle
    assert passes["numpy"] >= 2 and passes["torch"] >= 2
    assert all(case.repeats >= 2 for case in cases)


def test_a_budget_spent_in_the_first_round_starts_no_second():
    """A block runs at least one pass: a budget a round overruns (a --quick run's) gets one round, not ROUNDS."""
    calls = []

    def slow(library):
        calls.append(library)
        time.sleep(0.02)

    cases = [peak.Case(library, "cpu", "float32", 64, lambda library=library: slow(library)) for library in ("numpy", "torch")]
    assert peak.run_rounds(cases, budget_s=0.0) == {"numpy": 1, "torch": 1}
    assert [library for position, library in enumerate(calls) if position == 0 or calls[position - 1] != library] == [
        "numpy", "torch"]


def test_a_failing_case_is_noted_not_raised():
    def out_of_memory():
        raise MemoryError("no room")

    case = peak.Case("fake", "cuda", "float64", 8192, out_of_memory)
    assert peak.run_passes([case], budget_s=0.0) == 1  # one pass always runs
    assert case.gflops is None and case.note.startswith("failed: MemoryError")


def test_bad_arguments_give_a_one_line_error():
    result = subprocess.run([sys.executable, "-m", "sidebyside.peak", "two"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["usage: python -m sidebyside.peak THREADS TF32(0|1) [BUDGET_S] [--wait]"]


@pytest.mark.e2e  # a peak process of its own, measuring three times
def test_a_waiting_process_measures_afresh_each_time_it_is_asked():
    # The runner's way: ready first, then one measurement per line, each
    # forgetting the last (its repeats start again), and exit when hung up.
    process = subprocess.Popen([sys.executable, "-m", "sidebyside.peak", "1", "0", "0.2", "--wait"], cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert json.loads(process.stdout.readline()) == {"ready": True}
        measured = []
        for _ in range(2):
            process.stdin.write("go\n")
            process.stdin.flush()
            measured.append(json.loads(process.stdout.readline()))
        process.stdin.close()
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
    repeats = [result["peak_detail"]["cpu"]["libraries"]["numpy"]["float32"]["256"]["repeats"] for result in measured]
    assert all(result["peak_gflops"]["cpu"]["float32"] > 0 for result in measured)
    assert repeats[1] < 2.5 * repeats[0]  # counted afresh, not added to the first
