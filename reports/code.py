"""The implementations' code side by side: the suite's Rosetta stone.

Each registered module is shown once, syntax-highlighted by pygments, with
its module docstring as the caption. Lines that differ from the first
module of the workload (numpy_manual for the two-layer net) are highlighted,
so the framework-specific lines stand out. Lines of code are counted with
tokenize and ast: blank lines, comments and docstrings do not count.

Nothing here imports a framework: modules are found with importlib's
find_spec and read as text.
"""

import ast
import difflib
import importlib
import importlib.util
import io
import tokenize
from dataclasses import dataclass, field

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

# Where each workload's modules live, and the registry that lists them.
WORKLOAD_PACKAGES = {"two_layer": "implementations", "digits": "implementations.digits"}
CSS_CLASS = "code"
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
    html: str  # pygments output, already escaped
    lines_of_code: int
    changed: int  # code lines that differ from the base module
    path: str


@dataclass
class CodeSection:
    workload: str
    base: str | None  # module the others are compared with
    columns: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # modules that could not be shown, with why

    @property
    def lines_of_code(self):
        """Registry name -> lines of code of its module."""
        return {name: column.lines_of_code for column in self.columns for name in column.names}


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


def code_lines(source):
    """The set of line numbers that hold code (not blank, comment or docstring)."""
    tree = ast.parse(source)
    docstrings = docstring_lines(tree)
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


def changed_lines(base_source, source):
    """Code lines of `source` (1-based) that differ from `base_source`."""
    base = [line.strip() for line in base_source.splitlines()]
    other = [line.strip() for line in source.splitlines()]
    matcher = difflib.SequenceMatcher(None, base, other, autojunk=False)
    changed = set()
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            changed.update(range(j1 + 1, j2 + 1))
    return changed & code_lines(source)


def registry_for(workload):
    """(registry entries of the workload, package their modules live in), or a reason."""
    package = WORKLOAD_PACKAGES.get(workload, "implementations")
    try:
        module = importlib.import_module(package)
        registry = getattr(module, "REGISTRY")
    except Exception as error:  # absent or half-written: the report says so
        return [], package, f"{package} is not available: {type(error).__name__}: {error}"
    entries = [entry for entry in registry.values() if getattr(entry, "workload", workload) == workload]
    if package != "implementations":  # the main registry may list some too
        try:
            main = importlib.import_module("implementations").REGISTRY
            entries += [entry for entry in main.values() if getattr(entry, "workload", None) == workload
                        and entry not in entries]
        except Exception:
            pass
    return entries, package, None


def module_path(package, module):
    for candidate in (package, "implementations"):
        try:
            spec = importlib.util.find_spec(f"{candidate}.{module}")
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            return spec.origin
    return None


def formatter(hl_lines=(), start=1):
    return HtmlFormatter(
        cssclass=CSS_CLASS, hl_lines=sorted(hl_lines), linenos="inline", linenostart=start, wrapcode=True
    )


def stylesheet():
    """The CSS pygments' classes need, scoped to .code, embedded once in the page."""
    return formatter().get_style_defs(f".{CSS_CLASS}")


def code_section(workload):
    """The side-by-side code of every module registered for `workload`."""
    entries, package, problem = registry_for(workload)
    section = CodeSection(workload, None)
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
        # pygments escapes the source; Markup tells Jinja2 not to escape it twice.
        html = Markup(highlight(shown, PythonLexer(), formatter(changed, first_line)))
        section.columns.append(
            CodeColumn(
                module=module,
                names=[entry.name for entry in users],
                framework=", ".join(dict.fromkeys(entry.framework for entry in users)),
                docstring=module_docstring(source),
                html=html,
                lines_of_code=lines_of_code,
                changed=len(changed),
                path=path,
            )
        )
    return section
