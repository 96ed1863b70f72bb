"""The implementations' code side by side: the suite's Rosetta stone.

Each registered module is highlighted by pygments once, line by line, with
its module docstring as the caption. The page shows two modules side by
side as a diff tool does: difflib aligns the lines of every pair of modules
here, when the report is built, and the differing lines are marked. The
default pair (numpy_manual and torch_manual for the two-layer net) is
rendered into the page; report.js draws any other pair the reader picks
from the same alignments. Each module also counts the code lines that
differ from the first module of the workload. Lines of code are counted
with tokenize and ast: blank lines, comments and docstrings do not count.

Nothing here imports a framework: modules are found with importlib's
find_spec and read as text.
"""

import ast
import difflib
import importlib
import importlib.util
import io
import itertools
import json
import tokenize
from dataclasses import dataclass, field

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

# The registry; each workload's modules live in its package of the workload's name.
REGISTRY_PACKAGE = "sidebyside.implementations"
CSS_CLASS = "code"
# How an aligned row of two files differs, as report.js reads it.
SAME, CHANGED, ONLY_LEFT, ONLY_RIGHT = 0, 1, 2, 3
ROW_CLASSES = {SAME: "same", CHANGED: "changed", ONLY_LEFT: "only-left", ONLY_RIGHT: "only-right"}
NOT_CODE = {
    tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
    tokenize.ENCODING, tokenize.ENDMARKER,
}


@dataclass
class CodeColumn:
    module: str
    names: list  # registry names that use this module
    framework: str
    docstring: str
    lines: list  # the shown source (after the module docstring), one pygments-highlighted line each
    first_line: int  # the file's line number of lines[0]
    lines_of_code: int
    changed: int  # code lines that differ from the base module
    path: str


@dataclass
class CodeSection:
    kind = "code"  # a block of a report section (tables.Section)
    workload: str
    base: str | None  # module the others are compared with
    columns: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # modules that could not be shown, with why
    sources: dict = field(default_factory=dict)  # module -> the shown source, for the alignments
    pair: tuple | None = None  # (left module, right module) shown first, where the workload names one

    @property
    def lines_of_code(self):
        """Registry name -> lines of code of its module."""
        return {name: column.lines_of_code for column in self.columns for name in column.names}

    def column(self, module):
        return next(column for column in self.columns if column.module == module)

    @property
    def default_pair(self):
        """(left module, right module) shown first; None with fewer than two modules."""
        modules = [column.module for column in self.columns]
        preferred = self.pair
        if preferred and all(module in modules for module in preferred):
            return preferred
        return tuple(modules[:2]) if len(modules) >= 2 else None

    def rows(self, left, right):
        """The aligned rows of two modules: [(left index | None, right index | None, kind)]."""
        return aligned_rows(self.sources[left], self.sources[right])

    def comparison_json(self):
        """Every pair's alignment, as report.js reads it: {"pairs": {"left|right": [run, ...]}}.

        A run [kind, first left index, first right index, count] stands for
        `count` rows of one kind whose indices count up from the first ones
        (-1: no line on that side). Only one order of each pair is stored;
        report.js swaps the sides for the other.
        """
        pairs = {}
        for left, right in itertools.combinations([column.module for column in self.columns], 2):
            pairs[f"{left}|{right}"] = runs(self.rows(left, right))
        return json.dumps({"pairs": pairs}, separators=(",", ":"))


def docstring_lines(tree):
    """Line numbers covered by module, class and function docstrings."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def registry_lines(tree):
    """The lines of a file's registry entries (`IMPLEMENTATIONS = [...]`, and the registry constants it imports
    for them): what the harness reads about the file, not the framework code it compares."""
    lines = set()
    for node in tree.body:
        declares = isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "IMPLEMENTATIONS" for target in node.targets)
        constants = isinstance(node, ast.ImportFrom) and node.module == "sidebyside.implementations" and all(
            alias.name.isupper() for alias in node.names)
        if declares or constants:
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def code_lines(source):
    """The set of line numbers that hold code (not blank, comment, docstring or registry entries)."""
    tree = ast.parse(source)
    docstrings = docstring_lines(tree) | registry_lines(tree)
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in NOT_CODE:
            continue
        for line in range(token.start[0], token.end[0] + 1):
            if line not in docstrings:
                lines.add(line)
    return lines


def count_lines_of_code(source):
    """Lines that hold code: blank lines, comments and docstrings do not count."""
    return len(code_lines(source))


def module_docstring(source):
    return ast.get_docstring(ast.parse(source)) or ""


def without_module_docstring(source):
    """(the source after its module docstring, number of the first line kept)."""
    tree = ast.parse(source)
    lines = source.splitlines()
    start = 0
    if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, ast.Constant) \
            and isinstance(tree.body[0].value.value, str):
        start = tree.body[0].end_lineno
    while start < len(lines) and not lines[start].strip():
        start += 1
    return "\n".join(lines[start:]) + "\n", start + 1


def line_opcodes(left_source, right_source):
    """difflib's opcodes between two sources' lines, compared without their indentation."""
    left = [line.strip() for line in left_source.splitlines()]
    right = [line.strip() for line in right_source.splitlines()]
    return difflib.SequenceMatcher(None, left, right, autojunk=False).get_opcodes()


def aligned_rows(left_source, right_source):
    """Rows as a side-by-side diff shows them: (left index | None, right index | None, kind).

    Equal lines pair up; a replaced block pairs its lines in order, the
    longer side's rest standing alone; deleted and inserted lines stand alone.
    """
    rows = []
    for tag, i1, i2, j1, j2 in line_opcodes(left_source, right_source):
        if tag == "equal":
            rows += [(i, j, SAME) for i, j in zip(range(i1, i2), range(j1, j2))]
            continue
        for offset in range(max(i2 - i1, j2 - j1)):
            left = i1 + offset if i1 + offset < i2 else None
            right = j1 + offset if j1 + offset < j2 else None
            kind = CHANGED if left is not None and right is not None else ONLY_LEFT if right is None else ONLY_RIGHT
            rows.append((left, right, kind))
    return rows


def runs(rows):
    """Aligned rows as runs [kind, first left, first right, count] (-1 where a side has no line)."""
    encoded = []
    for left, right, kind in rows:
        left, right = -1 if left is None else left, -1 if right is None else right
        if encoded:
            last_kind, first_left, first_right, count = encoded[-1]
            if last_kind == kind and left == (first_left + count if first_left >= 0 else -1) \
                    and right == (first_right + count if first_right >= 0 else -1):
                encoded[-1][3] += 1
                continue
        encoded.append([kind, left, right, 1])
    return encoded


def changed_lines(base_source, source):
    """Code lines of `source` (1-based) that differ from `base_source`."""
    changed = set()
    for tag, _, _, j1, j2 in line_opcodes(base_source, source):
        if tag in ("replace", "insert"):
            changed.update(range(j1 + 1, j2 + 1))
    return changed & code_lines(source)


def registry_for(workload, registry=None):
    """(registry entries of the workload, package their modules live in), or a reason.

    `registry`: a workload's own (an object with REGISTRY); by default the one
    registry of REGISTRY_PACKAGE.
    """
    package = f"{REGISTRY_PACKAGE}.{workload}"
    try:
        entries = (registry or importlib.import_module(REGISTRY_PACKAGE)).REGISTRY
    except Exception as error:  # absent or half-written: the report says so
        return [], package, f"{REGISTRY_PACKAGE} is not available: {type(error).__name__}: {error}"
    entries = [entry for entry in entries.values() if workload in getattr(entry, "workloads", ())]
    return entries, package, None


def module_path(package, module):
    try:
        spec = importlib.util.find_spec(module if "." in module else f"{package}.{module}")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin and spec.origin.endswith(".py"):
        return spec.origin
    return None


def formatter():
    return HtmlFormatter(cssclass=CSS_CLASS, nowrap=True)


def highlighted_lines(source):
    """One line of pygments HTML (escaped, its spans closed) per line of `source`."""
    count = len(source.splitlines())
    # stripnl=False keeps leading blank lines, so line i of the output is line i of the source.
    text = highlight(source, PythonLexer(stripnl=False, ensurenl=True), formatter())
    return [Markup(line) for line in text.split("\n")[:count]]


def stylesheet():
    """The CSS pygments' classes need, scoped to .code, embedded once in the page."""
    return formatter().get_style_defs(f".{CSS_CLASS}")


def code_section(workload, registry=None, pair=None):
    """The side-by-side code of every module registered for `workload`; `pair` is shown first."""
    entries, package, problem = registry_for(workload, registry)
    section = CodeSection(workload, None, pair=tuple(pair) if pair else None)
    if problem:
        section.problems.append(problem)
    modules = {}
    for entry in entries:
        modules.setdefault(entry.module, []).append(entry)
    base_source = None
    for module, users in modules.items():
        path = module_path(package, module)
        if path is None:
            section.problems.append(f"{module}: source file not found")
            continue
        try:
            with open(path, encoding="utf-8") as stream:
                source = stream.read()
            lines_of_code = count_lines_of_code(source)
        except (OSError, SyntaxError, UnicodeDecodeError, tokenize.TokenError) as error:
            section.problems.append(f"{module}: cannot read: {type(error).__name__}: {error}")
            continue
        shown, first_line = without_module_docstring(source)
        if base_source is None:
            base_source, section.base = shown, module
            changed = set()
        else:
            changed = changed_lines(base_source, shown)
        section.sources[module] = shown
        section.columns.append(
            CodeColumn(
                module=module,
                names=[entry.name for entry in users],
                framework=", ".join(dict.fromkeys(entry.framework for entry in users)),
                docstring=module_docstring(source),
                lines=highlighted_lines(shown),  # pygments escapes; Markup: not escaped twice
                first_line=first_line,
                lines_of_code=lines_of_code,
                changed=len(changed),
                path=path,
            )
        )
    return section
