"""The shared problem and the registry."""

import sys

import numpy as np
import pytest

from sidebyside import implementations
from sidebyside.implementations import FrameworkBroken, FrameworkMissing, Implementation
from sidebyside.implementations.two_layer.problem import Problem, make_data


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
    entry = Implementation("broken", "brokenpkg.net", "numpy", ("numpy",), "numpy")
    with pytest.raises(FrameworkBroken, match="broken: import failed: OSError: libcudart"):
        implementations.load_entry(entry)
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


def make_package(tmp_path, monkeypatch, name, net_source):
    """A throwaway package `name` on sys.path whose module `net` holds `net_source`."""
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "net.py").write_text(net_source)
    monkeypatch.syspath_prepend(str(tmp_path))
    for module in (name, f"{name}.net"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    return name


def test_a_dependency_missing_inside_an_installed_framework_is_failed(tmp_path, monkeypatch):
    """numpy is installed; a module it (here: our module) needs is not: broken, not "n/a"."""
    package = make_package(tmp_path, monkeypatch, "depbroken", "import ghost_dependency_xyz\n")
    entry = Implementation("depbroken", f"{package}.net", "numpy", ("numpy",), "numpy")
    with pytest.raises(FrameworkBroken) as raised:
        implementations.load_entry(entry)
    assert str(raised.value) == (
        "depbroken: import failed: ModuleNotFoundError: No module named 'ghost_dependency_xyz'"
    )


def test_a_missing_submodule_of_an_installed_framework_is_failed(tmp_path, monkeypatch):
    """The top-level package is required and present; a piece of it is missing: broken."""
    package = make_package(tmp_path, monkeypatch, "subbroken", "import numpy.ghost_submodule_xyz\n")
    entry = Implementation("subbroken", f"{package}.net", "numpy", ("numpy",), "numpy")
    with pytest.raises(FrameworkBroken, match=r"ModuleNotFoundError: No module named 'numpy.ghost_submodule_xyz'"):
        implementations.load_entry(entry)


def test_a_required_framework_absent_at_import_is_missing(tmp_path, monkeypatch):
    """When the import itself finds a required framework absent, the case is "n/a"."""
    package = make_package(tmp_path, monkeypatch, "fwmissing", "import ghost_framework_xyz\n")
    entry = Implementation("fwmissing", f"{package}.net", "ghost", ("numpy", "ghost_framework_xyz"), "ghost")
    # missing_entry would see the absence first; skip it to reach the import.
    monkeypatch.setattr(implementations, "missing_entry", lambda entry: None)
    with pytest.raises(FrameworkMissing) as raised:
        implementations.load_entry(entry)
    assert str(raised.value) == 'fwmissing: ghost_framework_xyz not installed (pip install -e ".[ghost]")'


RECORDING_NET = '''
class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32", jit_compile=False, ranks=1):
        self.arguments = dict(w1=w1, w2=w2, learning_rate=learning_rate, device=device, dtype=dtype,
                              jit_compile=jit_compile, ranks=ranks)
'''


@pytest.fixture
def recording(tmp_path, monkeypatch):
    """A registry entry whose Net records what it was built with, registered as "recording"."""
    package = make_package(tmp_path, monkeypatch, "recordingpkg", RECORDING_NET)
    entry = Implementation("recording", f"{package}.net", "numpy", ("numpy",), "numpy",
                           {"jit_compile": True, "ranks": 2})
    monkeypatch.setitem(implementations.REGISTRY, "recording", entry)
    return entry


def test_create_applies_the_registry_options(recording):
    net = implementations.create("recording", "W1", "W2", 0.5, device="cuda", dtype="float64")
    assert net.arguments == dict(w1="W1", w2="W2", learning_rate=0.5, device="cuda", dtype="float64",
                                 jit_compile=True, ranks=2)


def test_create_takes_explicit_overrides(recording):
    net = implementations.create("recording", "W1", "W2", 0.5, ranks=3)
    assert net.arguments["ranks"] == 3 and net.arguments["jit_compile"] is True


@pytest.mark.parametrize("override, message", [
    ({"threads_per_rank": 2}, "recording: unknown option 'threads_per_rank'; it takes: ranks"),
    ({"style": "module"}, "recording: unknown option 'style'; it takes: ranks"),
    ({"jit_compile": False}, "recording: jit_compile cannot be overridden, it is what makes this variant recording"),
])
def test_create_refuses_a_bad_override_in_one_line(recording, override, message):
    with pytest.raises(ValueError) as raised:
        implementations.create("recording", "W1", "W2", 0.5, **override)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_create_builds_the_registered_net():
    """The real registry: numpy_manual built by create trains as its class does."""
    from sidebyside.implementations.two_layer.numpy_manual import Net

    problem = Problem(N=4, D_in=5, H=3, D_out=2, learning_rate=1e-3)
    x, y, w1, w2 = make_data(problem)
    created = implementations.create("numpy_manual", w1, w2, problem.learning_rate)
    direct = Net(w1, w2, problem.learning_rate)
    assert isinstance(created, Net)
    assert np.array_equal(created.train(x, y, 3), direct.train(x, y, 3))
    with pytest.raises(ValueError, match="numpy_manual: unknown option 'ranks'; it takes: none"):
        implementations.create("numpy_manual", w1, w2, 1e-3, ranks=2)
    with pytest.raises(ValueError, match="valid names: numpy_manual"):
        implementations.create("tensorflowish", w1, w2, 1e-3)


def test_cases_build_goes_through_create(monkeypatch):
    """sidebyside/cases.build builds with create (name and overrides passed on), in both call forms."""
    from sidebyside.workloads.two_layer import cases

    calls = []
    real_create = implementations.create

    def recording_create(name, *arguments, **keywords):
        calls.append((name, keywords))
        return real_create(name, *arguments, **keywords)

    monkeypatch.setattr(implementations, "create", recording_create)
    size = dict(N=4, D_in=5, H=3, D_out=2)
    net, x, y, problem = cases.build("numpy_manual", "cpu", "float64", size, 1e-3, 7, 0)
    assert (problem.steps, problem.dtype, x.dtype, x.shape) == (7, "float64", np.float64, (4, 5))
    from sidebyside.implementations.two_layer.numpy_manual import Net

    cases.build(Net, implementations.spec("numpy_manual"), "cpu", "float32", size)  # the older form
    cases.build(implementations.spec("numpy_manual"), "cpu", "float32", size)
    assert calls == [("numpy_manual", {"device": "cpu", "dtype": "float64"})] + 2 * [
        ("numpy_manual", {"device": "cpu", "dtype": "float32"})
    ]
    with pytest.raises(ValueError, match="numpy_manual: unknown option 'ranks'"):
        cases.build("numpy_manual", "cpu", "float32", size, ranks=2)


def test_digits_create_applies_its_registry():
    from sidebyside.implementations import digits
    from sidebyside.implementations.digits.numpy_manual import Net
    from sidebyside.implementations.digits.problem import DigitsProblem, initial_weights

    problem = DigitsProblem()
    params = initial_weights(problem, 64)
    net = digits.create("numpy_manual", params, problem)
    assert isinstance(net, Net)
    with pytest.raises(ValueError, match="numpy_manual: unknown option 'jit'"):
        digits.create("numpy_manual", params, problem, jit=True)
    with pytest.raises(ValueError, match="valid names: numpy_manual"):
        digits.create("ghost", params, problem)


def test_every_registered_name_says_what_it_is():
    """Every name's promise (tests/conftest.py's `promise`: declared, or Keras's options) agrees with its options."""
    from tests.conftest import is_keras, promise

    for name in implementations.names():
        spec = implementations.spec(name)
        if is_keras(name) and "jit_compile" not in spec.options:
            continue  # "auto": what it means is checked where Keras runs (test_extra_implementations)
        expected = promise(name)
        if "jit_compile" in spec.options:
            assert expected["jit_compile"] is spec.options["jit_compile"], name
        if name.endswith(("_xla", "_compile", "_jit")):
            assert expected["compiled"] is True, name
        if name.endswith(("_eager", "_manual", "_autograd", "_nn", "_ddp")):
            assert expected["compiled"] is False, name
    # A Keras name's options and backend say what it is: a declared promise could only disagree.
    assert not [name for name in implementations.names() if is_keras(name) and implementations.spec(name).promise]


def test_each_framework_has_a_tuned_variant_paired_with_its_idiom():
    """numpy, torch, jax and tensorflow each have one speed-written variant, paired with its sibling."""
    tuned = {name: spec for name, spec in implementations.REGISTRY.items() if spec.tuned_from}
    pairs = {spec.framework: (name, spec.tuned_from) for name, spec in tuned.items()}
    assert len(pairs) == len(tuned), "one tuned variant per framework"
    assert pairs.items() >= {
        "numpy": ("numpy_tuned", "numpy_manual"),
        "torch": ("torch_tuned", "torch_manual"),
        "jax": ("jax_tuned", "jax_jit"),
        "tensorflow": ("tensorflow_tuned", "tf_function"),
    }.items()
    for name, spec in tuned.items():
        sibling = implementations.spec(spec.tuned_from)
        assert sibling.tuned_from is None, f"{name} is paired with another tuned variant"
        assert (sibling.framework, sibling.requires, sibling.extra) == (spec.framework, spec.requires, spec.extra)
        assert spec.tuning and "." not in spec.tuning[-1:], f"{name}: one sentence, without its full stop"
    assert not any(spec.tuning for spec in implementations.REGISTRY.values() if not spec.tuned_from)


PRELOAD_CHECK = """
import sys
import numpy as np
from sidebyside import implementations
from sidebyside.implementations import digits
registry = digits if sys.argv[1] == "digits" else implementations
name = sys.argv[2]
registry.load(name)
for module in registry.spec(name).preload:
    __import__(module)
before = set(sys.modules)
if sys.argv[1] == "digits":
    from sidebyside.implementations.digits.problem import DigitsProblem, initial_weights
    problem = DigitsProblem()
    net = registry.create(name, initial_weights(problem, 64), problem)
else:
    from sidebyside.implementations.two_layer.problem import Problem, make_data
    problem = Problem()
    x, y, w1, w2 = make_data(problem)
    net = implementations.create(name, w1, w2, problem.learning_rate)
    net.step(*net.prepare(x, y))
print(len(set(sys.modules) - before))
"""


@pytest.mark.e2e  # a fresh process importing torch
@pytest.mark.parametrize("workload", ["two_layer", "digits"])
def test_the_preload_of_torch_nn_covers_what_its_optimizer_imports(workload):
    # The zygote imports a spec's `preload` before forking; what building the
    # net then imports is paid in every fresh process, every round.
    import subprocess
    import sys

    pytest.importorskip("torch")
    result = subprocess.run([sys.executable, "-c", PRELOAD_CHECK, workload, "torch_nn"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) < 50  # without the preload: about 800 modules


def test_the_first_step_reason_is_the_registry_field_not_the_name():
    """The report's reason for a slow first step is the entry's `first_step`, whatever it is called."""
    from sidebyside.report.findings import compile_reason

    row = {"implementation": "tf_function_xla", "framework": "tensorflow", "backend": "tensorflow", "device": "cpu"}
    assert compile_reason(row) == implementations.spec("tf_function_xla").first_step == implementations.TF_FIRST
    assert compile_reason({**row, "implementation": "keras_jax"}) == implementations.KERAS_FIRST
    # A name that looks compiled but is not registered as such gets the plain reason.
    plain = compile_reason({**row, "implementation": "torch_compile_lookalike"})
    assert plain == "the first step pays one-time set-up (allocation, caches, thread pools)"
    assert compile_reason({**row, "implementation": "numpy_manual", "device": "cuda"}).startswith("the first step pays CUDA")


LISTED = """
import json, sys
from sidebyside import implementations
modules = {spec.module for spec in implementations.REGISTRY.values()}
imported = [name for name in sys.modules if name.partition(".")[0] in ("torch", "tensorflow", "jax", "keras")
            or name.startswith("tests.stubs.") or name.rpartition(".")[2] in modules]
print(json.dumps({"names": implementations.names(), "imported": imported}))
"""


def test_a_test_only_implementation_is_one_file_found_by_listing():
    """tests/stubs/listed_net.py, named in SIDEBYSIDE_IMPLEMENTATIONS, is registered and listed; nothing is imported."""
    import json
    import os
    import subprocess

    from tests.conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT), "SIDEBYSIDE_IMPLEMENTATIONS": "tests.stubs", "COLUMNS": "200"}
    found = subprocess.run([sys.executable, "-c", LISTED], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert found.returncode == 0, found.stderr[-2000:]
    found = json.loads(found.stdout)
    # After every bundled one; stub_net is tests/stubs/stub_framework.py's (its framework's adapter is there too).
    assert found["names"] == implementations.names() + ["numpy_listed", "stub_net"]
    assert found["imported"] == [], "listing imported a variant or its framework"
    listed = subprocess.run([sys.executable, "-m", "sidebyside.cli", "list"], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=60)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert any("numpy_listed" in line and "numpy" in line.replace("numpy_listed", "") for line in listed.stdout.splitlines())


def test_a_listed_implementation_is_built_and_trained_like_a_bundled_one(monkeypatch):
    registry = implementations.discover(["tests.stubs.listed_net"])
    entry = registry["numpy_listed"]
    assert list(registry)[:-1] == implementations.names()
    assert (entry.module, entry.workloads, entry.promise) == ("tests.stubs.listed_net", ("two_layer",), {"compiled": False})
    monkeypatch.setitem(implementations.REGISTRY, "numpy_listed", entry)
    problem = Problem(N=4, D_in=6, H=5, D_out=3)
    x, y, w1, w2 = make_data(problem)
    losses = {}
    for name in ("numpy_listed", "numpy_manual"):
        net = implementations.create(name, w1, w2, problem.learning_rate)
        losses[name] = [net.step(*net.prepare(x, y)) for _ in range(3)]
    assert losses["numpy_listed"] == losses["numpy_manual"]


def test_the_declarations_read_from_the_source_are_the_modules_constants():
    """What the registry reads with ast is what importing the file gives (numpy's files: cheap to import)."""
    import importlib
    from pathlib import Path

    for module in ("two_layer.numpy_manual", "two_layer.numpy_tuned", "digits.numpy_manual"):
        imported = importlib.import_module(f"sidebyside.implementations.{module}")
        assert implementations.declarations(Path(imported.__file__)) == imported.IMPLEMENTATIONS, module


@pytest.mark.parametrize("source, error", [
    ('IMPLEMENTATIONS = [{"name": "numpy_manual", "framework": "numpy", "requires": ("numpy",), "extra": "numpy"}]',
     "numpy_manual is already declared by numpy_manual"),
    ('IMPLEMENTATIONS = [{"name": "twice", "framework": "numpy", "requires": ("numpy",), "extra": "numpy"}] * 2',
     "must be a literal"),
    ('IMPLEMENTATIONS = [{"name": "twice"}, {"name": "twice"}]', "twice is already declared by plugged"),
    ('FIRST = "x"\nIMPLEMENTATIONS = [{"name": "named", "first_step": FIRST}]', "names FIRST; besides literals"),
    ('IMPLEMENTATIONS = [{"name": "bare", "framework": "numpy"}]', "bare: .*missing .*'requires'"),
    ('IMPLEMENTATIONS = [{"name": "placed", "framework": "numpy", "requires": ("numpy",), "extra": "numpy", '
     '"module": "elsewhere"}]', "placed's module is where its file is"),
])
def test_a_bad_declaration_names_its_file(source, error, tmp_path, monkeypatch):
    (tmp_path / "plugged.py").write_text(source + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match=error):
        implementations.discover(["plugged"])


def test_a_files_registry_entries_are_not_counted_as_its_code():
    """The report's lines of code compare frameworks: a file's declaration for the registry is not one of them."""
    from sidebyside.report.code import count_lines_of_code

    body = "import numpy as np\n\n\ndef step(x):\n    return np.dot(x, x)\n"
    declared = ("import numpy as np\n\nfrom sidebyside.implementations import TF_FIRST\n\n"
                "IMPLEMENTATIONS = [\n    {\"name\": \"a\", \"first_step\": TF_FIRST},\n]\n\n\n"
                "def step(x):\n    return np.dot(x, x)\n")
    assert count_lines_of_code(declared) == count_lines_of_code(body) == 3
