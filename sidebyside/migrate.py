"""Older results.json documents brought to the current schema, in one place.

The reader (`sidebyside.results.load_results`) calls `migrate` on every
sidebyside document before the model validates it, so the model, the report
and the comparison read the current schema only. A migrated document keeps
the schema it was written in as `migrated_from`. A document of the current
schema, or of one this version does not know (newer, or not a number), is
returned as it is: the model accepts the first and rejects the others in one
line. The input is untrusted and not yet validated, so every step changes only
what has the shape it expects and leaves the rest for the model to name.

Schema 1 to 2 (`from_1`):

- null where an object or an array belongs (the machine's frameworks, env,
  threads, blas, peak_gflops, peak_detail and environments, an environment's
  frameworks, conditions.busy_processes) becomes {} or [];
- a device's peak given as one number, the float32 product's, becomes
  {"float32": x, "float64": null}, in peak_gflops and in peak_detail's
  start and end (a device's one spread in peak_detail holds for both dtypes);
  an entry of that device in another dtype loses its peak_fraction, which was
  taken against the float32 peak;
- an entry "ok" whose losses disagree with the reference (agrees false),
  written before the "disagrees" status existed, becomes "disagrees" with the
  reason the writer gives now;
- extra.compile, the older name of extra.jit_compile, takes the newer name.
"""

import copy

CURRENT = 2  # sidebyside.results.SCHEMA_VERSION: the schema `migrate` brings a document to
PEAK_DTYPE = "float32"  # the dtype of the one peak a schema-1 file may give per device
# The workload of an entry or reference that names none: result files written
# before entries named theirs (all of the two-layer net), and pytest-benchmark
# JSON without extra_info.
UNNAMED = "two_layer"
MACHINE_OBJECTS = ("frameworks", "env", "threads", "peak_gflops", "peak_detail", "environments")


def migrate(document):
    """The document in the current schema (a new object where anything changed)."""
    if not isinstance(document, dict):
        return document
    written = document.get("schema")
    if written == 1 and not isinstance(written, bool):
        document = from_1(document)
        document["migrated_from"] = written
    return document


def from_1(document):
    """A schema-1 document as schema 2 (see the module docstring)."""
    document = copy.deepcopy(document)
    document["schema"] = 2
    flat = set()
    if isinstance(document.get("machine"), dict):
        flat = machine_from_1(document["machine"])
    for entry in document.get("results") if isinstance(document.get("results"), list) else []:
        if isinstance(entry, dict):
            entry_from_1(entry, flat)
    return document


def machine_from_1(machine):
    """Migrate a machine record in place; returns the devices whose peak was one number.

    pytest-benchmark JSON carries no schema: its converter passes the machine
    record sidebyside's hook added through this step too.
    """
    for key in MACHINE_OBJECTS:
        if key in machine and machine[key] is None:
            machine[key] = {}
    if "blas" in machine and machine["blas"] is None:
        machine["blas"] = []
    environments = machine.get("environments")
    for environment in environments.values() if isinstance(environments, dict) else ():
        if isinstance(environment, dict) and "frameworks" in environment and environment["frameworks"] is None:
            environment["frameworks"] = {}
    conditions = machine.get("conditions")
    if isinstance(conditions, dict) and "busy_processes" in conditions and conditions["busy_processes"] is None:
        conditions["busy_processes"] = []
    flat = per_dtype(machine.get("peak_gflops"))
    detail = machine.get("peak_detail")
    if isinstance(detail, dict):
        for key in ("start", "end", "spread"):
            per_dtype(detail.get(key), every_dtype=key == "spread")
    return flat


def per_dtype(peaks, every_dtype=False):
    """Each device's one number in {device: x} as {"float32": x, "float64": None} in place; returns those devices.

    With `every_dtype` the number holds for float64 too.
    """
    if not isinstance(peaks, dict):
        return set()
    flat = {device for device, value in peaks.items() if value is not None and not isinstance(value, dict)}
    for device in flat:
        peaks[device] = {PEAK_DTYPE: peaks[device], "float64": peaks[device] if every_dtype else None}
    return flat


def entry_from_1(entry, flat_peaks):
    if entry.get("device") in flat_peaks and entry.get("dtype") != PEAK_DTYPE:
        entry["peak_fraction"] = None
    if entry.get("status") == "ok" and entry.get("agrees") is False:
        entry["status"] = "disagrees"
        entry["reason"] = entry.get("reason") or disagreement_reason(entry.get("agreement"),
                                                                      entry.get("agreement_tolerance"))
    extra = entry.get("extra")
    if isinstance(extra, dict) and "compile" in extra:
        extra.setdefault("jit_compile", extra.pop("compile"))


def disagreement_reason(agreement, tolerance):
    """The reason the writer gives a "disagrees" entry, from the numbers a schema-1 entry recorded."""
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (agreement, tolerance or 0))
    if agreement is None or not numbers:
        return "loss differs from the float64 reference"
    bound = f" (tolerance {tolerance:.1e})" if tolerance is not None else ""
    return f"loss differs from the float64 reference by {agreement:.1e} relative{bound}"
