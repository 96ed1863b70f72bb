"""--profile: one steady step per implementation under its framework's profiler, split into matrix products,
other kernels and everything else, against the unprofiled step.

Fast tier: which kernel names are products, how overlapping and nested
kernels are counted once, the option reaching the tasks, the workload's
recording (nothing for numpy, one line for a profiler that fails), and the
report's section from hand-built files, corrupted ones included, and each
profiler on a real implementation's step in this process. End to end: a
real run of torch_manual and numpy_manual with --profile.
"""

import math
import subprocess
import sys

import pytest

from sidebyside import cli, implementations
from sidebyside.frameworks import compute_framework
from sidebyside.frameworks import _profile
from sidebyside.report.build import build_report
from sidebyside.report.merge import merge
from sidebyside.report.sections import profile as section
from sidebyside.results import load_results
from sidebyside.workloads.two_layer import build, profiled
from sidebyside.workloads.two_layer.tasks import TUTORIAL_SIZE, settled, task
from tests.conftest import ROOT, skip_if_missing
from tests.test_report_data import make_document, write

# Names as the profilers give them: torch's ops, XLA's HLO ops (CPU thunks, GPU kernels), TensorFlow's op types.
PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::_addmm_activation",
            "dot", "dot.1", "dot_general.2", "ynn_fusion.2", "xnn_fusion", "MatMul.10", "_MklMatMul", "MatMul",
            "BatchMatMulV2", "_FusedMatMul", "Einsum", "Conv2D", "convolution.3",
            "sm90_xmma_gemm_f32f32_tn_n", "void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm>",
            "gemm_fusion_dot.1", "volta_sgemm_128x64_nn", "void gemv2T_kernel_val")
OTHERS = ("aten::masked_fill_", "aten::mul", "aten::sum", "aten::t", "aten::_to_copy", "aten::clamp",
          "aten::_local_scalar_dense", "aten::commit", "convert.3", "convert_element_type_fusion",
          "broadcast_maximum_fusion", "multiply_subtract_fusion.1", "wrapped_reduce-window", "copy.1",
          "Maximum", "AssignSubVariableOp", "ReluGrad", "ReadVariableOp", "SelectV2", "loop_fusion")


def test_matrix_products_are_told_from_other_kernels_by_name():
    assert [name for name in PRODUCTS if not _profile.is_product(name)] == []
    assert [name for name in OTHERS if _profile.is_product(name)] == []


def test_overlapping_kernels_count_once_and_a_slowed_step_moves_nothing():
    # Step 1: a product split over two threads (overlapping), another op partly inside it, a gap;
    # step 2 the same, shifted; step 3 slowed tenfold by something else (outside the middle half).
    def kernels(at):
        return [(at + 0.1, at + 0.3, "dot"), (at + 0.2, at + 0.4, "dot"), (at + 0.35, at + 0.5, "add_fusion")]
    windows = [(0.0, 1.0), (10.0, 11.0), (20.0, 30.0), (40.0, 41.0)]
    walls = [1.0, 1.0, 10.0, 1.0]
    parts = _profile.breakdown(walls, windows, kernels(0.0) + kernels(10.0) + kernels(20.0) + kernels(40.0))
    assert parts["steps"] == 4 and parts["wall_s"] == pytest.approx(1.0)
    assert parts["matmul_s"] == pytest.approx(0.3)  # 0.1 to 0.4: the two threads' halves are one interval
    assert parts["other_kernels_s"] == pytest.approx(0.1)  # 0.4 to 0.5: the part inside the product is counted there
    with pytest.raises(RuntimeError, match="recorded 3 of the 4 steps"):
        _profile.breakdown(walls, windows[:3], [])


def test_of_nested_ops_only_the_innermost_count():
    launch = (0.0, 1.0, "__inference_train_step")  # XLA's launch op around the ops it runs, on the same thread
    inner = [(0.1, 0.2, "dot"), (0.2, 0.5, "fusion"), (0.6, 0.6, "copy")]
    assert _profile.innermost([launch, *inner, (1.0, 1.5, "next")]) == [*inner, (1.0, 1.5, "next")]


def config_of(*argv):
    parser = cli.build_parser()
    argv = ["run", "--quick", *argv]
    return cli.config_from(cli.with_settings(parser.parse_args(argv), argv, parser.run_parser))


def test_the_option_reaches_the_full_size_tasks_and_the_settled_options_only_when_asked():
    asked, plain = config_of("--profile"), config_of()
    assert asked.options.get("profile") is True and "profile" not in plain.options
    assert settled(asked)["profile"] is True and "profile" not in settled(plain)
    full = task(asked, "cpu", "float32", TUTORIAL_SIZE, full=True)
    assert full["profile"] is True
    assert "profile" not in task(asked, "cpu", "float32", (16, 1000, 100, 10), full=False)  # a sweep size
    assert task(plain, "cpu", "float32", TUTORIAL_SIZE, full=True) == {k: v for k, v in full.items() if k != "profile"}


def test_a_framework_without_a_profiler_records_nothing_and_a_failing_profiler_one_line(monkeypatch):
    from sidebyside.frameworks import torch as adapter  # the adapter only: torch itself is imported by profile()

    steps = []
    assert profiled("numpy", lambda: steps.append(1), "cpu", [1e-3]) is None and steps == []

    def failing(step, steps, device):
        raise RuntimeError("the profiler is already running\nsecond line")
    monkeypatch.setattr(adapter, "profile", failing)
    assert profiled("torch", lambda: None, "cpu", [1e-3]) == {"error": "RuntimeError: the profiler is already running"}

    def measured(step, steps, device):
        step()
        return {"wall_s": 3e-4, "matmul_s": 1e-4, "other_kernels_s": 5e-5, "steps": steps, "profiler": "fake"}
    monkeypatch.setattr(adapter, "profile", measured)
    recorded = profiled("torch", lambda: steps.append(1), "cpu", [2e-4, 3e-4, 4e-4])
    assert recorded["rest_s"] == pytest.approx(1.5e-4) and recorded["unprofiled_s"] == 3e-4 and steps == [1]


def with_profiles(document, profiles):
    """The document with extra.profile set on its two-layer CPU float32 tutorial-size entries, by implementation."""
    for entry in document["results"]:
        if (entry["workload"], entry["device"], entry["dtype"], entry["size"]["N"]) == ("two_layer", "cpu",
                                                                                      "float32", 64):
            if entry["implementation"] in profiles:
                entry["extra"]["profile"] = profiles[entry["implementation"]]
    return document


def profile_of(wall, unprofiled, matmul=0.4, other=0.2):
    return {"wall_s": wall, "matmul_s": matmul * wall, "other_kernels_s": other * wall,
            "rest_s": (1 - matmul - other) * wall, "steps": 20, "profiler": "torch.profiler (torch 2.13.0)",
            "unprofiled_s": unprofiled}


def table_of(tmp_path, document):
    collection = merge([load_results(write(tmp_path, "results.json", document))])
    table = section.profile_table(collection.only(["two_layer"]))
    return {row["implementation"]: row for row in table.data.to_dict("records")}, table


def test_the_section_checks_the_parts_against_the_unprofiled_step(tmp_path):
    document = with_profiles(make_document(), {
        "torch_manual": profile_of(3.1e-4, 3.0e-4), "torch_nn": profile_of(4.5e-4, 3.0e-4),
        "keras_jax": {"error": "RuntimeError: the profiler is already running"}})
    rows, table = table_of(tmp_path, document)
    # Every row of the profiled case, numpy's included; no row of an unprofiled case.
    assert set(rows) == {"numpy_manual", "torch_manual", "torch_autograd", "torch_nn", "keras_tensorflow",
                         "keras_jax"}
    within, slowed = rows["torch_manual"], rows["torch_nn"]
    assert within["check"] == "parts sum within 10 %"
    assert within["matmul_s"] + within["other_kernels_s"] + within["rest_s"] == pytest.approx(within["wall_s"])
    assert within["overhead"] == pytest.approx(3.1 / 3.0 - 1)
    assert slowed["check"] == "profiler overhead 50 %: the parts describe a slowed step"
    assert rows["keras_jax"]["check"] == "n/a: the profiler failed: RuntimeError: the profiler is already running"
    assert rows["numpy_manual"]["check"] == "no profiler: see the fit"
    assert rows["torch_autograd"]["check"] == "not profiled"  # torch has a profiler: this row has no profile
    shown = table.display.set_index("Implementation")
    assert shown.loc["torch_manual", "Matrix products"] == "124 µs (40.0%)"
    assert shown.loc["numpy_manual", "Profiled step"] == "—"


def test_a_corrupted_profile_reads_n_a_and_the_report_is_drawn(tmp_path):
    document = with_profiles(make_document(), {
        "torch_manual": {"wall_s": "fast", "matmul_s": -1, "other_kernels_s": True, "rest_s": [1],
                         "unprofiled_s": {"median": 1}, "profiler": ["torch"]},
        "torch_nn": "a profile", "torch_autograd": {"error": {"nested": [1, 2]}},
        "keras_tensorflow": {**profile_of(1e-3, 0.0)}})
    rows, _ = table_of(tmp_path, document)
    assert rows["torch_manual"]["check"] == "n/a: the file's profile is incomplete"
    assert rows["torch_manual"]["wall_s"] is None or math.isnan(rows["torch_manual"]["wall_s"])
    assert rows["torch_nn"]["check"] == "not profiled"  # not an object: no profile at all
    assert rows["torch_autograd"]["check"].startswith("n/a: the profiler failed")
    assert rows["keras_tensorflow"]["check"] == "n/a: the file's profile is incomplete"  # no unprofiled step
    index = build_report([write(tmp_path, "corrupted.json", document)], tmp_path / "out", formats=("html",))
    html = index.read_text(encoding="utf-8")
    assert '<section id="profile"' in html and "The section" not in html  # drawn, not replaced by a failure line


def test_without_a_profile_there_is_no_section(tmp_path):
    index = build_report([write(tmp_path, "plain.json", make_document())], tmp_path / "out", formats=("html",))
    assert 'id="profile"' not in index.read_text(encoding="utf-8")


PROFILED = ("torch_manual", "jax_jit", "tf_function")


@pytest.mark.parametrize("name", PROFILED)
def test_each_profiler_splits_a_real_step_into_parts_that_fit_inside_it(name):
    """The adapters' profilers on a real implementation's step, in this process (the frameworks are imported
    by the in-process tests anyway): products found, nothing counted twice, the rest what is left."""
    skip_if_missing(name)
    spec = implementations.spec(name)
    planned = task(config_of("--profile"), "cpu", "float32", TUTORIAL_SIZE, full=True)
    net, x, y, _ = build(spec, planned, threads=1)
    try:
        parts = profiled(compute_framework(spec), lambda: net.step(x, y), "cpu", [1e-3])
    finally:
        if hasattr(net, "close"):
            net.close()
    assert "error" not in parts, parts
    assert parts["matmul_s"] > 0 and parts["other_kernels_s"] >= 0 and parts["rest_s"] >= 0, parts
    assert parts["matmul_s"] + parts["other_kernels_s"] <= parts["wall_s"] * 1.01, parts
    assert parts["rest_s"] == pytest.approx(parts["wall_s"] - parts["matmul_s"] - parts["other_kernels_s"])


@pytest.mark.e2e  # a real run, as short as one gets: torch's profiler (JAX's and TensorFlow's: in-process above)
def test_a_profiled_run_records_the_breakdown_of_the_framework_that_has_a_profiler(tmp_path):
    """torch_manual's entry carries its breakdown beside the unprofiled median, numpy_manual's none, and the
    report has the section."""
    for name in ("torch_manual", "numpy_manual"):
        skip_if_missing(name)
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "sidebyside.cli", "run", "--workload", "two_layer", "--quick",
                             "--profile", "--rounds", "1", "--device", "cpu", "--threads", "1", "--no-report",
                             "--impl", "torch_manual", "--impl", "numpy_manual", "--out", str(out)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    document = load_results(out / "results.json")
    assert document["config"]["options"].get("profile") is True
    for entry in document["results"]:
        parts = entry["extra"].get("profile")
        if entry["implementation"] == "numpy_manual":
            assert parts is None
            continue
        assert parts and "error" not in parts, parts
        assert parts["matmul_s"] > 0 and parts["matmul_s"] + parts["other_kernels_s"] <= parts["wall_s"] * 1.01
        assert parts["unprofiled_s"] == pytest.approx(entry["step_time"]["median"], rel=0.5)
    text = build_report([out / "results.json"], out / "report").read_text()
    assert '<section id="profile"' in text and "no profiler: see the fit" in text
