"""Idiom vs ceiling: the report pairs each tuned variant with its idiomatic sibling.

Synthetic result documents (tests/test_report_data.py's builders) with the
tuned variants added: numpy_tuned and torch_tuned beside siblings that ran,
jax_tuned whose sibling is not in the file, tensorflow_tuned whose sibling
failed, a disagreeing idiom, and torch_tuned n/a on a machine without a GPU.
"""

import csv
import json
import re

import pandas as pd
import pytest
from markupsafe import escape

from sidebyside import implementations
from sidebyside.report.sections import summary
from sidebyside.report.build import build_report
from sidebyside.report.findings import tuned_sentences
from sidebyside.report.merge import merge
from sidebyside.results import parse_results
from sidebyside.report.tables import tuned_pairs
from tests.test_report_data import PEAKS, TUTORIAL, entry, flops, make_document, reference_losses, report_of, write

FRAMEWORKS = {"numpy_tuned": "numpy", "torch_tuned": "torch", "jax_tuned": "jax", "tensorflow_tuned": "tensorflow"}
MEDIANS = {"numpy_tuned": 1.6e-4, "torch_tuned": 1.2e-4, "jax_tuned": 3.0e-4, "tensorflow_tuned": 4.0e-4}


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def tuned_entry(name, device="cpu", dtype="float32", median=None, **keywords):
    record = entry(name, device, dtype, TUTORIAL, **keywords)
    record["framework"] = record["backend"] = FRAMEWORKS[name]
    if record["status"] == "ok":
        median = median or MEDIANS[name] * (1.8 if dtype == "float64" else 1.0)
        record["step_time"].update(median=median, round_medians=[median * 0.99, median, median * 1.01])
        record["gflops"] = flops(TUTORIAL) / median / 1e9
        record["peak_fraction"] = record["gflops"] / PEAKS[device][dtype]
    return record


def tuned_document(name="tuned-box"):
    document = make_document(name, digits=False)
    curve = reference_losses()
    results = document["results"]
    for dtype in ("float32", "float64"):
        results.append(tuned_entry("numpy_tuned", dtype=dtype, losses=curve))
    results.append(tuned_entry("torch_tuned", losses=curve))
    results.append(tuned_entry("torch_tuned", device="cuda", status="n/a", reason="no CUDA device"))
    results.append(tuned_entry("jax_tuned", losses=curve))  # jax_jit is not in the file
    failed = entry("tf_function", "cpu", "float32", TUTORIAL, status="failed", reason="RuntimeError: no graph")
    failed["framework"] = failed["backend"] = "tensorflow"
    results += [failed, tuned_entry("tensorflow_tuned", losses=curve)]
    return document


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    result = report_of(tmp_path_factory.mktemp("tuned"), "tuned", tuned_document())
    return {**result, "rows": read_csv(result["out"] / "tuned.csv")}


def median_of(document, name, device="cpu", dtype="float32"):
    found = [e for e in document["results"] if (e["implementation"], e["device"], e["dtype"], e["size"])
             == (name, device, dtype, TUTORIAL)]
    assert len(found) == 1, name
    return found[0]["step_time"]["median"] if found[0]["step_time"] else None


def row(report, tuned, device="cpu", dtype="float32"):
    return next(r for r in report["rows"] if (r["tuned"], r["device"], r["dtype"]) == (tuned, device, dtype))


def test_pairs_come_from_the_registry():
    pairs = tuned_pairs()
    assert {name: idiom for name, (idiom, _) in pairs.items()} == {
        "numpy_tuned": "numpy_manual", "torch_tuned": "torch_manual", "jax_tuned": "jax_jit",
        "tensorflow_tuned": "tf_function"}
    assert all(tuning == implementations.spec(name).tuning for name, (_, tuning) in pairs.items())


def test_one_row_per_tuned_run_with_the_ratio_of_step_times(report):
    document = report["document"]
    tuned_runs = [e for e in document["results"] if e["implementation"] in FRAMEWORKS]
    assert len(report["rows"]) == len(tuned_runs) == 6
    for name, idiom in (("numpy_tuned", "numpy_manual"), ("torch_tuned", "torch_manual")):
        got = row(report, name)
        assert got["idiomatic"] == idiom and got["framework"] == FRAMEWORKS[name]
        expected = median_of(document, idiom) / median_of(document, name)
        assert float(got["idiomatic_over_tuned"]) == pytest.approx(expected)
        assert expected > 1  # the synthetic tuned runs are the faster ones
        limit = flops(TUTORIAL) / (PEAKS["cpu"]["float32"] * 1e9)
        assert float(got["tuned_over_limit"]) == pytest.approx(median_of(document, name) / limit)
        assert float(got["idiomatic_over_limit"]) == pytest.approx(median_of(document, idiom) / limit)
    float64 = row(report, "numpy_tuned", dtype="float64")
    assert float(float64["idiomatic_over_tuned"]) == pytest.approx(
        median_of(document, "numpy_manual", dtype="float64") / median_of(document, "numpy_tuned", dtype="float64"))


def test_a_missing_or_unusable_sibling_gives_na(report):
    missing = row(report, "jax_tuned")
    assert (missing["idiomatic"], missing["idiomatic_status"], missing["idiomatic_over_tuned"]) == (
        "jax_jit", "missing", "")
    assert float(missing["tuned_median_s"]) == MEDIANS["jax_tuned"]
    failed = row(report, "tensorflow_tuned")
    assert (failed["idiomatic_status"], failed["idiomatic_median_s"], failed["idiomatic_over_tuned"]) == (
        "failed", "", "")
    not_run = row(report, "torch_tuned", device="cuda")
    assert (not_run["tuned_status"], not_run["tuned_median_s"], not_run["idiomatic_over_tuned"]) == ("n/a", "", "")


def table_rows(html):
    start = html.index('id="table-tuned"')
    block = html[start:html.index("</table>", start)]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", block, flags=re.S)
    return [re.findall(r"<td[^>]*>(.*?)</td>", cells) for cells in rows[1:]]


def test_the_page_shows_the_pairs_and_na(report):
    # Columns: Device, Size, Dtype, Framework, Idiomatic, Idiomatic step, Tuned, Tuned step,
    # Idiomatic ÷ tuned, Idiomatic × limit, Tuned × limit (Machine is the heading).
    rows = {(cells[6], cells[0]): cells for cells in table_rows(report["html"]) if cells[2] == "float32"}
    numpy = rows[("numpy_tuned", "cpu")]
    ratio = median_of(report["document"], "numpy_manual") / MEDIANS["numpy_tuned"]
    assert numpy[3:5] == ["numpy", "numpy_manual"] and numpy[7:9] == ["160 µs", f"{ratio:.2f}×"]
    jax = rows[("jax_tuned", "cpu")]
    assert jax[4:9] == ["jax_jit", "n/a", "jax_tuned", "300 µs", "n/a"]  # the sibling is not in the file
    tensorflow = rows[("tensorflow_tuned", "cpu")]
    assert tensorflow[5] == "failed: RuntimeError: no graph" and tensorflow[8] == "n/a" and tensorflow[9] == "n/a"
    # The file's CUDA cases are all n/a for want of a GPU: the page names that once, no row
    # (tuned.csv keeps them, see above).
    cuda = [e for e in report["document"]["results"] if e["device"] == "cuda"]
    assert cuda and all(e["status"] == "n/a" for e in cuda) and ("torch_tuned", "cuda") not in rows
    assert f'<p class="notice">CUDA: no device here ({len(cuda)} cases not run)</p>' in report["html"]


def test_markdown_has_the_table(report):
    text = report["markdown"]
    assert "### Idiom vs ceiling: each framework's tuned variant beside its idiomatic code" in text
    line = next(line for line in text.splitlines() if line.startswith("| cpu |") and "| numpy | numpy\\_manual |" in line
                and "float32" in line)
    ratio = median_of(report["document"], "numpy_manual") / MEDIANS["numpy_tuned"]
    assert f"| {ratio:.2f}× |" in line
    assert text.index("### Idiom vs ceiling") < text.index("### Timing, every run")


def test_findings_say_what_each_tuned_variant_changes(report):
    html = report["html"]
    findings = "".join(re.findall(r'<ul class="findings">.*?</ul>', html, re.S))  # with "More findings"
    document = report["document"]
    limit = flops(TUTORIAL) / (PEAKS["cpu"]["float32"] * 1e9)
    for name, idiom in (("numpy_tuned", "numpy_manual"), ("torch_tuned", "torch_manual")):
        ratio = median_of(document, idiom) / MEDIANS[name]
        sentence = (f"{FRAMEWORKS[name]}: {name} takes {MEDIANS[name] * 1e6:.3g} µs a step against {idiom}'s "
                    f"{median_of(document, idiom) * 1e6:.3g} µs (cpu, float32, 64×1000×100×10), {ratio:.2f}× "
                    f"faster, {MEDIANS[name] / limit:.2f}× the compute limit; what it changes: "
                    f"{implementations.spec(name).tuning}.")
        assert str(escape(sentence)) in findings  # as Jinja's autoescape writes it: ' and > escaped
    assert ("jax: jax_tuned takes 300 µs a step and jax_jit is not in these results (cpu, float32, "
            "64×1000×100×10), so there is no ratio; what it changes: ") in findings
    assert ("tensorflow: tensorflow_tuned takes 400 µs a step and tf_function has no comparable timing "
            "(failed: RuntimeError: no graph) (cpu, float32, 64×1000×100×10), so there is no ratio") in findings
    assert findings.count("what it changes:") == 4  # one sentence per framework


def tuned_table_of(document):
    return summary.tuned_table(merge([parse_results(json.dumps(document), "results.json")]))


def test_a_disagreeing_sibling_is_not_compared():
    document = tuned_document("disagree-box")
    idiom = next(e for e in document["results"] if (e["implementation"], e["device"], e["dtype"], e["size"])
                 == ("torch_manual", "cpu", "float32", TUTORIAL))
    idiom.update(agrees=False, agreement=3e-3, status="disagrees",
                 reason="loss differs from the float64 reference by 3.0e-03 (tolerance 1.0e-04)")
    table = tuned_table_of(document)
    got = table.data[(table.data["tuned"] == "torch_tuned") & (table.data["device"] == "cpu")].iloc[0]
    assert pd.isna(got["idiomatic_over_tuned"]) and pd.isna(got["idiomatic_median_s"])
    shown = table.display[(table.display["Tuned"] == "torch_tuned") & (table.display["Device"] == "cpu")].iloc[0]
    assert shown["Idiomatic step"].startswith("disagrees: loss differs") and shown["Idiomatic ÷ tuned"] == "n/a"


def test_a_slower_tuned_variant_is_said_to_be_slower():
    document = tuned_document("slow-box")
    slow = next(e for e in document["results"] if (e["implementation"], e["device"], e["dtype"])
                == ("numpy_tuned", "cpu", "float32"))
    slow["step_time"].update(median=4e-4, round_medians=[4e-4] * 3)
    collection = merge([parse_results(json.dumps(document), "results.json")])
    sentences = tuned_sentences(collection, collection.frame, tuned_pairs())
    numpy = next(sentence for sentence in sentences if sentence.startswith("numpy:"))
    assert f"{4e-4 / median_of(document, 'numpy_manual'):.2f}× slower" in numpy


def test_no_tuned_variant_no_table(tmp_path):
    build_report([write(tmp_path, "plain.json", make_document("plain", digits=False))], tmp_path / "out",
                 formats=("html", "markdown"))
    assert not (tmp_path / "out" / "tuned.csv").exists()
    assert 'id="table-tuned"' not in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "Idiom vs ceiling" not in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_a_file_that_leaves_out_the_frameworks_reads_n_a_in_the_pairs(tmp_path):
    """Untrusted files may omit what the model does not require: the tuned pairs show "n/a", the page builds."""
    document = tuned_document()
    for result in document["results"]:
        result.pop("framework", None)
    index = build_report([write(tmp_path, "bare.json", document)], tmp_path / "out", formats=("html", "markdown"))
    page = index.read_text(encoding="utf-8")
    tuned = page[page.index('id="table-tuned"'):]
    framework_cells = re.findall(r"<tr[^>]*>(?:<td[^>]*>[^<]*</td>){3}<td[^>]*>([^<]*)</td>", tuned[:tuned.index("</table>")])
    assert framework_cells and set(framework_cells) == {"n/a"}
    assert "| n/a |" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
