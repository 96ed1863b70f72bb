"""Environments built from requirements (`sidebyside run --env NAME=REQUIREMENTS`), cached, listed and removed.

A value of --env that is no interpreter is a requirement list: specifiers
separated by commas or spaces ("numpy==1.26.*", "numpy>=1.26,<2 scipy").
`ensure` builds a virtual environment of the running Python with uv (the
`uv` package's binary): those requirements plus this project, installed
editable from its checkout, so that every environment runs the same code
and differs only in what the requirements pin. It lives in the cache folder
(`cache_root`: $SIDEBYSIDE_ENV_CACHE, else $XDG_CACHE_HOME/sidebyside/envs,
else ~/.cache/sidebyside/envs), in a folder named by the hash of the
requirements, the Python and the checkout (`cache_key`), and is reused by
the next run that asks for the same. A folder holds a finished environment
once its record (MARKER) is written, last; a build cut short is built again.

uv reads no pip configuration: where PIP_INDEX_URL, PIP_EXTRA_INDEX_URL,
PIP_FIND_LINKS or PIP_CONSTRAINT are set (and their UV_ twins are not),
they are passed on (`uv_environment`); otherwise uv uses its defaults (PyPI).

An environment that cannot be built raises BuildFailed with the resolver's
reason in one line. `sidebyside envs` lists the cached environments and
`sidebyside envs clear [MATCH]` removes them (`command`).
"""

import datetime
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

import sidebyside
from sidebyside.files import atomic_write
from sidebyside.results import one_line

CACHE_VARIABLE = "SIDEBYSIDE_ENV_CACHE"
MARKER = "sidebyside-env.json"  # in the environment's folder, written once it is complete
BUILD_TIMEOUT_S = 3600  # a torch CUDA build is GBs to download
REASON_LIMIT = 400
# pip's variables and the uv variables they become: uv reads no pip configuration (files or variables).
PASSED_ON = {"PIP_INDEX_URL": "UV_INDEX_URL", "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
             "PIP_FIND_LINKS": "UV_FIND_LINKS", "PIP_CONSTRAINT": "UV_CONSTRAINT"}
INTERPRETER_NAME = re.compile(r"python[0-9.]*")
OPERATORS = "<>=!~"  # a token that starts or ends with one continues a requirement
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class BuildFailed(Exception):
    """An environment that could not be built: the reason in one line."""


@dataclass
class Built:
    python: str  # the environment's interpreter
    record: dict  # what results.json's machine.environments keeps of it, besides machine.environment's
    folder: Path


def is_interpreter(value):
    """Whether an --env value names an interpreter (a path, or python3.11 on the PATH), not requirements."""
    value = value.strip()
    return (os.sep in value or "/" in value or value.startswith(("~", ".")) or Path(value).is_file()
            or bool(INTERPRETER_NAME.fullmatch(value)))


def parse_requirements(text):
    """Requirement specifiers from a comma- or space-separated list; ValueError in one line.

    A comma or space followed by an operator or a version continues the requirement before it:
    "numpy>=1.26,<2" is one requirement, "numpy >= 1.26" too, "numpy==1.26.* scipy" two.
    """
    parts = []
    for token in re.findall(r"[^\s,]+", text):
        if parts and parts[-1][-1] in OPERATORS:  # "numpy>=" then "1.26"
            parts[-1] += token
        elif parts and token[0] in OPERATORS:  # "numpy" then ">=1.26"; "numpy>=1.26" then "<2"
            parts[-1] += ("," if any(c in OPERATORS for c in parts[-1]) else "") + token
        else:
            parts.append(token)
    if not parts:
        raise ValueError("no requirements (give NAME=PYTHON or NAME=REQUIREMENTS, e.g. np2=\"numpy>=2\")")
    requirements = []
    for part in parts:
        try:
            requirement = Requirement(part)
        except InvalidRequirement as error:
            raise ValueError(f"{part!r} is not a requirement: {one_line(str(error).splitlines()[0], 200)}") from None
        requirement.name = canonicalize_name(requirement.name)
        requirements.append(str(requirement))
    return requirements


def cache_root():
    """Where environments are kept: $SIDEBYSIDE_ENV_CACHE, else the user's cache folder."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.path.expanduser(os.environ[CACHE_VARIABLE]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sidebyside" / "envs"


def project_root():
    """The checkout this sidebyside runs from (it holds pyproject.toml), installed editable in each environment."""
    root = Path(sidebyside.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def python_version():
    return f"{platform.python_implementation()}-{platform.python_version()}"


def cache_key(requirements, python=None, project=None):
    """The folder name of an environment: the hash of its sorted requirements, the Python and the checkout."""
    data = json.dumps({"requirements": sorted(requirements), "python": python or python_version(),
                       "project": os.fspath(project if project is not None else project_root())})
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def uv_environment(environ=None):
    """The environment uv runs in: pip's index settings passed on where uv's own are not set."""
    environ = dict(os.environ if environ is None else environ)
    for pip, uv in PASSED_ON.items():
        if environ.get(pip) and not environ.get(uv):
            value = environ[pip]
            environ[uv] = ",".join(value.split()) if uv == "UV_FIND_LINKS" else value  # uv's find-links: commas
    environ.update(NO_COLOR="1", UV_NO_PROGRESS="1")
    return environ


def uv_binary():
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise BuildFailed("uv is not installed (pip install uv)") from None
        return found


def uv_reason(stderr, code):
    """The resolver's reason in one line: uv's error paragraph, its causes joined, the hints left out."""
    lines = [ANSI.sub("", line).strip() for line in (stderr or "").splitlines()]
    start = next((index for index, line in enumerate(lines) if line.startswith("error:")), None)
    if start is None:
        kept = [line for line in lines if line][-1:]
    else:
        kept = []
        for line in lines[start:]:
            if not line or line.startswith("hint:"):
                break
            kept.append(line)
    text = " ".join(kept) or f"uv exited with status {code}"
    text = re.sub(r"^error:\s*", "", text)
    text = re.sub(r"\s*(cause|Caused by):\s*", ": ", text)
    return one_line(text, REASON_LIMIT)


def run_uv(arguments, log=None, timeout_s=BUILD_TIMEOUT_S):
    """uv with these arguments; its output. BuildFailed with uv's reason where it fails."""
    try:
        result = subprocess.run([uv_binary(), *arguments], capture_output=True, text=True, timeout=timeout_s,
                                env=uv_environment(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"uv did not finish within {timeout_s} s") from None
    except OSError as error:
        raise BuildFailed(f"cannot run uv: {error.strerror or error}") from None
    if log is not None:
        log.write(f"$ uv {' '.join(arguments)}\n{result.stdout}{result.stderr}")
        log.flush()
    if result.returncode != 0:
        raise BuildFailed(uv_reason(result.stderr, result.returncode))
    return result.stdout


def interpreter(folder):
    return folder / "bin" / "python"


def read_record(folder):
    """The record of a complete environment, or None."""
    try:
        record = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Lock:
    """An exclusive lock on one environment's folder (a file beside it), so two runs never build it at once."""

    def __init__(self, path, wait=True):
        self.path, self.wait = Path(path), wait

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except OSError:
            self.handle.close()
            raise
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def ensure(name, text, root=None, log=None):
    """The environment of requirement list `text`, built now or found in the cache; a Built.

    BuildFailed (one line: the resolver's reason) where it cannot be built.
    """
    try:
        requirements = parse_requirements(text)
    except ValueError as error:
        raise BuildFailed(str(error)) from None
    project = project_root()
    if project is None:
        raise BuildFailed("sidebyside does not run from a checkout (no pyproject.toml beside its package), "
                          "so it cannot be installed in a new environment; use --env NAME=PYTHON")
    root = Path(root) if root is not None else cache_root()
    key = cache_key(requirements, project=project)
    folder = root / key
    started = time.perf_counter()
    try:
        with Lock(root / f"{key}.lock"):
            record = read_record(folder)
            cached = record is not None and interpreter(folder).exists()
            if not cached:
                if folder.exists():  # a build cut short
                    shutil.rmtree(folder)
                try:
                    run_uv(["venv", "--quiet", "--python", sys.executable, os.fspath(folder)], log)
                    run_uv(["pip", "install", "--python", os.fspath(interpreter(folder)), *requirements,
                            "--editable", os.fspath(project)], log)
                    listed = json.loads(run_uv(["pip", "list", "--format", "json", "--python",
                                                os.fspath(interpreter(folder))], log) or "[]")
                except BaseException:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise
                versions = {canonicalize_name(item["name"]): item["version"] for item in listed
                            if isinstance(item, dict) and "name" in item and "version" in item}
                record = {"key": key, "requirements": requirements, "line": text.strip(), "python": python_version(),
                          "project": os.fspath(project), "created": now(), "names": [],
                          "installed": {Requirement(r).name: versions.get(Requirement(r).name)
                                        for r in requirements},
                          "build_s": round(time.perf_counter() - started, 3)}
            record["names"] = list(dict.fromkeys([*(record.get("names") or []), name]))
            record["name"], record["last_used"] = name, now()
            atomic_write(folder / MARKER, json.dumps(record, indent=1))
    except OSError as error:
        raise BuildFailed(f"cannot use the cache folder {root}: {error.strerror or error}") from None
    setup_s = time.perf_counter() - started
    return Built(os.fspath(interpreter(folder)), {
        "requirements": text.strip(), "installed": record.get("installed") or {}, "folder": os.fspath(folder),
        "setup_s": round(setup_s, 3), "cached": cached}, folder)


# ----------------------------------------------------------------------------
# Listing and removing: `sidebyside envs`, `sidebyside envs clear [MATCH]`
# ----------------------------------------------------------------------------


def disk_bytes(folder):
    """The bytes a folder takes on disk (blocks, each file counted once however many links it has)."""
    seen, total = set(), 0
    for directory, folders, files in os.walk(folder):
        for item in files + folders:
            try:
                status = os.lstat(os.path.join(directory, item))
            except OSError:
                continue
            if (status.st_dev, status.st_ino) not in seen:
                seen.add((status.st_dev, status.st_ino))
                total += getattr(status, "st_blocks", 0) * 512 or status.st_size
    return total


def cached(root=None):
    """Every environment folder in the cache: [{key, folder, complete, record, bytes}], oldest use first."""
    root = Path(root) if root is not None else cache_root()
    found = []
    if not root.is_dir():
        return found
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        record = read_record(folder)
        found.append({"key": folder.name, "folder": folder, "complete": record is not None, "record": record or {},
                      "bytes": disk_bytes(folder)})
    return sorted(found, key=lambda item: item["record"].get("last_used") or "")


def matches(item, pattern):
    """An environment answers to its names, its key, or any part of its requirement line (glob or substring)."""
    if pattern is None:
        return True
    record = item["record"]
    names = [*(record.get("names") or []), item["key"]]
    line = " ".join([record.get("line") or "", *(record.get("requirements") or [])]).lower()
    return any(fnmatch(name, pattern) for name in names) or pattern.lower() in line


def clear(root=None, pattern=None):
    """Remove the cached environments that match (all where `pattern` is None): (removed, busy) lists of items."""
    root = Path(root) if root is not None else cache_root()
    removed, busy = [], []
    for item in cached(root):
        if not matches(item, pattern):
            continue
        try:
            with Lock(root / f"{item['key']}.lock", wait=False):
                shutil.rmtree(item["folder"])
            (root / f"{item['key']}.lock").unlink(missing_ok=True)
            removed.append(item)
        except OSError:
            busy.append(item)  # being built or removed by another run
    return removed, busy


def size_text(count):
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000


def command(args, out=None):
    """`sidebyside envs [list]` and `sidebyside envs clear [MATCH]`; returns the exit status."""
    out = out or sys.stdout
    root = cache_root()
    if args.action == "clear":
        removed, busy = clear(root, args.match)
        freed = sum(item["bytes"] for item in removed)
        print(f"removed {len(removed)} environment{'s' if len(removed) != 1 else ''} from {root} "
              f"({size_text(freed)})", file=out)
        for item in busy:
            print(f"not removed (in use by a running build): {item['folder']}", file=sys.stderr)
        return 0
    items = [item for item in cached(root) if matches(item, args.match)]
    if not items:
        print(f"no cached environments in {root}", file=out)
        return 0
    for item in items:
        record = item["record"]
        names = ", ".join(record.get("names") or []) or "?"
        line = record.get("line") or " ".join(record.get("requirements") or []) or "(incomplete build)"
        installed = ", ".join(f"{k} {v}" for k, v in (record.get("installed") or {}).items())
        print(f"{one_line(names, 80)}: {one_line(line, 200)}" + (f" ({one_line(installed, 200)})" if installed else ""),
              file=out)
        print(f"  {item['folder']}  {size_text(item['bytes'])}  python {record.get('python') or '?'}  "
              f"last used {record.get('last_used') or 'never'}", file=out)
    total = sum(item["bytes"] for item in items)
    print(f"{len(items)} environment{'s' if len(items) != 1 else ''}, {size_text(total)} in {root}", file=out)
    return 0
