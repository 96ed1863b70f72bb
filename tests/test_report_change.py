"""The report of exactly two files: the machines table gains the change and verdict of `sidebyside compare`."""

import json

import numpy as np
import pytest

from sidebyside.report.build import build_report
from tests.test_report import Page, read_csv
from tests.test_report_data import make_document, write

SLOWED = "torch_manual"


def with_samples(document, seed=3):
    """Every timed entry gets 60 step times around its median and five rounds, each with its canary."""
    generator = np.random.default_rng(seed)
    for entry in document["results"]:
        if entry["step_time"]:
            median = entry["step_time"]["median"]
            spread = generator.normal(0, 0.02, 60)
            entry["step_time"]["samples"] = [float(f"{median * (1 + x):.4g}") for x in spread]
            entry["step_time"]["round_medians"] = [median * (1 + x) for x in (-0.02, -0.01, 0.0, 0.01, 0.02)]
            entry["step_time"]["canary"] = [350e-6 * (1 + x) for x in (0.01, -0.01, 0.0, 0.005, -0.005)]
    return document


def slowed(document, name, factor=2.0):
    document = json.loads(json.dumps(document))
    for entry in document["results"]:
        if entry["implementation"] == name and entry["step_time"]:
            entry["step_time"]["samples"] = [float(f"{x * factor:.4g}") for x in entry["step_time"]["samples"]]
            entry["step_time"]["median"] *= factor
            # every round slowed as well: a run truly slower, not a burst within one round
            entry["step_time"]["round_medians"] = [x * factor for x in entry["step_time"]["round_medians"]]
    return document


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two")
    before = with_samples(make_document("box", digits=False))
    after = slowed(before, SLOWED)
    paths = [write(folder, "before.json", before), write(folder, "after.json", after)]
    out = folder / "out"
    index = build_report(paths, out, formats=("html", "markdown"))
    return {"out": out, "html": index.read_text(encoding="utf-8"), "before": before, "after": after,
            "markdown": (out / "report.md").read_text(encoding="utf-8")}


def case(entry):
    return (entry["workload"], entry["device"], "×".join(str(v) for v in entry["size"].values()), entry["dtype"],
            entry["implementation"])


def test_two_files_get_the_change_and_verdict_of_each_case(two):
    rows = {(r["workload"], r["device"], r["size"], r["dtype"], r["implementation"]): r
            for r in read_csv(two["out"] / "machines.csv")}
    after = {case(entry): entry for entry in two["after"]["results"]}
    checked = {"slower": 0, "same": 0}
    for entry in two["before"]["results"]:
        row = rows[case(entry)]
        if entry["status"] != "ok":
            assert row["change_percent"] == "" and row["verdict"].startswith("before: ")
            continue
        new = after[case(entry)]["step_time"]["median"]
        old = entry["step_time"]["median"]
        assert float(row["change_percent"]) == pytest.approx(100 * (new - old) / old)
        if entry["implementation"] == SLOWED:
            assert row["verdict"] == "2.00× slower" and float(row["p_value"]) < 0.05
            checked["slower"] += 1
        else:
            assert row["verdict"] == "~" and float(row["p_value"]) == 1.0  # the same rounds
            assert float(row["canary_change_percent"]) == 0.0
            checked["same"] += 1
    assert checked["slower"] >= 4 and checked["same"] >= 10


def test_the_page_and_markdown_show_the_columns_with_a_tilde(two):
    page = Page(two["html"])
    text = " ".join(page.text)
    assert "Change" in text and "Verdict" in text and "2.00× slower" in text
    assert "“~” where there is no significant difference" in text
    lines = two["markdown"].splitlines()
    header = next(line for line in lines if line.startswith("| Workload | Device | Size | Dtype | Implementation"))
    assert header.endswith("| Change | Verdict |")
    table = lines[lines.index(header):]
    body = [line for line in table[2:] if line.startswith("|")]
    assert any(line.endswith("| +0.0% | ~ |") for line in body)
    assert any(line.endswith("| +100.0% | 2.00× slower |") for line in body)


def test_three_files_have_no_change_column(tmp_path):
    paths = [write(tmp_path, f"{name}.json", with_samples(make_document(name, digits=False)))
             for name in ("a", "b", "c")]
    build_report(paths, tmp_path / "out")
    columns = list(read_csv(tmp_path / "out" / "machines.csv")[0])
    assert columns[5:] == ["a", "b", "c"]
