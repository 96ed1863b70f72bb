"""No share of peak above 100 % is shown as a number, and no "× the compute limit" below 1.

A step faster than the measured peak makes the run measure the peak once
more (sidebyside.peak.beaten, remeasured); a step that still wins reads
"faster than the measured peak: the peak is unsound here" in the console,
the report's tables, its Markdown and its findings, while the CSVs keep the
raw figure beside a `beats_peak` column. No theoretical peak is assumed from
the CPU flags; a file's theoretical peak below the measured one is flagged.

Hand-made result documents: tests/test_report_tuned.py's tuned document,
with numpy_tuned's float32 step at the tutorial size 1.47 times the
measured peak, measured once more (lower) as the runner would, and a
theoretical float32 peak below the measured one.
"""

import io
import json
import re

import pytest
from rich.console import Console

from sidebyside import peak
from sidebyside.summary import print_summary
from tests.test_report_data import PEAKS, TUTORIAL, report_of
from tests.test_report_tuned import read_csv, tuned_document

BEATS = 1.47  # the winning step's GFLOP/s over its measured peak
WINNER = ("numpy_tuned", "cpu", "float32", "64×1000×100×10")  # implementation, device, dtype, size
THEORETICAL = 300.0  # float32 GFLOP/s, below the measured PEAKS["cpu"]["float32"]
SHARE_OVER_100 = re.compile(r"(?<![\d.,])(?:[1-9]\d{2,}|\d{1,3}(?:,\d{3})+)(?:\.\d+)?\s?%")
LIMIT_UNDER_1 = re.compile(r"(?<![\d.])0\.\d+×")  # in a × limit cell (a first step's ratio may be below 1)


def winning_document():
    """The tuned document with numpy_tuned (cpu, float32, tutorial size) faster than the peak, even measured again."""
    document = tuned_document("share-box")
    winner = next(e for e in document["results"] if (e["implementation"], e["device"], e["dtype"], e["size"])
                  == ("numpy_tuned", "cpu", "float32", TUTORIAL))
    winner["gflops"] = BEATS * PEAKS["cpu"]["float32"]
    winner["peak_fraction"] = BEATS
    machine = document["machine"]
    again = {"peak_gflops": {"cpu": {"float32": 390.0, "float64": 190.0}, "cuda": None}, "peak_detail": {}}
    machine.update(peak.remeasured(machine, again, document["results"]))
    machine["peak_detail"]["theoretical"] = {"float32": THEORETICAL, "float64": None}
    return document


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return report_of(tmp_path_factory.mktemp("share"), "share", winning_document())


def html_rows(html, table):
    """The cells of every row of one table of the page."""
    start = html.index(f'id="table-{table}"')
    block = html[start:html.index("</table>", start)]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", block, flags=re.S)]


def winner_row(rows):
    return next(cells for cells in rows if set(WINNER) <= set(cells))


def test_the_run_remeasures_only_when_a_step_beats_the_peak_and_keeps_why():
    size = dict(TUTORIAL)
    entries = [{"workload": "two_layer", "implementation": name, "device": "cpu", "dtype": dtype, "size": size,
                "gflops": gflops} for name, dtype, gflops in
               (("fast", "float32", 450.0), ("slow", "float32", 100.0), ("fast64", "float64", 150.0),
                ("failed", "float32", None))]
    peaks = {"cpu": {"float32": 400.0, "float64": 200.0}, "cuda": None}
    assert [e["implementation"] for e in peak.beaten(entries, peaks)] == ["fast"]
    assert peak.beaten(entries, {"cpu": {"float32": 460.0, "float64": 200.0}, "cuda": None}) == []
    detail = {"start": peaks, "end": peaks, "spread": {"cpu": {"float32": 0.0, "float64": 0.0}, "cuda": None}}
    combined = {"peak_gflops": peaks, "peak_detail": detail}

    # Measured again above the step: the peak rises and no step is left faster than it.
    higher = peak.remeasured(combined, {"peak_gflops": {"cpu": {"float32": 470.0, "float64": 190.0}, "cuda": None},
                                        "peak_detail": {}}, entries)
    assert higher["peak_gflops"] == {"cpu": {"float32": 470.0, "float64": 200.0}, "cuda": None}
    record = higher["peak_detail"]["remeasured"]
    assert record["why"] and [e["implementation"] for e in record["beaten"]] == ["fast"]
    assert record["beaten"][0]["gflops"] == 450.0 and record["beaten"][0]["peak"] == 400.0
    assert record["still_beaten"] == []
    assert {key: higher["peak_detail"][key] for key in detail} == detail  # start, end, spread as combined
    json.dumps(higher, allow_nan=False)

    # Measured again below the step (or failed): the step still wins.
    failed = {"peak_gflops": {"cpu": None, "cuda": None}, "peak_detail": {"error": "did not finish"}}
    lower = peak.remeasured(combined, failed, entries)
    assert lower["peak_gflops"] == peaks
    assert [e["implementation"] for e in lower["peak_detail"]["remeasured"]["still_beaten"]] == ["fast"]
    assert lower["peak_detail"]["remeasured"]["error"] == "did not finish"


def test_the_csvs_keep_the_raw_figure_beside_beats_peak(report):
    for name in ("summary", "timing"):
        rows = read_csv(report["out"] / f"{name}.csv")
        beating = [row for row in rows if row["beats_peak"] == "True"]
        assert [(r["implementation"], r["device"], r["dtype"], r["size"]) for r in beating] == [WINNER], name
        assert float(beating[0]["peak_fraction"]) == pytest.approx(BEATS)
        assert {row["beats_peak"] for row in rows} == {"True", "False"}
    tuned = [row for row in read_csv(report["out"] / "tuned.csv") if row["tuned_beats_peak"] == "True"]
    assert [(r["tuned"], r["device"], r["dtype"], r["size"]) for r in tuned] == [WINNER]
    assert float(tuned[0]["tuned_over_limit"]) == pytest.approx(1 / BEATS)
    assert tuned[0]["idiomatic_beats_peak"] == "False"


def test_the_page_says_the_peak_is_unsound_instead_of_a_share(report):
    html = report["html"]
    for table in ("summary", "timing"):
        assert peak.UNSOUND in winner_row(html_rows(html, table)), table
    # Tuned: Device, Size, Dtype, Framework, Idiomatic, Idiomatic step, Tuned, Tuned step, ÷, Idiomatic × limit,
    # Tuned × limit (Machine is the heading).
    tuned = winner_row(html_rows(html, "tuned"))
    assert tuned[-1] == peak.UNSOUND and tuned[-2].endswith("×")
    assert not any(LIMIT_UNDER_1.search(cell) for cells in html_rows(html, "tuned") for cell in cells[-2:])
    tables = "".join(re.findall(r"<table.*?</table>", html, flags=re.S))
    assert not SHARE_OVER_100.search(tables)
    assert f"{BEATS:.1%}" not in html


def test_the_markdown_and_findings_say_it_too(report):
    markdown = report["markdown"]
    row = next(line for line in markdown.splitlines() if line.startswith("| cpu | 64×1000×100×10 | float32 | "
                                                                         "numpy\\_tuned |"))
    assert peak.UNSOUND in row
    assert not SHARE_OVER_100.search(markdown)
    tuned = markdown[markdown.index("### Idiom vs ceiling"):]
    tuned = tuned[:tuned.index("\n### ")]
    assert peak.UNSOUND in tuned and not LIMIT_UNDER_1.search(tuned)
    sentence = next(line for line in markdown.splitlines() if line.startswith("- numpy: numpy\\_tuned takes"))
    assert peak.UNSOUND in sentence and "compute limit" not in sentence
    assert "numpy\\_tuned comes closest" not in markdown


def test_one_warning_names_the_step_and_the_remeasurement(report):
    lines = re.findall(r'<p class="warning">(.*?)</p>', report["html"])
    unsound = [line for line in lines if "Faster than the measured peak" in line]
    assert len(unsound) == 1
    assert ("even measured once more at the end of the run: numpy_tuned (cpu, float32, 64×1000×100×10): "
            f"{BEATS * PEAKS['cpu']['float32']:.0f} GFLOP/s against the measured 400") in unsound[0]
    assert not SHARE_OVER_100.search(unsound[0])


def test_the_console_prints_no_share_above_100():
    stream = io.StringIO()
    print_summary(winning_document(), Console(file=stream, width=200))
    text = stream.getvalue()
    # implementation, rank, µs/step, ×best, GFLOP/s, %peak, ...
    shares = [[cell.strip() for cell in line.split("│")[1:-1]][5] for line in text.splitlines()
              if line.startswith("│ numpy_tuned ")]
    assert "> peak" in shares and all(share == "> peak" or int(share) < 100 for share in shares)
    assert f"! > peak, numpy_tuned: {peak.UNSOUND}" in text
    assert not any(str(round(BEATS * 100)) in line for line in text.splitlines() if "numpy_tuned" in line)


def test_no_theoretical_peak_is_assumed_from_the_flags(monkeypatch):
    monkeypatch.setattr(peak, "clock_mhz", lambda: (3000.0, "test"))
    monkeypatch.setattr(peak.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(peak, "physical_cores", len)
    monkeypatch.setattr(peak, "cpu_flags", lambda: ({"sse2", "avx", "avx2", "fma", "avx512f"}, 3000.0))
    theoretical = peak.theoretical_peak(threads=8)
    # The lanes, the cores in the mask and the clock are readable; the FMA units per core are not.
    assert theoretical["float32"] is None and theoretical["float64"] is None and "FMA units" in theoretical["why"]
    assert (theoretical["isa"], theoretical["float32_lanes"], theoretical["cores"], theoretical["mhz"]) == (
        "avx512f", 16, 4, 3000.0)


def test_a_measured_peak_above_the_theoretical_one_is_flagged(report):
    lines = re.findall(r'<p class="warning">(.*?)</p>', report["html"])
    flagged = [line for line in lines if "above the theoretical one" in line]
    assert len(flagged) == 1 and "cpu float32: 400 measured against 300 GFLOP/s" in flagged[0]
    rows = {row["field"]: row["share-box"] for row in read_csv(report["out"] / "environment.csv")}
    assert rows["Theoretical peak, cpu float32 (GFLOP/s)"].startswith("300: below the measured peak")
    assert report["markdown"].count("> **Warning:**") == 2  # the step beating the peak, the theoretical peak
