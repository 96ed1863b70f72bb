"""Nothing unchecked is ranked (issue 30, item 3).

A sweep size, timed within a budget, is judged on its first
SWEEP_AGREEMENT_STEPS losses against the float64 reference of those steps
(same size, learning rate, seed and data); one that differs reads
"disagrees" and is never ranked. Rows read from pytest-benchmark JSON were
never checked: they read "unchecked", keep their time, and are never ranked
nor named fastest.
"""

import copy
import io
import json

import pytest
from rich.console import Console

from sidebyside import implementations, ranking
from sidebyside.config import RunConfig
from sidebyside.workloads.two_layer.tasks import LEARNING_RATE, sweep_learning_rate
from sidebyside.report import findings
from sidebyside.report.sections import not_ok, summary, timing
from sidebyside.report.merge import merge
from sidebyside.results import parse_results
from sidebyside.document import Run
from sidebyside.summary import print_summary
from sidebyside.worker import base_entry
from sidebyside.workloads.two_layer import SWEEP_AGREEMENT_STEPS, WORKLOAD, task
from tests.test_report_data import make_benchmark_json

SIZE = (128, 500, 200, 10)  # a sweep size small enough to train in milliseconds
# Budget 0: the timed run stops after min_timed_steps, so it holds more losses than the check takes.
CONFIG = RunConfig(options={"sizes": ((64, 1000, 100, 10),), "sweep": (SIZE,)}, sweep_budget_s=0.0, min_timed_steps=30)
UNCHECKED_REASON = "pytest-benchmark JSON: agreement not checked"


def new_run(tmp_path):
    run = Run(CONFIG, tmp_path / "out")
    run.start_document({"name": "box", "peak_gflops": {"cpu": {"float32": 100.0, "float64": 50.0}, "cuda": None}})
    return run


def sweep_task(dtype):
    planned = task(CONFIG, "cpu", dtype, SIZE, full=False)
    assert "budget_s" in planned  # a sweep size, not a full one
    return planned


@pytest.fixture(scope="module", params=["float32", "float64"])
def measured(request):
    """numpy_manual measured at the sweep size as the worker measures it (before the runner judges it)."""
    spec = implementations.spec("numpy_manual")
    planned = sweep_task(request.param)
    entry = base_entry(spec, planned, 1)
    WORKLOAD.measure(spec, planned, entry, 1)
    return planned, entry


def judged(run, planned, entry):
    return run.finish_entry(copy.deepcopy(entry), planned)


def test_a_correct_sweep_size_agrees_on_its_first_steps(measured, tmp_path):
    planned, entry = measured
    assert len(entry["losses"]) > SWEEP_AGREEMENT_STEPS  # the timed run keeps its first losses
    run = new_run(tmp_path)
    result = judged(run, planned, entry)
    assert result["status"] == "ok" and result["agrees"] is True
    assert result["agreement"] is not None and result["agreement"] <= result["agreement_tolerance"]
    assert result["extra"]["agreement_steps"] == SWEEP_AGREEMENT_STEPS
    assert ranking.rankable(result)
    # The reference: the sweep's own learning rate, recorded once, its first steps only.
    [reference] = run.document["references"]
    assert reference["learning_rate"] == planned["learning_rate"] == sweep_learning_rate(LEARNING_RATE, SIZE)
    assert planned["learning_rate"] != LEARNING_RATE
    assert len(reference["losses"]) == SWEEP_AGREEMENT_STEPS
    judged(run, planned, entry)
    assert len(run.document["references"]) == 1  # once per key


def test_a_sweep_size_with_a_wrong_step_disagrees_and_is_never_ranked(measured, tmp_path):
    planned, entry = measured
    run = new_run(tmp_path)
    right = judged(run, planned, entry)
    wrong = copy.deepcopy(entry)
    wrong["losses"][5:] = [loss * 1.01 for loss in wrong["losses"][5:]]  # a wrong kernel from step 5 on
    wrong["step_time"] = {**wrong["step_time"], "median": wrong["step_time"]["median"] / 10, "iqr": 0.0}
    wrong = judged(run, planned, wrong)
    assert wrong["agrees"] is False and wrong["status"] == "disagrees"
    assert wrong["reason"].startswith("loss differs from the float64 reference")
    assert not ranking.rankable(wrong)
    assert [item.entry for item in ranking.rank([e for e in (wrong, right) if ranking.rankable(e)])] == [right]


def test_a_sweep_size_that_timed_fewer_steps_is_judged_on_all_of_them(measured, tmp_path):
    planned, entry = measured
    short = copy.deepcopy(entry)
    short["losses"] = short["losses"][:9]
    result = judged(new_run(tmp_path), planned, short)
    assert result["agrees"] is True and result["extra"]["agreement_steps"] == 9
    short["losses"][8] *= 1.01  # the last of them is checked too
    assert judged(new_run(tmp_path), planned, short)["status"] == "disagrees"


def benchmark_document():
    return parse_results(json.dumps(make_benchmark_json()), "bench.json")


def test_pytest_benchmark_rows_are_unchecked_and_never_ranked():
    entries = benchmark_document()["results"]
    assert entries and all(entry["status"] == "unchecked" and entry["reason"] == UNCHECKED_REASON
                           for entry in entries)
    assert all(ranking.median(entry) for entry in entries)  # timed all the same
    assert not any(ranking.rankable(entry) for entry in entries)
    claimed = make_benchmark_json()
    for benchmark in claimed["benchmarks"]:
        benchmark["extra_info"]["status"] = "ok"  # a file that says so is not checked either
    assert {e["status"] for e in parse_results(json.dumps(claimed), "bench.json")["results"]} == {"unchecked"}


def test_the_report_shows_unchecked_rows_with_their_time_and_no_rank():
    collection = merge([benchmark_document()])
    table = summary.summary_table(collection, {})
    assert list(table.data["status"]) == ["unchecked", "unchecked"]
    assert table.data["rank"].isna().all() and table.data["ratio_to_fastest"].isna().all()
    display = table.display
    assert list(display["Step (median)"]) == ["200 µs", "400 µs"]
    assert list(display["vs fastest"]) == ["not ranked", "not ranked"]
    assert all(f"unchecked: {UNCHECKED_REASON}" in note for note in display["Notes"])
    assert list(timing.timing_table(collection).display["Median"]) == [
        f"200 µs; unchecked: {UNCHECKED_REASON}", f"400 µs; unchecked: {UNCHECKED_REASON}"]
    assert findings.choice_table(collection).data.empty  # nobody named fastest
    assert len(not_ok.status_table(collection).data) == 2


def test_the_console_shows_unchecked_rows_with_their_time_and_no_rank():
    stream = io.StringIO()
    print_summary(benchmark_document(), Console(file=stream, width=250))
    rows = [line for line in stream.getvalue().splitlines() if "_manual" in line]
    assert len(rows) == 2
    for row, micros in zip(rows, ("200", "400")):
        cells = [cell.strip() for cell in row.split("│")]
        assert cells[2] == "—" and cells[3] == micros  # no rank, its time
        assert f"unchecked: {UNCHECKED_REASON}" in row
    assert "fastest" not in stream.getvalue()
