"""The shared problem and the registry."""

import sys

import numpy as np
import pytest

import implementations
from implementations import FrameworkBroken, FrameworkMissing, Implementation
from implementations.problem import Problem, make_data


def test_tutorial_defaults():
    problem = Problem()
    assert (problem.N, problem.D_in, problem.H, problem.D_out) == (64, 1000, 100, 10)
    assert problem.learning_rate == 1e-6 and problem.steps == 500 and problem.dtype == "float32"


@pytest.mark.parametrize("changes", [
    {"N": 0}, {"H": -3}, {"D_in": 2.5}, {"steps": True}, {"learning_rate": 0}, {"learning_rate": float("nan")},
    {"learning_rate": "fast"}, {"dtype": "float16"},
])
def test_bad_problem_is_refused(changes):
    with pytest.raises(ValueError):
        Problem(**changes)


def test_data_is_shared_and_standard_normal():
    x, y, w1, w2 = make_data(Problem())
    again = make_data(Problem())
    assert all(np.array_equal(a, b) for a, b in zip((x, y, w1, w2), again))
    assert x.shape == (64, 1000) and y.shape == (64, 10) and w1.shape == (1000, 100) and w2.shape == (100, 10)
    assert x.dtype == np.float32
    assert abs(float(w1.mean())) < 0.01 and abs(float(w1.std()) - 1) < 0.01
    single, double = make_data(Problem(dtype="float32"))[2], make_data(Problem(dtype="float64"))[2]
    assert np.array_equal(single, double.astype(np.float32)), "float32 data is the float64 draw rounded once"


def test_flops_follow_the_documented_convention():
    problem = Problem()
    forward = 2 * 64 * 1000 * 100 + 2 * 64 * 100 * 10
    backward = 2 * 64 * 1000 * 100 + 2 * 2 * 64 * 100 * 10  # no gradient for x
    assert problem.flops_per_step() == forward + backward == 25_984_000


def test_registry_names_the_four_ways_and_keras_backends():
    names = implementations.names()
    for name in ("numpy_manual", "torch_manual", "torch_autograd", "torch_nn",
                 "keras_tensorflow", "keras_torch", "keras_jax"):
        assert name in names


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: numpy_manual, torch_manual"):
        implementations.load("tensorflowish")


def test_missing_framework_names_the_extra():
    entry = Implementation("ghost", "numpy_manual", "ghost", ("numpy", "ghost_framework_xyz"), "ghost")
    assert implementations.missing_entry(entry) == 'ghost_framework_xyz not installed (pip install -e ".[ghost]")'
    with pytest.raises(FrameworkMissing, match=r"ghost: ghost_framework_xyz not installed"):
        implementations.load_entry(entry)


def test_broken_framework_is_failed_not_skipped(tmp_path, monkeypatch):
    package = tmp_path / "brokenpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "net.py").write_text("raise OSError('libcudart.so.12: cannot open shared object file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = Implementation("broken", "net", "numpy", ("numpy",), "numpy")
    with pytest.raises(FrameworkBroken, match="broken: import failed: OSError: libcudart"):
        implementations.load_entry(entry, package="brokenpkg")
    sys.modules.pop("brokenpkg", None)


def test_keras_backend_conflict_is_a_clear_error(monkeypatch):
    import importlib.machinery

    fake_keras = type(sys)("keras")
    fake_keras.__spec__ = importlib.machinery.ModuleSpec("keras", None)
    fake_keras.backend = type("backend", (), {"backend": staticmethod(lambda: "jax")})
    monkeypatch.setitem(sys.modules, "keras", fake_keras)
    reason = implementations.missing("keras_torch")
    if reason and "not installed" in reason:
        pytest.skip(f"n/a: {reason}")
    assert "already imported with the jax backend" in reason
    with pytest.raises(FrameworkMissing, match="run torch in its own process"):
        implementations.load("keras_torch")
