"""Older results.json files are migrated once, on reading (sidebyside/migrate.py); the rest reads the current schema.

A schema-1 document holding every layout schema 1 allowed and schema 2 does
not is paired with the schema-2 document the writer writes for the same run:
the migration must turn the first into the second, and the report and the
comparison must come out the same from either file.
"""

import copy
import json
import re

import pytest

from sidebyside.migrate import migrate
from sidebyside.report.compare import compare_files
from sidebyside.results import SCHEMA_VERSION, ResultsError, load_results, parse_results
from tests.test_report_data import make_document, report_of, write


def schema_1_pair():
    """(a schema-1 document, the schema-2 document the writer writes for the same run)."""
    new = make_document("old-box", digits=False)
    old = copy.deepcopy(new)
    old["schema"] = 1
    # One peak per device, the float32 product's; float64 entries were shared against it.
    old["machine"]["peak_gflops"] = {"cpu": 400.0, "cuda": None}
    new["machine"]["peak_gflops"] = {"cpu": {"float32": 400.0, "float64": None}, "cuda": None}
    detail = old["machine"]["peak_detail"]
    detail.update(start={"cpu": 390.0, "cuda": None}, end={"cpu": 400.0, "cuda": None},
                  spread={"cpu": 0.025, "cuda": None})
    new["machine"]["peak_detail"].update(start={"cpu": {"float32": 390.0, "float64": None}, "cuda": None},
                                         end={"cpu": {"float32": 400.0, "float64": None}, "cuda": None},
                                         spread={"cpu": {"float32": 0.025, "float64": 0.025}, "cuda": None})
    for before, after in zip(old["results"], new["results"]):
        if before["device"] == "cpu" and before["dtype"] == "float64" and before["gflops"]:
            before["peak_fraction"], after["peak_fraction"] = before["gflops"] / 400.0, None
    # Null where an object or an array belongs.
    old["machine"].update(env=None, blas=None)
    new["machine"].update(env={}, blas=[])
    # "ok" with agrees false, from before the "disagrees" status.
    index = next(i for i, entry in enumerate(old["results"]) if entry["agrees"] and entry["dtype"] == "float32")
    old["results"][index].update(agrees=False)
    new["results"][index].update(agrees=False, status="disagrees",
                                 reason="loss differs from the float64 reference by 3.0e-07 relative "
                                        "(tolerance 1.0e-05)")
    # extra.compile, the older name of extra.jit_compile.
    old["results"][0]["extra"]["compile"] = "True"
    new["results"][0]["extra"]["jit_compile"] = "True"
    return old, new


def test_a_schema_1_document_becomes_what_the_writer_writes_now():
    old, new = schema_1_pair()
    untouched = copy.deepcopy(old)
    assert migrate(old) == {**new, "migrated_from": 1}
    assert old == untouched  # the input is left as it was


def test_a_schema_1_file_loads_migrated(tmp_path):
    old, new = schema_1_pair()
    read_old = load_results(write(tmp_path, "old.json", old))
    read_new = load_results(write(tmp_path, "new.json", new))
    assert read_old["schema"] == SCHEMA_VERSION and read_old["migrated_from"] == 1
    assert read_new["migrated_from"] is None
    assert {**read_old, "source": None, "migrated_from": None} == {**read_new, "source": None}
    assert read_old["results"][0]["extra"]["jit_compile"] == "True"


def test_a_schema_1_file_renders_and_compares_as_its_schema_2_twin(tmp_path):
    old, new = schema_1_pair()
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    reports = [report_of(tmp_path / side, "results", document) for side, document in (("old", old), ("new", new))]
    markdown = [re.sub(r"\d{4}-\d\d-\d\dT[\d:]+\+00:00", "TIME", report["markdown"]) for report in reports]
    assert markdown[0].replace("/old/", "/new/") == markdown[1]  # the same but for when each was built
    tables = [{path.name: path.read_text().replace("/old/", "/new/") for path in report["out"].glob("*.csv")}
              for report in reports]
    assert "summary.csv" in tables[0] and tables[0] == tables[1]
    assert "disagrees" in reports[0]["markdown"]
    other = write(tmp_path, "other.json", make_document("old-box", digits=False, speed=0.8))
    before = [compare_files(write(tmp_path, f"{side}.json", document), other).frame
              for side, document in (("old", old), ("new", new))]
    assert len(before[0]) and before[0].equals(before[1])


def test_migrate_is_idempotent_on_the_current_schema():
    current = make_document()
    assert migrate(current) is current
    migrated = migrate(schema_1_pair()[0])
    assert migrate(copy.deepcopy(migrated)) == migrated


def test_the_model_reads_the_current_schema_only():
    """The older layouts are read in migrate.py alone: in a schema-2 file they are errors."""
    document = make_document()
    document["machine"]["peak_gflops"]["cpu"] = 400.0
    with pytest.raises(ResultsError, match=r"^r\.json: field machine\.peak_gflops\.cpu: must be an object"):
        parse_results(json.dumps(document), "r.json")
    document = make_document()
    document["machine"]["blas"] = None
    with pytest.raises(ResultsError, match=r"^r\.json: field machine\.blas: must be an array, got null$"):
        parse_results(json.dumps(document), "r.json")


def test_a_newer_schema_is_a_one_line_error(tmp_path):
    path = write(tmp_path, "results.json", {**make_document(), "schema": SCHEMA_VERSION + 1})
    with pytest.raises(ResultsError) as caught:
        load_results(path)
    assert str(caught.value) == (f"{path}: field schema: written by a newer sidebyside (schema "
                                 f"{SCHEMA_VERSION + 1}); this version reads schema {SCHEMA_VERSION}")
