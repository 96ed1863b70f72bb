"""The one model of results.json (sidebyside/results.py): its writer, its JSON Schema, its derived figures.

The reader's checks of untrusted files are in tests/test_results_schema.py.
Here: the published JSON Schema is what the model generates (so it cannot
go stale), `sidebyside schema` prints it, a real quick run's results.json
passes it under Draft 2020-12 and hostile edits do not, the runner refuses
to write a document the model rejects, every writer's entry has the
model's keys, and the derived figures have one definition.
"""

import copy
import json

import jsonschema
import pytest

from sidebyside import results, timing
from sidebyside.config import RunConfig
from sidebyside.results import ResultsError
from tests.conftest import ROOT
from tests.test_cli import QUICK, sidebyside
from tests.test_report_data import make_document


def validator():
    return jsonschema.Draft202012Validator(json.loads(results.SCHEMA_FILE.read_text()))


# ----------------------------------------------------------------------------
# The published JSON Schema
# ----------------------------------------------------------------------------


def test_committed_schema_is_what_the_model_generates():
    """If this fails, the model changed: regenerate with `python -m sidebyside.results` and commit the file."""
    assert results.SCHEMA_FILE == ROOT / "sidebyside" / "results.schema.json"
    assert results.SCHEMA_FILE.read_text() == results.json_schema_text()


def test_schema_is_a_valid_draft_2020_12_schema():
    schema = json.loads(results.SCHEMA_FILE.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_regenerating_writes_the_same_file(tmp_path):
    path = results.write_json_schema(tmp_path / "schema.json")
    assert path.read_text() == results.SCHEMA_FILE.read_text()


def test_schema_command_prints_the_schema():
    result = sidebyside("schema")
    assert result.returncode == 0, result.stderr
    assert result.stdout == results.SCHEMA_FILE.read_text()
    assert json.loads(result.stdout)["title"] == "sidebyside results.json"


def test_synthetic_documents_pass_the_schema():
    check = validator()
    for document in (make_document(), make_document(gpu=True)):
        check.validate(document)


HOSTILE = [
    ("negative median", lambda d: first_timed(d)["step_time"].update(median=-0.001)),
    ("zero median", lambda d: first_timed(d)["step_time"].update(median=0)),
    ("status great", lambda d: d["results"][0].update(status="great")),
    ("size N=0", lambda d: d["results"][0]["size"].update(N=0)),
    ("size N=1.5", lambda d: d["results"][0]["size"].update(N=1.5)),
    ("agrees yes", lambda d: d["results"][0].update(agrees="yes")),
    ("time as text", lambda d: d["results"][0].update(first_step_s="0.1")),
    ("no device", lambda d: d["results"][0].pop("device")),
    ("empty implementation", lambda d: d["results"][0].update(implementation="")),
    ("accuracy above 1", lambda d: d["results"][0].update(test_accuracy=1.5)),
    ("newer schema", lambda d: d.update(schema=results.SCHEMA_VERSION + 1)),
    ("no results", lambda d: d.pop("results")),
    ("negative peak", lambda d: d["machine"].update(peak_gflops={"cpu": {"float32": -1.0}})),
]


def first_timed(document):
    return next(entry for entry in document["results"] if entry["step_time"])


@pytest.mark.parametrize("name, mutate", HOSTILE, ids=[name for name, _ in HOSTILE])
def test_hostile_edits_fail_the_schema_and_the_model(name, mutate):
    document = make_document()
    mutate(document)
    with pytest.raises(jsonschema.ValidationError):
        validator().validate(document)
    with pytest.raises(ResultsError):
        results.parse_results(json.dumps(document), "hostile.json")


# ----------------------------------------------------------------------------
# A real quick run: what the writer writes passes the published schema
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick") / "run"
    result = sidebyside(*QUICK, "--impl", "numpy_manual", "--device", "cpu", "--dtype", "float32", "--no-sweep",
                        "--out", str(out))
    assert result.returncode == 0, result.stderr
    return json.loads((out / "results.json").read_text())


def test_quick_run_passes_the_json_schema(quick_run):
    jsonschema.validate(quick_run, json.loads(results.SCHEMA_FILE.read_text()),
                        cls=jsonschema.Draft202012Validator)
    (entry,) = quick_run["results"]
    assert entry["status"] == "ok" and entry["step_time"]["median"] > 0
    # Every key of the model is written, none missing.
    assert set(results.Entry.model_fields) <= set(entry)


@pytest.mark.parametrize("mutate", [
    lambda d: d["results"][0]["step_time"].update(median=-1e-4),
    lambda d: d["results"][0].update(status="great"),
    lambda d: d["results"][0]["size"].update(N=0),
], ids=["negative median", "status great", "size N=0"])
def test_quick_run_mutated_fails_the_json_schema(quick_run, mutate):
    document = copy.deepcopy(quick_run)
    mutate(document)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json.loads(results.SCHEMA_FILE.read_text()),
                            cls=jsonschema.Draft202012Validator)


# ----------------------------------------------------------------------------
# The writer
# ----------------------------------------------------------------------------


def writer(tmp_path):
    from sidebyside.document import Run

    run = Run(RunConfig(), tmp_path / "out")
    run.check_writable()
    run.start_document({"name": "box", "peak_gflops": {"cpu": {"float32": 100.0, "float64": 50.0}, "cuda": None}})
    return run


def good_entry():
    from sidebyside import implementations
    from sidebyside.worker import base_entry

    task = {"workload": "two_layer", "device": "cpu", "dtype": "float32",
            "size": {"N": 64, "D_in": 1000, "H": 100, "D_out": 10}}
    entry = base_entry(implementations.spec("numpy_manual"), task, 1)
    entry.update(step_time={"median": 2e-4, "iqr": 1e-6, "rounds": 10}, flops_per_step=26_240_000)
    return entry


def test_runner_writes_a_document_the_model_accepts(tmp_path):
    run = writer(tmp_path)
    run.document["results"].append(good_entry())
    run.save()
    document = results.load_results(run.results_path)
    assert document["results"][0]["implementation"] == "numpy_manual"


@pytest.mark.parametrize("change, field", [
    ({"status": "great"}, "results[0].status"),
    ({"first_step_s": -1.0}, "results[0].first_step_s"),
    ({"size": {"N": 0}}, "results[0].size.N"),
    ({"gflops": float("nan")}, "results[0].gflops"),
])
def test_runner_refuses_to_write_what_the_model_rejects(tmp_path, change, field):
    """A writer bug fails loudly where it is made, and leaves the last good file in place."""
    run = writer(tmp_path)
    run.save()
    before = run.results_path.read_text()
    entry = good_entry()
    entry.update(change)
    run.document["results"].append(entry)
    with pytest.raises(ResultsError) as caught:
        run.save()
    assert f"field {field}: " in str(caught.value)
    assert run.results_path.read_text() == before


def test_base_entry_has_every_key_of_the_model():
    assert list(good_entry()) == list(results.Entry.model_fields)
    assert results.new_entry()["losses"] is not results.new_entry()["losses"]  # fresh lists, not shared


# ----------------------------------------------------------------------------
# Derived figures: one definition
# ----------------------------------------------------------------------------


def test_derived_figures():
    assert results.gflops(2e9, 0.5) == pytest.approx(4.0)
    assert results.gflops(None, 0.5) is None and results.gflops(2e9, 0) is None and results.gflops(2e9, None) is None
    assert results.peak_fraction(40.0, 200.0) == pytest.approx(0.2)
    assert results.peak_fraction(40.0, None) is None and results.peak_fraction(None, 200.0) is None
    assert results.is_unstable({"median": 1.0, "iqr": 0.11}) is True
    assert results.is_unstable({"median": 1.0, "iqr": 0.10}) is False
    assert results.is_unstable({"median": 1.0, "iqr": None}) is False and results.is_unstable(None) is False
    assert timing.UNSTABLE_IQR is results.UNSTABLE_IQR == 0.10 and timing.is_unstable is results.is_unstable


def test_readme_points_to_the_schema():
    readme = (ROOT / "README.md").read_text()
    assert "`sidebyside schema`" in readme and "sidebyside/results.schema.json" in readme
    assert "sidebyside/results.py" in readme
