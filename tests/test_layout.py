"""The installed layout: one import namespace, `sidebyside`, and nothing else.

The repository keeps its top-level folders (benchmarks/ the pytest-benchmark
suite, implementations/, reports/ for run output, tests/), but a wheel holds
only the package `sidebyside`, with implementations/ mapped into it as
`sidebyside.implementations`; no test file ships. Seen from outside the
checkout, the names `benchmarks`, `reports` and `implementations` are not
this project's. And no module of the project imports itself in a circle.
"""

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("sidebyside",)


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    """The files of a wheel built from a copy of what git tracks (a build leaves build/ where it runs)."""
    source, folder = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, text=True, cwd=ROOT, check=True)
    for name in filter(None, tracked.stdout.split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q", "-w", str(folder)],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0 and "No module named" in result.stderr:
        pytest.skip(f"n/a: cannot build a wheel here: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    (wheel,) = folder.glob("sidebyside-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_one_namespace_and_no_tests(wheel_names):
    tops = {name.split("/")[0] for name in wheel_names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"sidebyside"}, tops
    files = [Path(name).name for name in wheel_names]
    assert not [name for name in files if name.startswith("test_") or name == "conftest.py"]
    for expected in ("sidebyside/cli.py", "sidebyside/implementations/__init__.py",
                     "sidebyside/implementations/two_layer/torch_autograd.py",
                     "sidebyside/implementations/digits/torch_nn.py",
                     "sidebyside/report/templates/report.html.j2",
                     "sidebyside/results.schema.json"):  # the JSON Schema of results.json, for other tools
        assert expected in wheel_names
    # Every module of the checkout's namespace is in the wheel, none left out.
    shipped = {f"sidebyside/{path.relative_to(ROOT / 'sidebyside').as_posix()}" for path in (ROOT / "sidebyside").rglob("*.py")}
    shipped |= {f"sidebyside/implementations/{path.relative_to(ROOT / 'implementations').as_posix()}"
                for path in (ROOT / "implementations").rglob("*.py")}
    assert sorted(shipped - set(wheel_names)) == []


def test_outside_the_checkout_only_sidebyside_is_ours(tmp_path):
    code = (
        "import importlib.util, json, sidebyside, sidebyside.implementations.two_layer.numpy_manual as m\n"
        "found = {}\n"
        "for name in ('benchmarks', 'reports', 'implementations'):\n"
        "    spec = importlib.util.find_spec(name)\n"
        "    found[name] = spec.origin if spec else None\n"
        "print(json.dumps([sidebyside.__file__, m.__file__, found]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    harness, module, found = __import__("json").loads(result.stdout)
    assert Path(harness).is_relative_to(ROOT / "sidebyside")
    assert Path(module) == ROOT / "implementations" / "two_layer" / "numpy_manual.py"
    for name, origin in found.items():
        assert origin is None or not Path(origin).is_relative_to(ROOT), (name, origin)


def test_an_implementation_runs_as_a_module_from_anywhere(tmp_path):
    result = subprocess.run([sys.executable, "-m", "sidebyside.implementations.two_layer.numpy_manual"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    printed = [line.split()[0] for line in result.stdout.splitlines()]
    assert printed == ["99", "199", "299", "399", "499"]  # the loss every 100 steps, as the tutorial prints


def project_modules():
    """{dotted name: file} for every module of the installed namespace, as the wheel maps them."""
    modules = {}
    for folder, package in ((ROOT / "sidebyside", "sidebyside"), (ROOT / "implementations", "sidebyside.implementations")):
        for path in folder.rglob("*.py"):
            if package == "sidebyside" and "implementations" in path.relative_to(folder).parts:
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = path
    return modules


def imported(path, name, modules):
    """The project modules `path` (module `name`) imports, at module level or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import name`: the submodule where `name` is one
            # (importing it runs the package's __init__ first, and that edge
            # is Python's), else the package or module that defines `name`.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def circles(modules):
    """Each import circle among `modules` ({dotted name: file}), as "a -> b -> a"."""
    # An edge to a parent package counts: a submodule that takes a name from
    # its package's __init__, which imports the submodule, is a circle.
    graph = {name: imported(path, name, modules) for name, path in modules.items()}
    found, state = [], {}

    def visit(name, trail):
        state[name] = "open"
        for target in sorted(graph.get(name, ())):
            if state.get(target) == "open":
                found.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in state:
                visit(target, trail + [target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return found


def test_no_module_imports_itself_in_a_circle():
    found = circles(project_modules())
    assert not found, "\n".join(found)


def planted(folder, files):
    """{dotted name: file} of modules written under `folder` from {dotted name (pkg.__init__ for a package): source}."""
    modules = {}
    for dotted, text in files.items():
        path = folder.joinpath(*dotted.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        modules[dotted.removesuffix(".__init__")] = path
    return modules


def test_the_circle_check_finds_planted_circles(tmp_path):
    """Both kinds: through a package's __init__, and inside a function."""
    files = {
        "pkg.__init__": "from pkg import sub\n\ndef helper():\n    return 1\n",
        "pkg.sub": "from pkg import helper\n",  # takes a name from the __init__ that imports it
        "pkg.left": "def f():\n    from pkg.right import g\n",
        "pkg.right": "from pkg import left\n",
        "pkg.alone": "from pkg.sub import *\n",
    }
    assert sorted(circles(planted(tmp_path, files))) == ["pkg -> pkg.sub -> pkg", "pkg.left -> pkg.right -> pkg.left"]


def workload_mentions(path, names):
    """(line, text) of every identifier or string literal (docstrings aside) that names a workload."""
    import io
    import re
    import tokenize

    source = path.read_text(encoding="utf-8")
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                docstrings.add(first.lineno)
    pattern = "|".join(re.escape(name) for name in names)
    identifier = re.compile(rf"(^|_)({pattern})(_|$)", re.IGNORECASE)
    literal = re.compile(rf"\b({pattern})\b", re.IGNORECASE)
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and identifier.search(token.string):
            found.append((token.start[0], token.string))
        elif token.type == tokenize.STRING and token.start[0] not in docstrings and literal.search(token.string):
            found.append((token.start[0], token.string[:60]))
    return found


def test_no_harness_module_outside_a_workload_names_one():
    """Workloads are plug-ins: only sidebyside/workloads/ and the jobs that serve them (sidebyside/jobs/) may name
    one, in code (prose may give examples)."""
    from sidebyside import workloads

    names = workloads.names()
    assert {"two_layer", "digits"} <= set(names)
    harness = ROOT / "sidebyside"
    offenders = []
    for path in sorted(harness.rglob("*.py")):
        if (harness / "workloads") in path.parents or (harness / "jobs") in path.parents:
            continue
        if path == harness / "migrate.py":  # a fact about older files: entries that named no workload were two_layer's
            continue
        offenders += [f"{path.relative_to(ROOT)}:{line}: {text}" for line, text in workload_mentions(path, names)]
    assert not offenders, "\n".join(offenders)


def test_the_mention_check_finds_a_planted_mention(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('"""Docstrings may say two_layer."""\nDIGITS = 1\nif kind == "two_layer":\n    pass\n')
    assert [line for line, _ in workload_mentions(planted, ["two_layer", "digits"])] == [2, 3]
