"""The result-file loader: untrusted JSON in, a normalized document or one clear line out."""

import copy
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidebyside import results as schema
from sidebyside.results import ResultsError, load_results, parse_results
from tests.test_report_data import make_benchmark_json, make_document, write


def small_document():
    """A valid document small enough to mutate quickly: a few entries, short curves."""
    document = make_document(digits=True)
    document["results"] = [document["results"][index] for index in (0, 2, -5, -2, -1)]
    for entry in document["results"]:
        entry["losses"] = entry["losses"][:5]
    document["references"][0]["losses"] = document["references"][0]["losses"][:5]
    return document


def error_of(document, name="results.json"):
    with pytest.raises(ResultsError) as caught:
        parse_results(json.dumps(document), name)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{name}: ")
    return message


# ----------------------------------------------------------------------------
# Valid files
# ----------------------------------------------------------------------------


def test_valid_results_file_keeps_its_values(tmp_path):
    original = make_document(gpu=True)
    document = load_results(write(tmp_path, "results.json", original))
    assert document["schema"] == schema.SCHEMA_VERSION and document["format"] == "sidebyside"
    assert document["migrated_from"] is None
    assert document["machine"]["name"] == "ci-box"
    assert document["machine"]["peak_gflops"] == {"cpu": {"float32": 400.0, "float64": 200.0},
                                                "cuda": {"float32": 50000.0, "float64": 25000.0}}
    assert len(document["results"]) == len(original["results"])
    first, source = document["results"][0], original["results"][0]
    assert first["step_time"]["round_medians"] == source["step_time"]["round_medians"]
    assert first["cpu_utilization"] == source["cpu_utilization"] == 1.9
    assert first["step_time"]["median"] == source["step_time"]["median"]
    assert first["losses"] == source["losses"]
    diverged = next(entry for entry in document["results"] if entry["status"] == "diverged")
    assert diverged["diverged_at"] == 12 and diverged["losses"][-1] is None


def test_normalized_entries_have_every_key():
    minimal = {"schema": 1, "results": [{"workload": "two_layer", "implementation": "numpy_manual",
                                         "device": "cpu", "dtype": "float32", "status": "n/a"}]}
    document = parse_results(json.dumps(minimal), "minimal.json")
    entry = document["results"][0]
    for key in ("framework", "backend", "size", "reason", "losses", "step_time", "unstable", "first_step_s",
                "gflops", "peak_fraction", "agrees", "epochs", "test_accuracy", "extra"):
        assert key in entry
    assert entry["losses"] == [] and entry["step_time"] is None and entry["unstable"] is False
    # A machine without a name is named from its environment, else from its file.
    assert document["machine"]["name"] == "minimal.json"


def test_unknown_extra_keys_are_tolerated():
    document = make_document()
    document["future_field"] = {"anything": [1, 2]}
    document["results"][0]["new_measure"] = "later"
    document["machine"]["new_fact"] = 3
    assert len(parse_results(json.dumps(document))["results"]) == len(document["results"])


def test_unstable_is_derived_when_absent():
    document = small_document()
    entry = document["results"][0]
    del entry["unstable"]
    entry["step_time"]["iqr"] = entry["step_time"]["median"] * 0.5
    assert parse_results(json.dumps(document))["results"][0]["unstable"] is True


def test_disagrees_status_is_accepted_with_its_reason():
    document = small_document()
    reason = "loss differs from the float64 reference by 3.2e-03 relative (tolerance 1.0e-08)"
    document["results"][0].update(status="disagrees", reason=reason, agrees=False)
    entry = parse_results(json.dumps(document))["results"][0]
    assert entry["status"] == "disagrees" and entry["reason"] == reason


def test_old_ok_row_that_disagrees_reads_as_disagrees():
    """Files from before the status existed (schema 1) said "ok" with agrees false: the same verdict."""
    document = {**small_document(), "schema": 1}
    document["results"][0].update(status="ok", agrees=False, agreement=3.2e-3, agreement_tolerance=1e-8)
    document["results"][1].update(status="ok", agrees=False, agreement=None, reason="own words")
    entries = parse_results(json.dumps(document))["results"]
    assert entries[0]["status"] == "disagrees"
    assert entries[0]["reason"] == ("loss differs from the float64 reference by 3.2e-03 relative "
                                    "(tolerance 1.0e-08)")
    assert entries[1]["status"] == "disagrees" and entries[1]["reason"] == "own words"
    assert parse_results(json.dumps({**small_document(), "schema": 1}))["results"][0]["status"] == "ok"  # agrees


def test_old_flat_peaks_are_the_float32_peak():
    document = {**small_document(), "schema": 1}
    document["machine"]["peak_gflops"] = {"cpu": 400.0, "cuda": None}
    peaks = parse_results(json.dumps(document))["machine"]["peak_gflops"]
    assert peaks == {"cpu": {"float32": 400.0, "float64": None}, "cuda": None}
    assert schema.peak_for(peaks, "cpu", "float32") == 400.0
    assert schema.peak_for(peaks, "cpu", "float64") is None and schema.peak_for(peaks, "cuda", "float32") is None


def test_new_fields_are_optional():
    document = small_document()
    for entry in document["results"]:
        entry.pop("cpu_utilization", None)
        if entry["step_time"]:
            del entry["step_time"]["round_medians"]
    entries = parse_results(json.dumps(document))["results"]
    assert entries[0]["cpu_utilization"] is None and entries[0]["step_time"]["round_medians"] is None
    document["results"][0].update(time_to_target_s=1.5, target_accuracy=0.95)
    entry = parse_results(json.dumps(document))["results"][0]
    assert entry["time_to_target_s"] == 1.5 and entry["target_accuracy"] == 0.95


def test_pytest_benchmark_json_is_converted(tmp_path):
    document = load_results(write(tmp_path, "bench.json", make_benchmark_json()))
    machine = document["machine"]
    assert machine["name"] == "bench-box"
    assert machine["cpu"] == "AMD EPYC 7B13" and machine["cpu_count"] == 4
    assert machine["commit"] == "abc1234 (dirty)"
    assert document["tool"] == "pytest-benchmark 5.3.0"
    first = document["results"][0]
    assert first["implementation"] == "numpy_manual"
    assert first["status"] == "unchecked" and first["reason"] == "pytest-benchmark JSON: agreement not checked"
    assert first["size"] == {"N": 64, "D_in": 1000, "H": 100, "D_out": 10}
    assert first["step_time"]["median"] == pytest.approx(2e-4) and first["step_time"]["rounds"] == 1000
    # GFLOP/s and share of peak follow from flops_per_step, the median and the machine's peak.
    flops = 2 * 64 * 1000 * 100 + 2 * 64 * 100 * 10 + 2 * (2 * 64 * 100 * 10) + 2 * 64 * 1000 * 100
    assert first["gflops"] == pytest.approx(flops / 2e-4 / 1e9)
    assert first["peak_fraction"] == pytest.approx(first["gflops"] / 200.0)
    assert first["extra"]["pytest_name"] == "test_step[numpy_manual]"
    # The loop benchmark of the same case becomes its loop time, not a row of its own.
    assert len(document["results"]) == 2
    assert first["loop_time_s"] == pytest.approx(100 * 1.5e-4) and first["loop_steps"] == 100
    assert document["results"][1]["loop_time_s"] is None


def test_pytest_benchmark_loop_without_its_step_keeps_a_row():
    raw = make_benchmark_json()
    del raw["benchmarks"][0]
    entries = parse_results(json.dumps(raw), "bench.json")["results"]
    loop = next(entry for entry in entries if entry["implementation"] == "numpy_manual")
    assert loop["step_time"] is None and loop["loop_time_s"] == pytest.approx(0.015)
    assert loop["gflops"] == pytest.approx(loop["flops_per_step"] * 100 / 0.015 / 1e9)


def test_pytest_benchmark_without_extra_info_is_unknown_not_an_error():
    raw = make_benchmark_json()
    for benchmark in raw["benchmarks"]:
        benchmark["extra_info"] = {}
    document = parse_results(json.dumps(raw), "bench.json")
    entry = document["results"][0]
    assert entry["implementation"] == "test_step[numpy_manual]"
    assert entry["device"] == "unknown" and entry["dtype"] == "unknown" and entry["size"] == {}
    assert entry["gflops"] is None


def test_pytest_benchmark_bad_field_names_its_path():
    raw = make_benchmark_json()
    raw["benchmarks"][1]["stats"]["median"] = -1
    assert "field benchmarks[1].stats.median: must be a positive finite number" in error_of(raw, "bench.json")
    raw = make_benchmark_json()
    raw["benchmarks"][0]["extra_info"]["N"] = "64"
    assert "field benchmarks[0].extra_info.N: must be a positive integer" in error_of(raw, "bench.json")


# ----------------------------------------------------------------------------
# Bad files: one line naming the file and the field, never a traceback
# ----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ResultsError, match=r"nothing\.json: no such file$"):
        load_results(tmp_path / "nothing.json")


def test_folder_and_special_file(tmp_path):
    with pytest.raises(ResultsError, match="is a folder"):
        load_results(tmp_path)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(ResultsError, match="not a regular file"):
        load_results(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    path = write(tmp_path, "secret.json", make_document())
    path.chmod(0)
    with pytest.raises(ResultsError, match="cannot read: Permission denied"):
        load_results(path)


def test_absurdly_large_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as stream:
        stream.truncate(schema.MAX_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(ResultsError, match=r"huge\.json: 67108865 bytes is over the 64 MiB limit"):
        load_results(path)


def test_truncated_file(tmp_path):
    text = json.dumps(make_document())
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ResultsError, match=r"cut\.json: not valid JSON: .* \(the file ends early: truncated\?\)"):
        load_results(path)


@pytest.mark.parametrize("content, problem", [
    (b"", "empty file"),
    (b"results: [1, 2]", "not valid JSON"),
    (b"\xff\xfe{}", "not UTF-8 text"),
    (b"[" * 100_000, "nested too deeply"),
    (b"1" * 5000, "not usable JSON"),
    (b"import os; os.system('x')", "not valid JSON"),
])
def test_not_json(content, problem):
    with pytest.raises(ResultsError, match=problem):
        parse_results(content, "bad.json")


def test_pickle_is_never_unpickled():
    import pickle

    with pytest.raises(ResultsError, match="not"):
        parse_results(pickle.dumps(make_document()), "results.pkl")


def test_wrong_shape():
    assert error_of([1, 2, 3]) == "results.json: the top level must be a JSON object, got an array of 3 items"
    assert "field schema: missing" in error_of({"results": []})
    assert "field results: must be an array, got an object" in error_of({"schema": 1, "results": {}})
    assert "field results: missing" in error_of({"schema": 1})


def test_newer_schema():
    document = make_document()
    document["schema"] = schema.SCHEMA_VERSION + 1
    assert error_of(document) == (f"results.json: field schema: written by a newer sidebyside (schema "
                                  f"{schema.SCHEMA_VERSION + 1}); this version reads schema {schema.SCHEMA_VERSION}")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_timing_names_the_field(token):
    text = json.dumps(small_document()).replace('"median": ', f'"median": {token}, "was": ', 1)
    with pytest.raises(ResultsError) as caught:
        parse_results(text, "results.json")
    assert str(caught.value).startswith("results.json: field results[0].step_time.median: must be a positive")
    assert token in str(caught.value)


def test_overflowing_number_is_not_finite():
    text = json.dumps(small_document()).replace('"first_step_s": ', '"first_step_s": 1e999, "was": ', 1)
    with pytest.raises(ResultsError, match=r"field results\[0\]\.first_step_s: .*got inf"):
        parse_results(text, "results.json")


@pytest.mark.parametrize("mutate, field, problem", [
    (lambda d: d["results"][0]["step_time"].update(median=-0.001), "results[0].step_time.median", "positive"),
    (lambda d: d["results"][0]["step_time"].update(iqr=-1), "results[0].step_time.iqr", "non-negative"),
    (lambda d: d["results"][1].update(first_step_s=-2), "results[1].first_step_s", "non-negative"),
    (lambda d: d["results"][0].update(status="great"), "results[0].status",
     "must be one of ok, n/a, diverged, failed, disagrees"),
    (lambda d: d["results"][0]["size"].update(N=-1), "results[0].size.N", "a positive integer"),
    (lambda d: d["results"][0]["size"].update(D_in=0), "results[0].size.D_in", "a positive integer"),
    (lambda d: d["results"][0]["size"].update(N=True), "results[0].size.N", "a positive integer"),
    (lambda d: d["results"][0]["size"].update(H=1.5), "results[0].size.H", "a positive integer"),
    (lambda d: d["results"][0].update(implementation=""), "results[0].implementation", "non-empty string"),
    (lambda d: d["results"][0].update(implementation=7), "results[0].implementation", "non-empty string"),
    (lambda d: d["results"][0].update(implementation="x" * 1000), "results[0].implementation", "at most 200"),
    (lambda d: d["results"][0].pop("device"), "results[0].device", "missing"),
    (lambda d: d["results"][0].update(losses="many"), "results[0].losses", "must be an array"),
    (lambda d: d["results"][0]["losses"].__setitem__(2, "x"), "results[0].losses[2]", "finite number"),
    (lambda d: d["results"][0].update(agrees="yes"), "results[0].agrees", "true or false"),
    (lambda d: d["results"][3]["epochs"][0].update(test_accuracy=1.5), "results[3].epochs[0].test_accuracy",
     "at most 1.0"),
    (lambda d: d["machine"].update(cpu_count=-1), "machine.cpu_count", "positive integer"),
    (lambda d: d["machine"].update(gpu="H100"), "machine.gpu", "must be an object"),
    (lambda d: d["machine"]["peak_gflops"].update(cpu=0), "machine.peak_gflops.cpu", "must be an object"),
    (lambda d: d.update(schema=1) or d["machine"]["peak_gflops"].update(cpu=0), "machine.peak_gflops.cpu.float32",
     "positive"),  # schema 1's one peak per device, migrated, then checked
    (lambda d: d["machine"]["peak_gflops"]["cpu"].update(float64=-3), "machine.peak_gflops.cpu.float64",
     "positive"),
    (lambda d: d["machine"]["peak_gflops"].update(cpu="fast"), "machine.peak_gflops.cpu", "must be an object"),
    (lambda d: d["results"][0].update(cpu_utilization=-0.5), "results[0].cpu_utilization", "non-negative"),
    (lambda d: d["results"][0].update(cpu_utilization="2"), "results[0].cpu_utilization", "non-negative"),
    (lambda d: d["results"][0]["step_time"].update(round_medians=0.1), "results[0].step_time.round_medians",
     "must be an array"),
    (lambda d: d["results"][0]["step_time"]["round_medians"].__setitem__(1, 0),
     "results[0].step_time.round_medians[1]", "positive"),
    (lambda d: d["results"][0]["step_time"].update(round_medians=[1e-4] * 1001),
     "results[0].step_time.round_medians", "at most 1000 items"),
    (lambda d: d["results"][0]["step_time"].update(samples={"a": 1}), "results[0].step_time.samples",
     "must be an array"),
    (lambda d: d["results"][0]["step_time"].update(samples=[1e-4, -1e-4]), "results[0].step_time.samples[1]",
     "positive"),
    (lambda d: d["results"][0].update(target_accuracy=1.5), "results[0].target_accuracy", "at most 1.0"),
    (lambda d: d["results"][0].update(time_to_target_s=-1), "results[0].time_to_target_s", "non-negative"),
    (lambda d: d["machine"]["blas"][0].update(num_threads="2"), "machine.blas[0].num_threads", "integer"),
    (lambda d: d.update(references=[{"losses": [1, None, "x"]}]), "references[0].losses[2]", "finite number"),
])
def test_wrong_field_is_named(mutate, field, problem):
    document = small_document()
    mutate(document)
    message = error_of(document)
    assert f"field {field}: " in message and problem in message


def test_error_message_stays_on_one_line():
    document = small_document()
    document["results"][0]["status"] = "bad\nline\r<script>"
    message = error_of(document)
    assert "\\n" in message and "\n" not in message


# ----------------------------------------------------------------------------
# Fuzzing: nothing but ResultsError ever escapes the loader
# ----------------------------------------------------------------------------

JSON_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def paths_of(value, prefix=()):
    """Every path into a JSON value, as tuples of keys and indices."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths_of(item, prefix + (index,))


BASE = small_document()
PATHS = [path for path in paths_of(BASE) if path]


def mutated(path, replacement, delete):
    document = copy.deepcopy(BASE)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    return document


def assert_loads_or_fails_cleanly(text, name="fuzz.json"):
    try:
        document = parse_results(text, name)
    except ResultsError as error:
        assert "\n" not in str(error) and str(error).startswith(f"{name}: ")
        return None
    assert set(document) >= {"schema", "machine", "results", "references", "config"}
    return document


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES)
def test_fuzz_arbitrary_json(value):
    assert_loads_or_fails_cleanly(json.dumps(value))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), JSON_VALUES, st.booleans())
def test_fuzz_mutated_valid_documents(path, replacement, delete):
    document = assert_loads_or_fails_cleanly(json.dumps(mutated(path, replacement, delete)))
    if document is not None:
        # What the loader accepts, the report's tables must handle.
        from sidebyside.report.sections import agreement, environment, not_ok, summary, timing
        from sidebyside.report.findings import findings, measurement_warnings
        from sidebyside.report.merge import merge
        from sidebyside.workloads.digits.section import digits_table

        collection = merge([document])
        summary.summary_table(collection, {})
        timing.timing_table(collection)
        agreement.agreement_table(collection)
        environment.environment_table(collection)
        digits_table(collection, {})
        findings(collection, {})
        measurement_warnings(collection)
        not_ok.status_table(collection)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(data):
    assert_loads_or_fails_cleanly(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=len(json.dumps(BASE)) - 1))
def test_fuzz_truncation(length):
    assert_loads_or_fails_cleanly(json.dumps(BASE)[:length])
