"""The layers of the harness, read from the README's Layout section, and kept.

The README lists the layers lowest first, each with the modules it holds
(a module belongs to the layer of its longest listed prefix). A module may
import its own layer and those below, never one above: the test walks every
import of the project's own modules, at module level or inside a function,
and names each upward edge. An import inside a function is allowed only
where it keeps a CLI subcommand or an optional extra from loading early, so
there are few of them: at most MAX_DEFERRED.
"""

import ast
import re

from tests.conftest import ROOT
from tests.test_layout import imported, planted, project_modules

MAX_DEFERRED = 20


def layer_order(readme_text):
    """[(layer name, [module prefixes])] from the README's numbered layer list, lowest first."""
    layers = []
    for line in readme_text.split("## Layout", 1)[1].splitlines():
        found = re.match(r"^(\d+)\. ([^:]+): (.+)$", line.strip())
        if found:
            assert int(found[1]) == len(layers) + 1, f"layer {found[1]} out of order"
            layers.append((found[2], [f"sidebyside.{name.strip('`,')}" for name in found[3].split()]))
    return layers


def layer_of(module, layers):
    """The index of the layer `module` belongs to (its longest listed prefix), or None."""
    best = None
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    return best and best[0]


def upward_edges(modules, layers):
    """Each import from a lower layer into a higher one, as "a (layer) -> b (layer)"."""
    found = []
    for name, path in sorted(modules.items()):
        mine = layer_of(name, layers)
        for target in sorted(imported(path, name, modules)):
            theirs = layer_of(target, layers)
            if mine is not None and theirs is not None and theirs > mine:
                found.append(f"{name} ({layers[mine][0]}) -> {target} ({layers[theirs][0]})")
    return found


def deferred_imports(modules):
    """Each import of a project module inside a function, as "module:line target"."""
    found = []
    for name, path in sorted(modules.items()):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and (inner.level or (inner.module or "").startswith("sidebyside")):
                    found.append(f"{name}:{inner.lineno} {'.' * inner.level}{inner.module or ''}")
                elif isinstance(inner, ast.Import):
                    found += [f"{name}:{inner.lineno} {alias.name}" for alias in inner.names
                              if alias.name.startswith("sidebyside")]
    return sorted(set(found))


LAYERS = layer_order((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_writes_the_layers_down_and_every_module_has_one():
    assert len(LAYERS) >= 5, LAYERS
    unplaced = [name for name in project_modules() if name != "sidebyside" and layer_of(name, LAYERS) is None]
    assert unplaced == []


def test_no_module_imports_a_higher_layer():
    found = upward_edges(project_modules(), LAYERS)
    assert not found, "\n".join(found)


def test_few_imports_wait_inside_functions():
    found = deferred_imports(project_modules())
    assert len(found) <= MAX_DEFERRED, f"{len(found)} imports inside functions:\n" + "\n".join(found)


def test_the_checks_find_planted_edges(tmp_path):
    """An upward import at module level and one inside a function are both found; a downward one is not."""
    files = {
        "sidebyside.low": "def f():\n    from sidebyside import high\n",
        "sidebyside.high": "from sidebyside import low\n",
        "sidebyside.mid": "import sidebyside.high\n",
    }
    modules = planted(tmp_path, files)
    readme = "# x\n## Layout\n1. bottom: `low`\n2. middle: `mid`\n3. top: `high`\n## Next\n"
    layers = layer_order(readme)
    assert [name for name, _ in layers] == ["bottom", "middle", "top"]
    assert upward_edges(modules, layers) == ["sidebyside.low (bottom) -> sidebyside.high (top)",
                                             "sidebyside.mid (middle) -> sidebyside.high (top)"]
    assert deferred_imports(modules) == ["sidebyside.low:2 sidebyside"]
