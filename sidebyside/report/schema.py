"""Reading result files: sidebyside's results.json and raw pytest-benchmark JSON.

Result files come from other machines, so they are untrusted input. They are
read as JSON only (never pickle, never eval), at most MAX_BYTES of it, and
every field the report uses is checked for its type and range before it is
used. `load_results` returns one normalized document whatever the source:
the results.json layout of schema 1 with every key present (None where the
file said nothing). Anything wrong raises ResultsError, whose message is one
line naming the file and the field:

    results.json: field results[3].step_time.median: must be a positive finite number, got NaN

Python's json module accepts the non-standard tokens NaN and Infinity; they
are parsed into a marker that every check rejects, so the message can name
the field that held one.
"""

import json
import math
import os
import stat

from sidebyside.workloads import UNNAMED

SCHEMA_VERSION = 1
MAX_BYTES = 64 * 1024 * 1024  # result files are a few MB at most; refuse anything absurd
# "disagrees": the run finished but its losses disagree with the float64 reference (its reason says by
# how much); such a run is shown, never ranked. Older files said status "ok" with agrees false: read the same.
STATUSES = ("ok", "n/a", "diverged", "failed", "disagrees")
MAX_NAME = 200  # names: machine, implementation, framework, device, ...
MAX_TEXT = 4000  # free text: reasons, file paths, CPU descriptions
MAX_INTEGER = 2**53  # beyond this integers stop being exact as floats
MAX_DEPTH = 32  # nesting allowed inside free-form objects (config, extra)
MAX_SIZE_KEYS = 16

ENTRY_NUMBERS = (  # optional non-negative finite numbers of an entry
    "first_step_s", "loop_time_s", "gflops", "peak_fraction", "agreement",
    "agreement_tolerance", "first_epoch_s",
    "cpu_utilization",  # CPU seconds / wall seconds of the timed steps: cores kept busy, to compare with threads
    "time_to_target_s",
)
ENTRY_FRACTIONS = ("test_accuracy", "target_accuracy")  # optional numbers in [0, 1]
ENTRY_COUNTS = ("loop_steps",)  # optional positive integers
ENTRY_SIZES = ("flops_per_step", "peak_memory_bytes", "diverged_at")  # optional integers >= 0
TIMING_KEYS = ("median", "iqr", "min", "max", "mean", "stddev")
MACHINE_TEXTS = ("system", "release", "arch", "cpu", "python", "commit")
MAX_ROUNDS = 1000  # step_time.round_medians: one median per timed round; a few in practice
MAX_SAMPLES = 1_000_000  # step_time.samples: every timed step; hundreds in practice
PEAK_DTYPES = ("float32", "float64")


class ResultsError(ValueError):
    """A result file that cannot be used. Its message is one line."""

    def __init__(self, source, problem, field=None):
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: field {field}: " if field else f"{source}: "
        super().__init__(one_line(where + problem))


class Invalid(Exception):
    """Raised inside the checks; load_results adds the file name."""

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
    if isinstance(value, list):
        return f"an array of {len(value)} items"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


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


# ----------------------------------------------------------------------------
# Checks of single values; each raises Invalid(path, problem)
# ----------------------------------------------------------------------------


def check_object(value, path):
    if not isinstance(value, dict):
        raise Invalid(path, f"must be an object, got {describe(value)}")
    return value


def check_array(value, path):
    if not isinstance(value, list):
        raise Invalid(path, f"must be an array, got {describe(value)}")
    return value


def check_text(value, path, optional=False, limit=MAX_NAME):
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip():
        kind = "a non-empty string" + (" or null" if optional else "")
        raise Invalid(path, f"must be {kind}, got {describe(value)}")
    if len(value) > limit:
        raise Invalid(path, f"must be at most {limit} characters, got {len(value)}")
    return value


def check_integer(value, path, minimum=0, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_INTEGER:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        kind += " or null" if optional else ""
        raise Invalid(path, f"must be {kind}, got {describe(value)}")
    return value


def check_number(value, path, optional=False, positive=False, signed=False, maximum=None):
    """A finite number; non-negative unless `signed`, above 0 if `positive`."""
    if value is None and optional:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok:
        ok = math.isfinite(value)
        ok = ok and (signed or value >= 0) and (not positive or value > 0)
        ok = ok and (maximum is None or value <= maximum)
    if not ok:
        if signed:
            kind = "a finite number"
        elif positive:
            kind = "a positive finite number"
        else:
            kind = "a non-negative finite number"
        if maximum is not None:
            kind += f" at most {maximum}"
        kind += " or null" if optional else ""
        raise Invalid(path, f"must be {kind}, got {describe(value)}")
    return float(value)


def check_boolean(value, path, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise Invalid(path, f"must be true or false{' or null' if optional else ''}, got {describe(value)}")
    return value


def check_free(value, path, depth=0):
    """Any JSON value, with finite numbers only and bounded nesting."""
    if depth > MAX_DEPTH:
        raise Invalid(path, f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
        raise Invalid(path, f"must be finite, got {describe(value)}")
    if isinstance(value, dict):
        return {key: check_free(item, f"{path}.{key}", depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [check_free(item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value)]
    return value


def check_size(value, path):
    check_object(value, path)
    if len(value) > MAX_SIZE_KEYS:
        raise Invalid(path, f"must have at most {MAX_SIZE_KEYS} dimensions, got {len(value)}")
    for key in value:
        check_text(key, f"{path} key", limit=40)
    return {key: check_integer(item, f"{path}.{key}", minimum=1) for key, item in value.items()}


def check_losses(value, path):
    check_array(value, path)
    losses = []
    for index, item in enumerate(value):
        losses.append(check_number(item, f"{path}[{index}]", optional=True, signed=True))
    return losses


# ----------------------------------------------------------------------------
# The document
# ----------------------------------------------------------------------------


def normalize(document, source):
    """Check a parsed JSON document and return it in the normalized layout."""
    if not isinstance(document, dict):
        raise Invalid(None, f"the top level must be a JSON object, got {describe(document)}")
    if "schema" not in document and "benchmarks" in document and "machine_info" in document:
        return from_pytest_benchmark(document, source)
    if "schema" not in document:
        raise Invalid(
            "schema",
            "missing: neither a sidebyside results file (schema 1) nor pytest-benchmark JSON "
            "(machine_info, benchmarks)",
        )
    schema = document["schema"]
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise Invalid("schema", f"must be a positive integer, got {describe(schema)}")
    if schema > SCHEMA_VERSION:
        raise Invalid(
            "schema",
            f"written by a newer sidebyside (schema {schema}); this version reads schema {SCHEMA_VERSION}",
        )
    machine = check_machine(document.get("machine", {}), "machine")
    if machine["name"] is None:
        machine["name"] = environment_name(machine, source)
    if "results" not in document:
        raise Invalid("results", "missing: the list of results")
    results = check_array(document["results"], "results")
    return {
        "schema": SCHEMA_VERSION,
        "tool": check_text(document.get("tool"), "tool", optional=True),
        "created": check_text(document.get("created"), "created", optional=True),
        "source": source,
        "format": "sidebyside",
        "machine": machine,
        "config": check_free(check_object(document.get("config", {}), "config"), "config"),
        "references": check_references(document.get("references", []), "references"),
        "results": [
            check_entry(entry, prefixed(f"results[{index}]")) for index, entry in enumerate(results)
        ],
    }


def prefixed(prefix, overrides=None):
    """A function naming the path of an entry's key, for error messages."""
    overrides = overrides or {}

    def where(key):
        return overrides.get(key, f"{prefix}.{key}")

    where.prefix = prefix
    return where


def check_references(value, path):
    references = []
    for index, item in enumerate(check_array(value, path)):
        here = f"{path}[{index}]"
        check_object(item, here)
        references.append(
            {
                "workload": check_text(item.get("workload", UNNAMED), f"{here}.workload"),
                "size": check_size(item.get("size", {}), f"{here}.size"),
                "dtype": check_text(item.get("dtype", "float64"), f"{here}.dtype"),
                "losses": check_losses(item.get("losses", []), f"{here}.losses"),
            }
        )
    return references


def check_entry(raw, where, defaults=None):
    """One result entry. `where(key)` names a key's path; `defaults` fill absent keys."""
    check_object(raw, where.prefix)
    defaults = defaults or {}

    def get(key, default=None):
        return raw[key] if key in raw else defaults.get(key, default)

    for key in ("workload", "implementation", "device", "dtype", "status"):
        if get(key) is None:
            raise Invalid(where(key), "missing")
    entry = {
        "workload": check_text(get("workload"), where("workload")),
        "implementation": check_text(get("implementation"), where("implementation")),
        "framework": check_text(get("framework"), where("framework"), optional=True),
        "backend": check_text(get("backend"), where("backend"), optional=True),
        "device": check_text(get("device"), where("device"), limit=40),
        "dtype": check_text(get("dtype"), where("dtype"), limit=40),
        "threads": check_integer(get("threads"), where("threads"), optional=True),
        "size": check_size(get("size", {}), where("size")),
        "reason": check_text(get("reason"), where("reason"), optional=True, limit=MAX_TEXT),
        "losses": check_losses(get("losses", []), where("losses")),
        "step_time": check_step_time(get("step_time"), where("step_time")),
        "extra": check_free(check_object(get("extra", {}), where("extra")), where("extra")),
    }
    status = get("status")
    if status not in STATUSES:
        raise Invalid(where("status"), f"must be one of {', '.join(STATUSES)}, got {describe(status)}")
    entry["status"] = status
    for key in ENTRY_NUMBERS:
        entry[key] = check_number(get(key), where(key), optional=True)
    for key in ENTRY_FRACTIONS:
        entry[key] = check_number(get(key), where(key), optional=True, maximum=1.0)
    for key in ENTRY_COUNTS:
        entry[key] = check_integer(get(key), where(key), minimum=1, optional=True)
    for key in ENTRY_SIZES:
        entry[key] = check_integer(get(key), where(key), optional=True)
    entry["agrees"] = check_boolean(get("agrees"), where("agrees"), optional=True)
    unstable = check_boolean(get("unstable"), where("unstable"), optional=True)
    if unstable is None:
        timing = entry["step_time"]
        unstable = bool(timing and timing["iqr"] is not None and timing["iqr"] > 0.1 * timing["median"])
    entry["unstable"] = unstable
    entry["epochs"] = check_epochs(get("epochs", []), where("epochs"))
    if entry["backend"] is None:
        entry["backend"] = entry["framework"]
    if status == "ok" and entry["agrees"] is False:
        # Written before the "disagrees" status existed: the same verdict, so the same treatment.
        entry["status"] = "disagrees"
        entry["reason"] = entry["reason"] or disagreement_reason(entry["agreement"], entry["agreement_tolerance"])
    return entry


def disagreement_reason(agreement, tolerance):
    """The reason the writer gives a "disagrees" entry, for files that recorded only the numbers."""
    if agreement is None:
        return "loss differs from the float64 reference"
    bound = f" (tolerance {tolerance:.1e})" if tolerance is not None else ""
    return f"loss differs from the float64 reference by {agreement:.1e} relative{bound}"


def check_step_time(value, path):
    if value is None:
        return None
    check_object(value, path)
    if "median" not in value:
        raise Invalid(f"{path}.median", "missing")
    timing = {"median": check_number(value["median"], f"{path}.median", positive=True)}
    for key in TIMING_KEYS[1:]:
        timing[key] = check_number(value.get(key), f"{path}.{key}", optional=True)
    timing["rounds"] = check_integer(value.get("rounds"), f"{path}.rounds", minimum=1, optional=True)
    timing["round_medians"] = check_round_medians(value.get("round_medians"), f"{path}.round_medians")
    timing["samples"] = check_samples(value.get("samples"), f"{path}.samples")
    return timing


def check_samples(value, path):
    """Every timed step's seconds (all rounds pooled), or None where the file has none."""
    if value is None:
        return None
    check_array(value, path)
    if len(value) > MAX_SAMPLES:
        raise Invalid(path, f"must have at most {MAX_SAMPLES} items, got {len(value)}")
    return [check_number(item, f"{path}[{index}]", positive=True) for index, item in enumerate(value)]


def check_round_medians(value, path):
    """The median of each timed round (each in a fresh process), or None where the file has none."""
    if value is None:
        return None
    check_array(value, path)
    if len(value) > MAX_ROUNDS:
        raise Invalid(path, f"must have at most {MAX_ROUNDS} items, got {len(value)}")
    return [check_number(item, f"{path}[{index}]", positive=True) for index, item in enumerate(value)]


def check_epochs(value, path):
    epochs = []
    for index, item in enumerate(check_array(value, path)):
        here = f"{path}[{index}]"
        check_object(item, here)
        epochs.append(
            {
                "epoch": check_integer(item.get("epoch", index + 1), f"{here}.epoch"),
                "train_loss": check_number(item.get("train_loss"), f"{here}.train_loss", optional=True, signed=True),
                "test_accuracy": check_number(
                    item.get("test_accuracy"), f"{here}.test_accuracy", optional=True, maximum=1.0
                ),
                "time_s": check_number(item.get("time_s"), f"{here}.time_s", optional=True),
            }
        )
    return epochs


def check_machine(value, path):
    check_object(value, path)
    machine = {"name": check_text(value.get("name"), f"{path}.name", optional=True)}
    for key in MACHINE_TEXTS:
        machine[key] = check_text(value.get(key), f"{path}.{key}", optional=True, limit=MAX_TEXT)
    machine["cpu_count"] = check_integer(value.get("cpu_count"), f"{path}.cpu_count", minimum=1, optional=True)
    machine["frameworks"] = check_text_map(value.get("frameworks", {}), f"{path}.frameworks")
    machine["env"] = check_text_map(value.get("env", {}), f"{path}.env")
    machine["threads"] = check_threads(value.get("threads", {}), f"{path}.threads")
    machine["blas"] = check_blas(value.get("blas", []), f"{path}.blas")
    machine["gpu"] = check_gpu(value.get("gpu"), f"{path}.gpu")
    machine["tf32"] = check_boolean(value.get("tf32"), f"{path}.tf32", optional=True)
    machine["peak_gflops"] = check_peaks(value.get("peak_gflops", {}), f"{path}.peak_gflops")
    machine["conditions"] = check_conditions(value.get("conditions"), f"{path}.conditions")
    detail = value.get("peak_detail", {})
    machine["peak_detail"] = check_free(check_object({} if detail is None else detail, f"{path}.peak_detail"),
                                        f"{path}.peak_detail")
    return machine


def check_conditions(value, path):
    """machine.conditions (sidebyside/noise.py): what else the machine did as the run started; None if absent."""
    if value is None:
        return None
    check_object(value, path)
    average = value.get("load_average")
    busiest = value.get("busy_processes") or []
    check_array(busiest, f"{path}.busy_processes")
    if len(busiest) > 20:
        raise Invalid(f"{path}.busy_processes", f"must hold at most 20 processes, got {len(busiest)}")
    processes = []
    for index, item in enumerate(busiest):
        here = f"{path}.busy_processes[{index}]"
        check_object(item, here)
        processes.append({"pid": check_integer(item.get("pid"), f"{here}.pid", optional=True),
                          "name": check_text(item.get("name"), f"{here}.name") or "?",
                          "cores": check_number(item.get("cores"), f"{here}.cores")})
    if average is not None:
        check_array(average, f"{path}.load_average")
        average = [check_number(item, f"{path}.load_average[{index}]") for index, item in enumerate(average[:3])]
    return {
        "load_average": average,
        "other_cpu_cores": check_number(value.get("other_cpu_cores"), f"{path}.other_cpu_cores", optional=True),
        "busy_processes": processes,
        "cpu_mhz": check_number(value.get("cpu_mhz"), f"{path}.cpu_mhz", optional=True),
        "governor": check_text(value.get("governor"), f"{path}.governor", optional=True),
        "turbo": check_boolean(value.get("turbo"), f"{path}.turbo", optional=True),
        "cpus_in_mask": check_integer(value.get("cpus_in_mask"), f"{path}.cpus_in_mask", optional=True),
        "cpu_count": check_integer(value.get("cpu_count"), f"{path}.cpu_count", optional=True),
        "available_memory_bytes": check_integer(value.get("available_memory_bytes"),
                                                f"{path}.available_memory_bytes", optional=True),
    }


def check_text_map(value, path):
    value = {} if value is None else value
    check_object(value, path)
    return {
        check_text(key, f"{path} key"): check_text(item, f"{path}.{key}", optional=True, limit=MAX_TEXT)
        for key, item in value.items()
    }


def check_threads(value, path):
    value = {} if value is None else value
    check_object(value, path)
    threads = {}
    for key, item in value.items():
        check_text(key, f"{path} key")
        if isinstance(item, str):
            threads[key] = check_text(item, f"{path}.{key}")
        else:
            threads[key] = check_integer(item, f"{path}.{key}", optional=True)
    return threads


def check_blas(value, path):
    value = [] if value is None else value
    libraries = []
    for index, item in enumerate(check_array(value, path)):
        here = f"{path}[{index}]"
        check_object(item, here)
        library = {
            key: check_text(item.get(key), f"{here}.{key}", optional=True, limit=MAX_TEXT)
            for key in ("user_api", "internal_api", "version", "architecture", "filepath", "prefix", "threading_layer")
        }
        library["num_threads"] = check_integer(item.get("num_threads"), f"{here}.num_threads", optional=True)
        libraries.append(library)
    return libraries


def check_gpu(value, path):
    if value is None:
        return None
    check_object(value, path)
    return {
        "name": check_text(value.get("name"), f"{path}.name", optional=True, limit=MAX_TEXT),
        "driver": check_text(value.get("driver"), f"{path}.driver", optional=True),
        "cuda": check_text(value.get("cuda"), f"{path}.cuda", optional=True),
        "memory_bytes": check_integer(value.get("memory_bytes"), f"{path}.memory_bytes", optional=True),
    }


def check_peaks(value, path):
    """machine.peak_gflops as {device: {dtype: GFLOP/s or None} or None}.

    The current layout is {"cpu": {"float32": x, "float64": y}, "cuda": {...} | null}.
    Older files held one number per device, the float32 product's peak: it is
    read as {"float32": number, "float64": None}, so a float64 entry of such a
    file gets no share of peak rather than a share of the wrong peak.
    """
    value = {} if value is None else value
    check_object(value, path)
    peaks = {"cpu": None, "cuda": None}
    for key, item in value.items():
        check_text(key, f"{path} key", limit=40)
        if isinstance(item, dict):
            by_dtype = dict.fromkeys(PEAK_DTYPES)
            for dtype, number in item.items():
                check_text(dtype, f"{path}.{key} key", limit=40)
                by_dtype[dtype] = check_number(number, f"{path}.{key}.{dtype}", optional=True, positive=True)
            peaks[key] = by_dtype
        else:
            number = check_number(item, f"{path}.{key}", optional=True, positive=True)
            peaks[key] = None if number is None else {"float32": number, "float64": None}
    return peaks


def peak_for(peaks, device, dtype):
    """The measured peak (GFLOP/s) of this device and dtype from normalized peak_gflops, else None."""
    by_dtype = (peaks or {}).get(device)
    return by_dtype.get(dtype) if isinstance(by_dtype, dict) else None


def environment_name(machine, source):
    """A label for a machine whose file gave no name: its GPU or CPU, else the file."""
    gpu = machine.get("gpu") or {}
    for candidate in (gpu.get("name"), machine.get("cpu")):
        if candidate:
            return one_line(candidate, MAX_NAME)
    if machine.get("system") or machine.get("arch"):
        return " ".join(filter(None, (machine.get("system"), machine.get("arch"))))
    return one_line(os.path.basename(source) or source, MAX_NAME)


# ----------------------------------------------------------------------------
# pytest-benchmark's own JSON (--benchmark-json)
# ----------------------------------------------------------------------------

# extra_info keys that map onto entry keys as they are.
ENTRY_KEYS = (
    "workload", "implementation", "framework", "backend", "device", "dtype", "threads", "size",
    "status", "reason", "diverged_at", "losses", "unstable", "first_step_s", "loop_time_s",
    "loop_steps", "flops_per_step", "gflops", "peak_fraction", "peak_memory_bytes", "agreement",
    "agreement_tolerance", "agrees", "epochs", "test_accuracy", "first_epoch_s",
    "cpu_utilization", "time_to_target_s", "target_accuracy",
)
SIZE_KEYS = ("N", "D_in", "H", "D_out")
# machine_info keys that sidebyside's pytest hook adds, in the results.json layout.
MACHINE_EXTRAS = ("frameworks", "blas", "threads", "env", "gpu", "tf32", "peak_gflops", "peak_detail")


def from_pytest_benchmark(document, source):
    """Convert `pytest --benchmark-json` output into the normalized layout.

    Each benchmark becomes an entry: its extra_info gives what was run and its
    stats the step time. Keys the benchmark did not record stay unknown.
    """
    info = check_object(document["machine_info"], "machine_info")
    # sidebyside's pytest hook adds its own machine record to machine_info (with "cpu" a string);
    # pytest-benchmark's own keys fill in what it leaves out.
    own = {key: info[key] for key in MACHINE_EXTRAS + ("name", "cpu_count", "commit") if key in info}
    if isinstance(info.get("cpu"), str):
        own["cpu"] = info["cpu"]
    for key in ("system", "release", "arch", "python"):
        if key in info:
            own[key] = info[key]
    machine = check_machine(own, "machine_info")
    native = {"name": ("node", MAX_NAME), "system": ("system", MAX_TEXT), "release": ("release", MAX_TEXT),
              "arch": ("machine", MAX_TEXT), "python": ("python_version", MAX_TEXT)}
    for key, (source_key, limit) in native.items():
        if machine[key] is None:
            machine[key] = check_text(info.get(source_key), f"machine_info.{source_key}", optional=True, limit=limit)
    if not isinstance(info.get("cpu"), str):
        cpu = check_object(info.get("cpu") or {}, "machine_info.cpu")
        machine["cpu"] = check_text(cpu.get("brand_raw"), "machine_info.cpu.brand_raw", optional=True, limit=MAX_TEXT)
        if machine["cpu_count"] is None:
            machine["cpu_count"] = check_integer(cpu.get("count"), "machine_info.cpu.count", minimum=1, optional=True)
    commit = check_object(document.get("commit_info") or {}, "commit_info")
    commit_id = check_text(commit.get("id"), "commit_info.id", optional=True)
    if commit_id is not None and check_boolean(commit.get("dirty"), "commit_info.dirty", optional=True):
        commit_id += " (dirty)"
    if machine["commit"] is None:
        machine["commit"] = commit_id
    if machine["name"] is None:
        machine["name"] = environment_name(machine, source)
    version = check_text(document.get("version"), "version", optional=True)
    entries = []
    for index, benchmark in enumerate(check_array(document["benchmarks"], "benchmarks")):
        entries.append(benchmark_entry(benchmark, index, machine))
    return {
        "schema": SCHEMA_VERSION,
        "tool": f"pytest-benchmark {version}" if version else "pytest-benchmark",
        "created": check_text(document.get("datetime"), "datetime", optional=True),
        "source": source,
        "format": "pytest-benchmark",
        "machine": machine,
        "config": {},
        "references": [],
        "results": join_loops(entries),
    }


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
        loop.update(step_time=None, unstable=False, loop_time_s=seconds, loop_steps=loop_steps,
                    gflops=flops * loop_steps / seconds / 1e9 if flops else loop["gflops"], peak_fraction=None)
        joined.append(loop)
    return joined


def benchmark_entry(benchmark, index, machine):
    here = f"benchmarks[{index}]"
    check_object(benchmark, here)
    extra = benchmark.get("extra_info") or {}
    check_object(extra, f"{here}.extra_info")
    raw = {key: extra[key] for key in ENTRY_KEYS if key in extra}
    overrides = {"step_time": f"{here}.stats"}
    if "implementation" not in raw:
        raw["implementation"] = benchmark.get("name")
        overrides["implementation"] = f"{here}.name"
    if "size" not in raw:
        raw["size"] = {key: extra[key] for key in SIZE_KEYS if key in extra}
        overrides["size"] = f"{here}.extra_info"
    stats = check_object(benchmark.get("stats"), f"{here}.stats")
    if stats.get("samples") is None and stats.get("data") is not None:
        # --benchmark-save-data keeps every timed call's seconds in stats.data: the entry's samples.
        stats = {**stats, "samples": check_samples(stats["data"], f"{here}.stats.data")}
    raw["step_time"] = stats
    leftovers = {key: value for key, value in extra.items() if key not in ENTRY_KEYS and key not in SIZE_KEYS}
    for key in ("group", "name", "fullname"):
        if isinstance(benchmark.get(key), str):
            leftovers.setdefault(f"pytest_{key}", benchmark[key])
    raw["extra"] = leftovers
    defaults = {"workload": UNNAMED, "device": "unknown", "dtype": "unknown", "status": "ok"}
    entry = check_entry(raw, prefixed(f"{here}.extra_info", overrides), defaults)
    # Derive what pytest-benchmark's stats and the machine's peaks imply.
    median = entry["step_time"]["median"]
    if entry["gflops"] is None and entry["flops_per_step"]:
        entry["gflops"] = entry["flops_per_step"] / median / 1e9
    peak = peak_for(machine["peak_gflops"], entry["device"], entry["dtype"])
    if entry["peak_fraction"] is None and entry["gflops"] is not None and peak:
        entry["peak_fraction"] = entry["gflops"] / peak
    return entry
