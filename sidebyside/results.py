"""The one model of results.json: pydantic models of the file, its reader, and the figures derived from it.

`Document` (with `Machine`, `Conditions`, `Blas`, `Gpu`, `Reference`,
`Entry`, `StepTime`, `Epoch`) says what a results.json may hold: finite
numbers only, non-negative or positive where a negative makes no sense,
fractions at most 1, positive-integer sizes, strict booleans, no text read
as a number, bounded text and arrays, and bounded nesting in the free-form
`config` and `extra`. Keys the model does not know are tolerated (and left
out of what is read). The runner validates every document through it before
writing (`validate_document`), and `sidebyside/results.schema.json` is the
same model as a JSON Schema, for other tools (`json_schema`,
`write_json_schema`, `sidebyside schema`).

Result files come from other machines, so they are untrusted input. They are
read as JSON only (never pickle, never eval), at most MAX_BYTES of it.
`load_results` returns one normalized document whatever the source: the
results.json layout of the current schema (SCHEMA_VERSION) with every key
present (None where the file said nothing), as plain dicts. A file of an older
schema is migrated first, by sidebyside/migrate.py alone, so nothing here
reads an older layout; raw pytest-benchmark JSON is converted into the
current layout. Anything wrong raises ResultsError, whose message is one
line naming the file and the field:

    results.json: field results[3].step_time.median: must be a positive finite number, got NaN

Python's json module accepts the non-standard tokens NaN and Infinity; they
are parsed into a marker that every number rejects, so the message can name
the field and the token.

The derived figures live here too, so that the writer and the report derive
them alike: `gflops`, `peak_fraction`, `is_unstable` (UNSTABLE_IQR).
"""

import json
import math
import os
import stat
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sidebyside import migrate
from sidebyside.migrate import UNNAMED

SCHEMA_VERSION = migrate.CURRENT  # 2: older files are migrated on reading (sidebyside/migrate.py)
MAX_BYTES = 64 * 1024 * 1024  # result files are a few MB at most; refuse anything absurd
# "disagrees": the run finished but its losses disagree with the float64 reference (its reason says by
# how much); such a run is shown, never ranked.
# "unchecked": timed, but its losses were never compared with the reference (rows read from pytest-benchmark
# JSON); shown with its time, never ranked.
STATUSES = ("ok", "n/a", "diverged", "failed", "disagrees", "unchecked")
MAX_NAME = 200  # names: machine, implementation, framework, device, ...
MAX_TEXT = 4000  # free text: reasons, file paths, CPU descriptions
MAX_KEY = 40  # short names: devices, dtypes, size dimensions
MAX_INTEGER = 2**53  # beyond this integers stop being exact as floats
MAX_DEPTH = 32  # nesting allowed inside free-form objects (config, extra)
MAX_SIZE_KEYS = 16
MAX_ROUNDS = 1000  # step_time.round_medians: one median per timed round; a few in practice
MAX_SAMPLES = 1_000_000  # step_time.samples: every timed step; hundreds in practice
MAX_PROCESSES = 20  # machine.conditions.busy_processes
PEAK_DTYPES = ("float32", "float64")
UNSTABLE_IQR = 0.10  # IQR above 10 % of the median flags the timing, as pyperf does
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")


# ----------------------------------------------------------------------------
# Derived figures: one definition for the writer, the converter and the report
# ----------------------------------------------------------------------------


def gflops(flops_per_step, seconds):
    """GFLOP/s of `flops_per_step` floating-point operations done in `seconds`, or None."""
    if not flops_per_step or seconds is None or seconds <= 0:
        return None
    value = flops_per_step / seconds / 1e9
    return value if math.isfinite(value) else None


def peak_fraction(rate, peak):
    """The share of the measured peak `peak` (GFLOP/s) that `rate` (GFLOP/s) reaches, or None."""
    if rate is None or not peak:
        return None
    value = rate / peak
    return value if math.isfinite(value) else None


def is_unstable(step_time):
    """Whether a step_time's IQR is above UNSTABLE_IQR of its median (False without a timing)."""
    if not step_time:
        return False
    median, iqr = step_time.get("median"), step_time.get("iqr")
    return bool(median is not None and median > 0 and iqr is not None and iqr > UNSTABLE_IQR * median)


def peak_for(peaks, device, dtype):
    """The measured peak (GFLOP/s) of this device and dtype from normalized peak_gflops, else None."""
    by_dtype = (peaks or {}).get(device)
    return by_dtype.get(dtype) if isinstance(by_dtype, dict) else None


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------


class ResultsError(ValueError):
    """A result file that cannot be used. Its message is one line."""

    def __init__(self, source, problem, field=None):
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: field {field}: " if field else f"{source}: "
        super().__init__(one_line(where + problem))


class Invalid(Exception):
    """A problem at a path inside the document; parse_results adds the file name."""

    def __init__(self, path, problem):
        super().__init__(path, problem)
        self.path = path
        self.problem = problem


class NonFinite:
    """What the parser makes of the non-standard tokens NaN, Infinity, -Infinity."""

    def __init__(self, token):
        self.token = token

    def __repr__(self):
        return self.token


def one_line(text, limit=500):
    """Control characters escaped, so a message cannot span several lines."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(value):
    """A short description of a JSON value for error messages."""
    if isinstance(value, NonFinite):
        return f"{value.token} (not a finite number)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return one_line(repr(value), 40)
    if isinstance(value, str):
        return one_line(repr(value), 60)
    if isinstance(value, (list, tuple)):
        return f"an array of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, BaseModel):
        return "an object"
    return type(value).__name__


# What pydantic's own error types say, in this file's words (types the model's kinds do not cover).
PLAIN = {
    "missing": "missing",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be an array",
    "tuple_type": "must be an array",
    "too_long": "must have at most {max_length} items",
    "too_short": "must have at least {min_length} items",
    "recursion_loop": "nested too deeply",
}
NO_VALUE = ("missing",)  # problems that show no "got ..."


def problem_of(error):
    """One pydantic error (an item of ValidationError.errors()) as (path suffix, problem)."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind in PLAIN:
        problem = PLAIN[kind].format(**context)
        if kind in ("too_long", "too_short"):
            length = context.get("actual_length")
            if length is None and hasattr(error.get("input"), "__len__"):
                length = len(error["input"])
            got = "" if length is None else str(length)
        else:
            got = None if kind in NO_VALUE else describe(error.get("input"))
    else:
        problem = error["msg"]
        problem = problem[:1].lower() + problem[1:] if kind != "sidebyside" else problem
        got = context.get("got", describe(error.get("input")))
    return context.get("at", ""), problem + (f", got {got}" if got else "")


def location(loc, prefix=None):
    """A pydantic loc tuple as the field path of the message: results[0].size.N, machine.frameworks key."""
    path = prefix or ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "[key]":  # the key itself is wrong: name the object it is a key of
            path = path[: path.rfind(".")] if "." in path else path
            path += " key"
        else:
            path += f".{part}" if path else str(part)
    return path or None


def invalid(error, prefix=None, overrides=None):
    """The first error of a ValidationError as Invalid, its loc written as a path (under `prefix`)."""
    first = error.errors(include_url=False)[0]
    loc = list(first["loc"])
    if overrides and loc and loc[0] in overrides:
        prefix, loc = overrides[loc[0]], loc[1:]
    suffix, problem = problem_of(first)
    path = location(loc, prefix)
    return Invalid((path or "") + suffix if path or suffix else None, problem)


# ----------------------------------------------------------------------------
# The kinds of value: pydantic constraints, each with one plainly worded problem
# ----------------------------------------------------------------------------


def kind(text, too_long=None):
    """A validator that rewords whatever pydantic found wrong with a value as "must be <text>"."""

    def reword(value, handler):
        try:
            return handler(value)
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            if too_long and first["type"] == "string_too_long":
                raise PydanticCustomError("sidebyside", too_long, {"got": str(len(value))}) from None
            raise PydanticCustomError("sidebyside", f"must be {text}") from None

    return WrapValidator(reword)


def Number(minimum="signed", maximum=None):
    """A finite number: signed, "non-negative", or "positive"; at most `maximum` if given."""
    bounds = {"ge": 0} if minimum == "non-negative" else {"gt": 0} if minimum == "positive" else {}
    if maximum is not None:
        bounds["le"] = maximum
    words = {"signed": "a finite number", "non-negative": "a non-negative finite number",
             "positive": "a positive finite number"}[minimum]
    words += f" at most {maximum}" if maximum is not None else ""
    return Annotated[float, Strict(), Field(allow_inf_nan=False, **bounds), kind(words)]


def Integer(minimum=0):
    words = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    return Annotated[int, Strict(), Field(ge=minimum, le=MAX_INTEGER), kind(words)]


def Text(limit=MAX_NAME, blank=False):
    """A non-blank string of at most `limit` characters (a key of an object: non-empty)."""
    pattern = {} if blank else {"pattern": r"\S"}  # a key's pattern would make the JSON Schema skip other keys
    return Annotated[str, Strict(), Field(min_length=1, max_length=limit, **pattern),
                     kind("a non-empty string", too_long=f"must be at most {limit} characters")]


Signed = Number()
NonNegative = Number("non-negative")
Positive = Number("positive")
Fraction = Number("non-negative", maximum=1.0)
Count = Integer(0)
PositiveCount = Integer(1)
Name, Key, Long = Text(MAX_NAME), Text(MAX_KEY), Text(MAX_TEXT)
NameKey, ShortKey = Text(MAX_NAME, blank=True), Text(MAX_KEY, blank=True)  # keys of objects
Flag = Annotated[bool, Strict(), kind("true or false")]
Status = Annotated[Literal[STATUSES], kind(f"one of {', '.join(STATUSES)}")]


def check_free(value, at="", depth=0):
    """Any JSON value, with finite numbers only and bounded nesting (config, extra, peak_detail)."""
    if depth > MAX_DEPTH:
        raise PydanticCustomError("sidebyside", f"nested more than {MAX_DEPTH} levels deep", {"at": at, "got": ""})
    if isinstance(value, NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        raise PydanticCustomError("sidebyside", "must be finite", {"at": at, "got": describe(value)})
    if isinstance(value, dict):
        for key, item in value.items():
            check_free(item, f"{at}.{key}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_free(item, f"{at}[{index}]", depth + 1)
    return value


Free = Annotated[dict[str, Any], AfterValidator(check_free)]

Size = Annotated[dict[ShortKey, PositiveCount], Field(max_length=MAX_SIZE_KEYS)]
Losses = list[Optional[Signed]]


class Model(BaseModel):
    """Unknown keys are tolerated and left out of what is read."""

    model_config = ConfigDict(extra="ignore")


# ----------------------------------------------------------------------------
# The machine
# ----------------------------------------------------------------------------


class Blas(Model):
    """One BLAS library as threadpoolctl describes it."""

    user_api: Optional[Long] = None
    internal_api: Optional[Long] = None
    version: Optional[Long] = None
    architecture: Optional[Long] = None
    filepath: Optional[Long] = None
    prefix: Optional[Long] = None
    threading_layer: Optional[Long] = None
    num_threads: Optional[Count] = None


class Gpu(Model):
    name: Optional[Long] = None
    driver: Optional[Name] = None
    cuda: Optional[Name] = None
    memory_bytes: Optional[Count] = None


class BusyProcess(Model):
    pid: Optional[Count] = None
    name: Name
    cores: NonNegative


def first_three(value):
    return value[:3] if isinstance(value, list) else value


class Conditions(Model):
    """machine.conditions (sidebyside/noise.py): what else the machine did as the run started."""

    load_average: Annotated[Optional[list[NonNegative]], BeforeValidator(first_three)] = None
    other_cpu_cores: Optional[NonNegative] = None
    busy_processes: Annotated[list[BusyProcess], Field(max_length=MAX_PROCESSES)] = []
    cpu_mhz: Optional[NonNegative] = None
    governor: Optional[Name] = None
    turbo: Optional[Flag] = None
    cpus_in_mask: Optional[Count] = None
    cpu_count: Optional[Count] = None
    available_memory_bytes: Optional[Count] = None


def every_dtype(by_dtype):
    return None if by_dtype is None else {**dict.fromkeys(PEAK_DTYPES), **by_dtype}


def every_device(peaks):
    return {"cpu": None, "cuda": None, **peaks}


PeakByDtype = dict[ShortKey, Optional[Positive]]
Peak = Annotated[Optional[PeakByDtype], AfterValidator(every_dtype)]
Peaks = Annotated[dict[ShortKey, Peak], AfterValidator(every_device)]
Threads = dict[NameKey, Annotated[Optional[Count] | Name, Field(union_mode="left_to_right"),
                               kind("an integer >= 0, a non-empty string or null")]]


class Environment(Model):
    """One --env NAME=PYTHON or NAME=REQUIREMENTS: its interpreter and what it holds (machine.environment)."""

    python: Optional[Long] = None
    executable: Optional[Long] = None
    sidebyside: Optional[Long] = None
    location: Optional[Long] = None
    commit: Optional[Long] = None
    frameworks: dict[NameKey, Optional[Long]] = {}
    # --env NAME=REQUIREMENTS (sidebyside/envs.py): the requirement line, the versions it installed of what it
    # names, the cached environment's folder, the seconds its set-up took and whether it was found in the cache;
    # `error`: why it could not be built (its entries then read "failed" with that reason).
    requirements: Optional[Long] = None
    installed: dict[NameKey, Optional[Long]] = {}
    folder: Optional[Long] = None
    setup_s: Optional[NonNegative] = None
    cached: Optional[Flag] = None
    error: Optional[Long] = None


class Machine(Model):
    """Where the run ran: names, versions, threads, BLAS, GPU, peaks and the conditions."""

    name: Optional[Name] = None
    system: Optional[Long] = None
    release: Optional[Long] = None
    arch: Optional[Long] = None
    cpu: Optional[Long] = None
    python: Optional[Long] = None
    commit: Optional[Long] = None
    cpu_count: Optional[PositiveCount] = None
    frameworks: dict[NameKey, Optional[Long]] = {}
    env: dict[NameKey, Optional[Long]] = {}
    threads: Threads = {}
    blas: list[Blas] = []
    gpu: Optional[Gpu] = None
    tf32: Optional[Flag] = None
    peak_gflops: Peaks = Field(default_factory=lambda: {"cpu": None, "cuda": None})
    conditions: Optional[Conditions] = None
    peak_detail: Free = {}
    environments: dict[NameKey, Environment] = {}  # --env: each environment by name, in the order given


# ----------------------------------------------------------------------------
# Entries
# ----------------------------------------------------------------------------


Samples = Annotated[list[Positive], Field(max_length=MAX_SAMPLES)]
SAMPLES = TypeAdapter(Samples)


class StepTime(Model):
    """The step time (seconds): the median of the round medians; the spread statistics of every step pooled."""

    median: Positive  # the median of round_medians (sidebyside/rounds.py); one round: its steps' median
    iqr: Optional[NonNegative] = None
    min: Optional[NonNegative] = None
    max: Optional[NonNegative] = None
    mean: Optional[NonNegative] = None
    stddev: Optional[NonNegative] = None
    rounds: Optional[PositiveCount] = None
    round_medians: Optional[Annotated[list[Positive], Field(max_length=MAX_ROUNDS)]] = None  # one per timed round
    # The drift canary's seconds beside each round (sidebyside/canary.py), null where it could not be timed.
    canary: Optional[Annotated[list[Optional[Positive]], Field(max_length=MAX_ROUNDS)]] = None
    samples: Optional[Samples] = None  # every timed step


class Epoch(Model):
    epoch: Optional[Count] = None  # absent: its place in the list, from 1
    train_loss: Optional[Signed] = None
    test_accuracy: Optional[Fraction] = None
    time_s: Optional[NonNegative] = None


class Entry(Model):
    """One case: an implementation × workload × device × dtype × size, and what its run gave."""

    workload: Name
    implementation: Name
    environment: Optional[Name] = None  # the --env it ran in; null: the run's own interpreter
    framework: Optional[Name] = None
    backend: Optional[Name] = None  # absent: the framework
    device: Key
    dtype: Key
    threads: Optional[Count] = None
    size: Size = {}
    status: Status
    reason: Optional[Long] = None
    diverged_at: Optional[Count] = None
    losses: Losses = []
    step_time: Optional[StepTime] = None
    unstable: Optional[Flag] = None  # absent: derived from step_time (is_unstable)
    cpu_utilization: Optional[NonNegative] = None  # CPU seconds / wall seconds of the timed steps
    first_step_s: Optional[NonNegative] = None
    loop_time_s: Optional[NonNegative] = None
    loop_steps: Optional[PositiveCount] = None
    flops_per_step: Optional[Count] = None
    gflops: Optional[NonNegative] = None
    peak_fraction: Optional[NonNegative] = None  # above 1 is a measurement fault the report names
    peak_memory_bytes: Optional[Count] = None
    agreement: Optional[NonNegative] = None
    agreement_tolerance: Optional[NonNegative] = None
    agrees: Optional[Flag] = None
    extra: Free = {}
    epochs: list[Epoch] = []
    test_accuracy: Optional[Fraction] = None
    target_accuracy: Optional[Fraction] = None
    time_to_target_s: Optional[NonNegative] = None
    first_epoch_s: Optional[NonNegative] = None

    @model_validator(mode="after")
    def normalize(self):
        if self.backend is None:
            self.backend = self.framework
        if self.unstable is None:
            self.unstable = is_unstable(self.step_time and self.step_time.__dict__)
        for index, epoch in enumerate(self.epochs):
            if epoch.epoch is None:
                epoch.epoch = index + 1
        return self


def new_entry(**known):
    """An entry with every key of the model at its default (None, [] or {}), updated with `known`."""
    entry = {}
    for name, field in Entry.model_fields.items():
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        entry[name] = type(default)() if isinstance(default, (list, dict)) else default  # a fresh [] or {}
    entry.update(known)
    return entry


# ----------------------------------------------------------------------------
# The document
# ----------------------------------------------------------------------------


def schema_version(value, handler):
    if isinstance(value, int) and not isinstance(value, bool) and value > SCHEMA_VERSION:
        raise PydanticCustomError(
            "sidebyside",
            f"written by a newer sidebyside (schema {value}); this version reads schema {SCHEMA_VERSION}",
            {"got": ""},
        )
    return handler(value)


class Reference(Model):
    """A float64 reference loss trajectory that entries of its workload and size are judged against."""

    workload: Name = UNNAMED
    size: Size = {}
    dtype: Key = "float64"
    losses: Losses = []


class Document(Model):
    """A results.json file (schema SCHEMA_VERSION): the run's machine, configuration, references and entries."""

    model_config = ConfigDict(title="sidebyside results.json", extra="ignore")

    schema_: Annotated[
        int, Strict(), Field(ge=1, le=SCHEMA_VERSION), kind("a positive integer"), WrapValidator(schema_version)
    ] = Field(alias="schema")
    migrated_from: Optional[PositiveCount] = None  # set by the reader: the older schema the file was written in
    tool: Optional[Name] = None
    created: Optional[Name] = None
    machine: Machine = Field(default_factory=Machine)
    config: Free = {}
    references: list[Reference] = []
    results: list[Entry]


def validate_document(document, source="results.json"):
    """Check a document (as the runner is about to write it) against the model; ResultsError if it fails."""
    try:
        Document.model_validate(document)
    except ValidationError as error:
        problem = invalid(error)
        raise ResultsError(source, problem.problem, problem.path) from None
    return document


def json_schema():
    """The model as a JSON Schema (draft 2020-12), in validation mode: what a writer may write."""
    schema = Document.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def json_schema_text():
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def write_json_schema(path=SCHEMA_FILE):
    """Regenerate sidebyside/results.schema.json from the model (`python -m sidebyside.results`)."""
    Path(path).write_text(json_schema_text())
    return path


# ----------------------------------------------------------------------------
# Reading the file
# ----------------------------------------------------------------------------


def load_results(path):
    """Read and check one result file; return the normalized document.

    Raises ResultsError (one line naming the file and the field) for a file
    that is missing, unreadable, too large, not JSON, or of the wrong shape.
    """
    source = os.fspath(path)
    try:
        info = os.stat(source)
    except FileNotFoundError:
        raise ResultsError(source, "no such file") from None
    except OSError as error:
        raise ResultsError(source, f"cannot read: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ResultsError(source, "is a folder, not a result file")
    if not stat.S_ISREG(info.st_mode):
        raise ResultsError(source, "not a regular file")
    if info.st_size > MAX_BYTES:
        raise ResultsError(source, too_large(info.st_size))
    try:
        with open(source, "rb") as stream:
            data = stream.read(MAX_BYTES + 1)
    except OSError as error:
        raise ResultsError(source, f"cannot read: {error.strerror or error}") from None
    if len(data) > MAX_BYTES:
        raise ResultsError(source, too_large(len(data)))
    return parse_results(data, source)


def too_large(size):
    return f"{size} bytes is over the {MAX_BYTES // 2**20} MiB limit for result files"


def parse_results(data, source="<results>"):
    """`load_results` for text or bytes already in memory."""
    if isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_BYTES:
            raise ResultsError(source, too_large(len(data)))
        try:
            text = bytes(data).decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ResultsError(source, f"not UTF-8 text (byte {error.start})") from None
    else:
        text = str(data)
    if not text.strip():
        raise ResultsError(source, "empty file, expected JSON")
    try:
        document = json.loads(text, parse_constant=NonFinite)
    except json.JSONDecodeError as error:
        truncated = error.pos >= len(text.rstrip())
        hint = " (the file ends early: truncated?)" if truncated else ""
        raise ResultsError(
            source, f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}{hint}"
        ) from None
    except RecursionError:
        raise ResultsError(source, "not usable JSON: nested too deeply") from None
    except ValueError as error:  # e.g. an integer with thousands of digits
        raise ResultsError(source, f"not usable JSON: {error}") from None
    try:
        return normalize(document, source)
    except Invalid as error:
        raise ResultsError(source, error.problem, error.path) from None
    except RecursionError:
        raise ResultsError(source, "not usable JSON: nested too deeply") from None


def normalize(document, source):
    """Check a parsed JSON document and return it in the normalized layout (plain dicts)."""
    if not isinstance(document, dict):
        raise Invalid(None, f"the top level must be a JSON object, got {describe(document)}")
    if "schema" not in document and "benchmarks" in document and "machine_info" in document:
        return from_pytest_benchmark(document, source)
    if "schema" not in document:
        raise Invalid(
            "schema",
            "missing: neither a sidebyside results file nor pytest-benchmark JSON "
            "(machine_info, benchmarks)",
        )
    try:
        model = Document.model_validate(migrate.migrate(document))
    except ValidationError as error:
        raise invalid(error) from None
    return dumped(model, source, "sidebyside")


def dumped(model, source, file_format):
    """The validated model as the normalized plain-dict document."""
    if model.machine.name is None:
        model.machine.name = environment_name(model.machine.__dict__, source)
    document = model.model_dump(by_alias=True)
    return {"schema": document["schema"], "migrated_from": document["migrated_from"],
            "tool": document["tool"], "created": document["created"],
            "source": source, "format": file_format, **{key: document[key] for key in
                                                        ("machine", "config", "references", "results")}}


def by_environment(document):
    """One document per environment of a run with --env (each labelled "machine [env]"), else [document].

    The environments come in the order the run gave them; an entry's
    environment that the machine record does not list comes after them.
    """
    names = list(document["machine"].get("environments") or {})
    names += [name for name in dict.fromkeys(entry.get("environment") for entry in document["results"])
              if name is not None and name not in names]
    if not names:
        return [document]
    parts = []
    for name in names:
        machine = {**document["machine"], "name": f"{document['machine']['name']} [{name}]", "environment": name}
        parts.append({**document, "machine": machine, "source": f"{document['source']} [{name}]",
                      "results": [entry for entry in document["results"] if entry.get("environment") == name]})
    return parts


def environment_name(machine, source):
    """A label for a machine whose file gave no name: its GPU or CPU, else the file."""
    gpu = machine.get("gpu") or {}
    gpu = gpu.__dict__ if isinstance(gpu, BaseModel) else gpu
    for candidate in (gpu.get("name"), machine.get("cpu")):
        if candidate:
            return one_line(candidate, MAX_NAME)
    if machine.get("system") or machine.get("arch"):
        return " ".join(filter(None, (machine.get("system"), machine.get("arch"))))
    return one_line(os.path.basename(source) or source, MAX_NAME)


# ----------------------------------------------------------------------------
# pytest-benchmark's own JSON (--benchmark-json): converted by hand, checked by the model
# ----------------------------------------------------------------------------

SIZE_KEYS = ("N", "D_in", "H", "D_out")
# machine_info keys that sidebyside's pytest hook adds, in the results.json layout.
MACHINE_EXTRAS = ("frameworks", "blas", "threads", "env", "gpu", "tf32", "peak_gflops", "peak_detail")
# pytest checks no agreement: a benchmark row is never "ok", so never ranked nor named fastest.
UNCHECKED = {"status": "unchecked", "reason": "pytest-benchmark JSON: agreement not checked"}
BENCHMARK_DEFAULTS = {"workload": UNNAMED, "device": "unknown", "dtype": "unknown", **UNCHECKED}


def entry_keys():
    """The keys of an entry (Entry's fields): extra_info keys that map onto them as they are."""
    return tuple(name for name in Entry.model_fields if name not in ("step_time", "extra"))


def checked(model, value, path, overrides=None):
    """`model.model_validate(value)`, an error raised as Invalid naming its path under `path`."""
    try:
        return model.model_validate(value)
    except ValidationError as error:
        raise invalid(error, path, overrides) from None


OPTIONAL = {"name": TypeAdapter(Optional[Name]), "text": TypeAdapter(Optional[Long]),
            "count": TypeAdapter(Optional[PositiveCount]), "flag": TypeAdapter(Optional[Flag])}


def checked_value(kind_of, value, path):
    """One value of the kind OPTIONAL[kind_of] (None allowed), or Invalid naming `path`."""
    try:
        return OPTIONAL[kind_of].validate_python(value)
    except ValidationError as error:
        raise invalid(error, path) from None


def from_pytest_benchmark(document, source):
    """Convert `pytest --benchmark-json` output into the normalized layout.

    Each benchmark becomes an entry: its extra_info gives what was run and its
    stats the step time. Keys the benchmark did not record stay unknown. No
    agreement was checked, so every entry that ran is "unchecked" (UNCHECKED):
    shown with its time, never ranked.
    """
    if not isinstance(document["machine_info"], dict):
        raise Invalid("machine_info", f"must be an object, got {describe(document['machine_info'])}")
    info = document["machine_info"]
    # sidebyside's pytest hook adds its own machine record to machine_info (with "cpu" a string);
    # pytest-benchmark's own keys fill in what it leaves out.
    own = {key: info[key] for key in MACHINE_EXTRAS + ("name", "cpu_count", "commit") if key in info}
    if isinstance(info.get("cpu"), str):
        own["cpu"] = info["cpu"]
    for key in ("system", "release", "arch", "python"):
        if key in info:
            own[key] = info[key]
    migrate.machine_from_1(own)  # the hook's record carries no schema: it may be of any age
    machine = checked(Machine, own, "machine_info")
    native = {"name": ("node", "name"), "system": ("system", "text"), "release": ("release", "text"),
              "arch": ("machine", "text"), "python": ("python_version", "text")}
    for key, (source_key, kind_of) in native.items():
        if getattr(machine, key) is None:
            setattr(machine, key, checked_value(kind_of, info.get(source_key), f"machine_info.{source_key}"))
    if not isinstance(info.get("cpu"), str):
        cpu = info.get("cpu") or {}
        if not isinstance(cpu, dict):
            raise Invalid("machine_info.cpu", f"must be an object, got {describe(cpu)}")
        machine.cpu = checked_value("text", cpu.get("brand_raw"), "machine_info.cpu.brand_raw")
        if machine.cpu_count is None:
            machine.cpu_count = checked_value("count", cpu.get("count"), "machine_info.cpu.count")
    commit = document.get("commit_info") or {}
    if not isinstance(commit, dict):
        raise Invalid("commit_info", f"must be an object, got {describe(commit)}")
    commit_id = checked_value("name", commit.get("id"), "commit_info.id")
    if commit_id is not None and checked_value("flag", commit.get("dirty"), "commit_info.dirty"):
        commit_id += " (dirty)"
    if machine.commit is None:
        machine.commit = commit_id
    machine_record = machine.model_dump()
    version = checked_value("name", document.get("version"), "version")
    benchmarks = document["benchmarks"]
    if not isinstance(benchmarks, list):
        raise Invalid("benchmarks", f"must be an array, got {describe(benchmarks)}")
    entries = [benchmark_entry(benchmark, index, machine_record) for index, benchmark in enumerate(benchmarks)]
    converted = {
        "schema": SCHEMA_VERSION,
        "tool": f"pytest-benchmark {version}" if version else "pytest-benchmark",
        "created": checked_value("name", document.get("datetime"), "datetime"),
        "machine": machine_record,
        "config": {},
        "references": [],
        "results": join_loops(entries),
    }
    # The conversion's output is a document like any other: the model checks it as a whole.
    return dumped(checked(Document, converted, None), source, "pytest-benchmark")


def join_loops(entries):
    """Fold each loop benchmark (extra_info view "loop") into the step benchmark of the same case.

    sidebyside's suite times a case twice: per step, and as one call of
    `net.train` for loop_steps steps. Their stats are per call, so the loop's
    median is the time of the whole loop: it becomes loop_time_s.
    """
    def key(entry):
        return (entry["workload"], entry["implementation"], entry["device"], entry["dtype"],
                tuple(sorted(entry["size"].items())))

    steps = {key(entry): entry for entry in entries if entry["extra"].get("view") != "loop"}
    joined = [entry for entry in entries if entry["extra"].get("view") != "loop"]
    for loop in (entry for entry in entries if entry["extra"].get("view") == "loop"):
        seconds = loop["step_time"]["median"]
        loop_steps = loop["loop_steps"] or 1
        target = steps.get(key(loop))
        if target is not None and target["loop_time_s"] is None:
            target["loop_time_s"], target["loop_steps"] = seconds, loop_steps
            continue
        # A loop without its step benchmark keeps its own row, timed per loop only.
        flops = loop["flops_per_step"]
        rate = gflops(flops * loop_steps, seconds) if flops else loop["gflops"]
        loop.update(step_time=None, unstable=False, loop_time_s=seconds, loop_steps=loop_steps,
                    gflops=rate, peak_fraction=None)
        joined.append(loop)
    return joined


def benchmark_entry(benchmark, index, machine):
    here = f"benchmarks[{index}]"
    if not isinstance(benchmark, dict):
        raise Invalid(here, f"must be an object, got {describe(benchmark)}")
    extra = benchmark.get("extra_info") or {}
    if not isinstance(extra, dict):
        raise Invalid(f"{here}.extra_info", f"must be an object, got {describe(extra)}")
    keys = entry_keys()
    raw = {key: extra[key] for key in keys if key in extra}
    overrides = {"step_time": f"{here}.stats"}
    if "implementation" not in raw:
        raw["implementation"] = benchmark.get("name")
        overrides["implementation"] = f"{here}.name"
    if "size" not in raw:
        raw["size"] = {key: extra[key] for key in SIZE_KEYS if key in extra}
        overrides["size"] = f"{here}.extra_info"
    stats = benchmark.get("stats")
    if not isinstance(stats, dict):
        raise Invalid(f"{here}.stats", f"must be an object, got {describe(stats)}")
    if stats.get("samples") is None and stats.get("data") is not None:
        # --benchmark-save-data keeps every timed call's seconds in stats.data: the entry's samples.
        try:
            SAMPLES.validate_python(stats["data"])
        except ValidationError as error:
            raise invalid(error, f"{here}.stats.data") from None
        stats = {**stats, "samples": stats["data"]}
    raw["step_time"] = stats
    leftovers = {key: value for key, value in extra.items() if key not in keys and key not in SIZE_KEYS}
    for key in ("group", "name", "fullname"):
        if isinstance(benchmark.get(key), str):
            leftovers.setdefault(f"pytest_{key}", benchmark[key])
    raw["extra"] = leftovers
    raw = {**BENCHMARK_DEFAULTS, **raw}
    if raw["status"] == "ok":  # an extra_info that claims "ok" is unchecked all the same
        raw.update(UNCHECKED)
    entry = checked(Entry, raw, f"{here}.extra_info", overrides).model_dump()
    # Derive what pytest-benchmark's stats and the machine's peaks imply.
    if entry["gflops"] is None and entry["flops_per_step"]:
        entry["gflops"] = gflops(entry["flops_per_step"], entry["step_time"]["median"])
    if entry["peak_fraction"] is None:
        entry["peak_fraction"] = peak_fraction(entry["gflops"], peak_for(machine["peak_gflops"], entry["device"],
                                                                            entry["dtype"]))
    return entry


if __name__ == "__main__":
    print(write_json_schema())
