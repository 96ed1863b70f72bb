"""Every ratio printed between two entries follows sidebyside.ranking.separated.

Where the timing rounds do not separate two entries, the report and the
console print "tie (within noise)" (after the raw ratio in a cell), never
"N× faster" or "N× slower". Entries are built by hand (tests/test_report_data.py
and tests/test_report_tuned.py's builders); nothing is timed.
"""

import json
import re

import pytest
from markupsafe import escape

from sidebyside.ranking import TIE, separated
from sidebyside.report import markdown
from sidebyside.report.build import build_report
from sidebyside.report.findings import choice_table, speed_sentence, tuned_sentences
from sidebyside.report.merge import merge
from sidebyside.report.tables import tuned_pairs
from sidebyside.results import parse_results
from tests.test_ranking import console_entry, printed, row_of
from tests.test_report_data import TUTORIAL, make_document, write
from tests.test_report_tuned import median_of, read_csv, tuned_document

MANUAL = 2.0e-4  # numpy_manual's median at the tutorial size, float32, in tests/test_report_data.py
# numpy_tuned against numpy_manual (rounds 198, 200, 202 µs):
CLOSE = (1.97e-4, [1.95e-4, 1.97e-4, 1.99e-4])  # 1.5 % apart: within the noise margin
OVERLAP = (1.8e-4, [1.7e-4, 1.8e-4, 2.05e-4])  # 11 % apart, but the rounds overlap
SLOWER_CLOSE = (2.04e-4, [2.01e-4, 2.04e-4, 2.07e-4])  # slower by 2 %: within the margin
SLOWER = (2.4e-4, [2.38e-4, 2.4e-4, 2.42e-4])  # slower by 20 %, rounds apart


def numpy_tuned_at(timing, name="tie-box"):
    """tests/test_report_tuned.py's document with numpy_tuned (cpu, float32) at (median, round medians),
    its IQR the rounds' range (so the rule without rounds would say the same)."""
    document = tuned_document(name)
    record = next(e for e in document["results"] if (e["implementation"], e["device"], e["dtype"])
                  == ("numpy_tuned", "cpu", "float32"))
    record["step_time"].update(median=timing[0], round_medians=timing[1], iqr=max(timing[1]) - min(timing[1]))
    return document, record


def built(tmp_path, document):
    build_report([write(tmp_path, "tuned.json", document)], tmp_path / "out", formats=("html", "markdown"))
    out = tmp_path / "out"
    return {"html": (out / "index.html").read_text(encoding="utf-8"),
            "markdown": (out / "report.md").read_text(encoding="utf-8"),
            "rows": read_csv(out / "tuned.csv")}


def has_cell(html, text):
    return re.search(rf"<td[^>]*>{re.escape(text)}</td>", html) is not None


def numpy_sentence(document):
    collection = merge([parse_results(json.dumps(document), "results.json")])
    sentences = tuned_sentences(collection, collection.frame, tuned_pairs())
    return next(sentence for sentence in sentences if sentence.startswith("numpy:"))


def markdown_line(markdown):
    return next(line for line in markdown.splitlines() if line.startswith("| cpu |")
                and "| numpy\\_manual |" in line and "| numpy\\_tuned |" in line and "float32" in line)


@pytest.mark.parametrize("timing", [CLOSE, OVERLAP, SLOWER_CLOSE], ids=["close", "overlapping-rounds", "slower-close"])
def test_an_unseparated_tuned_pair_is_a_tie_in_the_table_the_finding_and_the_markdown(tmp_path, timing):
    document, record = numpy_tuned_at(timing)
    idiom = next(e for e in document["results"] if (e["implementation"], e["device"], e["dtype"], e["size"])
                 == ("numpy_manual", "cpu", "float32", TUTORIAL))
    assert not separated(record, idiom) and median_of(document, "numpy_manual") == MANUAL
    ratio = MANUAL / timing[0]
    report = built(tmp_path, document)
    row = next(r for r in report["rows"] if (r["tuned"], r["device"], r["dtype"]) == ("numpy_tuned", "cpu", "float32"))
    assert float(row["idiomatic_over_tuned"]) == pytest.approx(ratio) and row["separated"] == "False"
    cell = f"{ratio:.2f}×, {TIE}"
    assert has_cell(report["html"], cell)
    line = markdown_line(report["markdown"])
    assert f"| {cell} |" in line and "faster" not in line and "slower" not in line
    sentence = numpy_sentence(document)
    assert f"{TIE} with numpy_manual" in sentence
    assert "× faster" not in sentence and "× slower" not in sentence
    assert str(escape(sentence)) in report["html"] and markdown.escape(sentence) in report["markdown"]


def test_a_separated_slower_tuned_variant_says_so_about_this_cpu(tmp_path):
    document, _ = numpy_tuned_at(SLOWER, "slow-box")
    report = built(tmp_path, document)
    row = next(r for r in report["rows"] if (r["tuned"], r["device"], r["dtype"]) == ("numpy_tuned", "cpu", "float32"))
    assert row["separated"] == "True"
    sentence = numpy_sentence(document)
    assert "1.20× slower than numpy_manual on this CPU" in sentence and TIE not in sentence
    cell = f"{MANUAL / SLOWER[0]:.2f}×: tuned 1.20× slower on this CPU"
    assert has_cell(report["html"], cell) and f"| {cell} |" in markdown_line(report["markdown"])
    # ... while a pair 2 % apart is a tie, not "1.02× slower"; a separated faster pair keeps its plain ratio.
    assert "slower" not in numpy_sentence(numpy_tuned_at(SLOWER_CLOSE)[0])
    faster = numpy_sentence(numpy_tuned_at((1.6e-4, [1.58e-4, 1.6e-4, 1.62e-4]))[0])
    assert f"{MANUAL / 1.6e-4:.2f}× faster" in faster and TIE not in faster


def wide_rounds_document():
    """cpu, float32, tutorial size: torch_autograd ranks second (a tie with numpy_manual) but its rounds
    overlap the fastest's (torch_manual's), so its ratio to the fastest is a tie too."""
    document = make_document("wide-box", digits=False)
    record = next(e for e in document["results"] if (e["implementation"], e["device"], e["dtype"], e["size"])
                  == ("torch_autograd", "cpu", "float32", TUTORIAL))
    record["step_time"].update(median=2.05e-4, round_medians=[1.45e-4, 2.05e-4, 2.6e-4], iqr=1.15e-4)
    return document


def test_speed_sentence_choice_table_and_summary_mark_a_ratio_not_separated_from_the_fastest(tmp_path):
    document = wide_rounds_document()
    collection = merge([parse_results(json.dumps(document), "results.json")])
    frame = collection.frame
    group = frame[(frame["workload"] == "two_layer") & (frame["device"] == "cpu") & (frame["dtype"] == "float32")
                  & (frame["size_label"] == "64×1000×100×10")]
    sentence = speed_sentence("wide-box", "cpu", "float32", "64×1000×100×10", group)
    assert f"torch_autograd ({2.05 / 1.5:.2f}×): {TIE} with torch_manual" in sentence
    assert f"torch_autograd {2.05 / 1.5:.2f}×," not in sentence  # not among the plain ratios
    assert f"numpy_manual {2 / 1.5:.2f}×" in sentence  # separated: a plain ratio
    choice = choice_table(collection)
    row = choice.data[(choice.data["device"] == "cpu") & (choice.data["dtype"] == "float32")
                      & (choice.data["workload"] == "two_layer")].iloc[0]
    shown = choice.display.loc[row.name]
    assert f"torch_autograd {2.05 / 1.5:.2f}×, {TIE}" in shown["Then (× the fastest's step)"]
    assert row["then_tied"] == "torch_autograd"
    build_report([write(tmp_path, "wide.json", document)], tmp_path / "out", formats=("html",))
    summary = next(r for r in read_csv(tmp_path / "out" / "summary.csv")
                   if (r["implementation"], r["device"], r["dtype"], r["size"])
                   == ("torch_autograd", "cpu", "float32", "64×1000×100×10"))
    assert (summary["rank"], summary["separated_from_fastest"]) == ("2", "False")
    assert f"{2.05 / 1.5:.2f}×, {TIE}" in (tmp_path / "out" / "index.html").read_text(encoding="utf-8")


def test_console_times_best_is_a_tie_where_the_rounds_do_not_separate_the_row_from_the_fastest():
    text = printed([
        console_entry("leader", 1.00e-4, [1.00e-4, 1.00e-4, 1.00e-4]),
        console_entry("second", 1.10e-4, [1.09e-4, 1.10e-4, 1.11e-4]),  # separated from the leader
        console_entry("wide", 1.12e-4, [0.95e-4, 1.12e-4, 1.30e-4]),  # rounds overlap the leader's
    ])
    assert row_of(text, "leader")[1:4] == ["1", "100", "1.00"]
    assert row_of(text, "second")[1:4] == ["2 tie", "110", "1.10"]
    assert row_of(text, "wide")[1:4] == ["2 tie", "112", f"1.12, {TIE}"]
    tied = printed([console_entry("a", 2.00e-4, [1.98e-4, 2.00e-4, 2.03e-4]),
                    console_entry("b", 2.02e-4, [2.00e-4, 2.02e-4, 2.04e-4])])
    assert row_of(tied, "a")[3] == TIE and row_of(tied, "b")[3] == f"1.01, {TIE}"
