"""Environment: what the numbers depend on besides the code, per machine as its result file records it.

Its rows: the file, the machine, the frameworks and BLAS libraries, threads and environment variables, the
measured peaks and how far they moved during the run, the drift canary, the commit and the run's settings.
"""

import math

import pandas as pd

from sidebyside import rounds
from sidebyside.report import formatting as fmt
from sidebyside.report.merge import value
from sidebyside.report.tables import Section, Table, Text

ORDER = 20


def sections(context):
    note = Text(["What the numbers depend on besides the code, per machine as its result file records it."],
                markdown=False)
    return Section("environment", "Environment", [note, context.table(environment_table)], markdown=False)


def blas_owner(filepath):
    """The Python package a shared library ships in: numpy for .../numpy.libs/libopenblas.so."""
    if not filepath:
        return "unknown"
    parts = filepath.replace("\\", "/").split("/")
    for index, part in enumerate(parts[:-1]):
        if part in ("site-packages", "dist-packages"):
            name = parts[index + 1]
            return name[: -len(".libs")] if name.endswith(".libs") else name
    return parts[-1]


def blas_text(library):
    bits = [library.get("internal_api") or library.get("user_api") or "?"]
    if library.get("version"):
        bits.append(library["version"])
    details = []
    if library.get("architecture"):
        details.append(f"{library['architecture']} kernel")
    if library.get("num_threads") is not None:
        details.append(f"{library['num_threads']} threads")
    if library.get("threading_layer"):
        details.append(library["threading_layer"])
    return " ".join(bits) + (f" ({', '.join(details)})" if details else "")


def canary_text(document):
    """"355 to 371 µs over 40 processes (the slowest 1.05× the fastest)", or None without a canary."""
    spread = rounds.drift([(entry.get("step_time") or {}).get("canary") for entry in document["results"]])
    if spread is None:
        return None
    low, high, ratio = spread
    count = sum(len([x for x in (entry.get("step_time") or {}).get("canary") or () if x])
                for entry in document["results"])
    return (f"{fmt.seconds(low)} to {fmt.seconds(high)} over {count} rounds (the slowest {fmt.times(ratio)} the "
            f"fastest: how far the machine's own speed moved during the run)")


def environment_rows(label, machine, document):
    gpu = machine["gpu"]
    config = document["config"] if isinstance(document["config"], dict) else {}
    rows = {
        "File": document["source"],
        "Format": document["tool"] or document["format"],
        "Created": document["created"],
        "OS": " ".join(filter(None, (machine["system"], machine["release"]))) or None,
        "Architecture": machine["arch"],
        "CPU": machine["cpu"] + (f" ({machine['cpu_count']} logical cores)" if machine["cpu_count"] else "")
        if machine["cpu"] else (f"{machine['cpu_count']} logical cores" if machine["cpu_count"] else None),
        "GPU": gpu_text(gpu),
        "Python": machine["python"],
    }
    for name, version in machine["frameworks"].items():
        rows[f"Version: {name}"] = version
    for library in machine["blas"]:
        rows[f"Library: {blas_owner(library.get('filepath'))} · {library.get('user_api') or '?'}"] = blas_text(library)
    for key, setting in machine["threads"].items():
        rows[f"Threads: {key}"] = setting
    for key, setting in machine["env"].items():
        rows[f"Env: {key}"] = setting
    rows["TF32 allowed"] = machine["tf32"]
    rows.update(peak_rows(machine))
    rows["Drift canary"] = canary_text(document)
    rows["Commit"] = machine["commit"]
    for name, record in (machine.get("environments") or {}).items():
        if name == machine.get("environment"):
            rows["Environment"] = (f"{name}: {record.get('executable')}, sidebyside {record.get('sidebyside')} "
                                   f"at {record.get('location')} (commit {record.get('commit')})")
            for framework, version in (record.get("frameworks") or {}).items():
                rows[f"Version in {name}: {framework}"] = version
    for key in ("threads", "steps", "quick", "devices", "dtypes", "tf32", "seed", "warmup"):
        if key in config:
            rows[f"Run setting: {key}"] = config[key]
    return rows


# The peak is measured at the start and at the end of a run. If the two differ
# by more than this share, the machine's speed changed while it ran (other
# load, thermal or frequency scaling), and so may the timings in between.
PEAK_SPREAD_WARNING = 0.10


def detail_number(x):
    x = value(x)
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def peak_detail_value(detail, key, device, dtype):
    """One number from machine.peak_detail, a free-form object, or None.

    "start" and "end" have the shape of peak_gflops ({device: {dtype: x}});
    "spread" the same, as a fraction (|start - end| / the larger);
    "theoretical" is the CPU's {"float32": x, "float64": y, ...}.
    """
    item = detail.get(key) if isinstance(detail, dict) else None
    if key == "theoretical" and isinstance(item, dict) and dtype in item:
        return detail_number(item[dtype]) if device == "cpu" else None
    if isinstance(item, dict):
        item = item.get(device)
    if isinstance(item, dict):
        return detail_number(item.get(dtype))
    return None


def peak_drift(machine, device, dtype):
    """(start, end, spread) of one device and dtype's peak; spread worked out when only both ends are given."""
    detail = machine.get("peak_detail") or {}
    start, end = (peak_detail_value(detail, key, device, dtype) for key in ("start", "end"))
    spread = peak_detail_value(detail, "spread", device, dtype)
    if spread is None and start and end:
        spread = abs(start - end) / max(start, end)
    return start, end, spread


def peak_devices(machine):
    """(device, dtype) pairs with a peak measured, or noted in peak_detail."""
    pairs = []
    for device, by_dtype in (machine.get("peak_gflops") or {}).items():
        for dtype in (by_dtype or {}):
            pairs.append((device, dtype))
    return pairs


ABOVE_THEORETICAL = "below the measured peak, so what it assumes (clock, FMA units per core) does not hold here"


def over_theoretical(machine):
    """{(device, dtype): (measured, theoretical)} where the measured peak is above the theoretical one."""
    detail = machine.get("peak_detail") or {}
    found = {}
    for device, dtype in peak_devices(machine):
        measured = detail_number(machine["peak_gflops"][device].get(dtype))
        theoretical = peak_detail_value(detail, "theoretical", device, dtype)
        if measured is not None and theoretical is not None and measured > theoretical:
            found[(device, dtype)] = (measured, theoretical)
    return found


def peak_rows(machine):
    """Environment rows: each measured peak, its start and end values and spread, the theoretical peak.

    A theoretical peak below the measured one reads as such (ABOVE_THEORETICAL), not as a bare number.
    """
    rows = {}
    detail = machine.get("peak_detail") or {}
    beaten = over_theoretical(machine)
    for device, by_dtype in (machine.get("peak_gflops") or {}).items():
        if by_dtype is None:
            rows[f"Measured peak, {device} (GFLOP/s)"] = None
            continue
        for dtype, peak in by_dtype.items():
            rows[f"Measured peak, {device} {dtype} (GFLOP/s)"] = peak
            start, end, spread = peak_drift(machine, device, dtype)
            if start is not None or end is not None:
                text = f"{fmt.rate(start)} at the start, {fmt.rate(end)} at the end"
                if spread is not None:
                    text += f" (spread {fmt.percent(spread)}"
                    text += ": over 10%, the machine's speed changed)" if spread > PEAK_SPREAD_WARNING else ")"
                rows[f"Peak drift, {device} {dtype} (GFLOP/s)"] = text
            theoretical = peak_detail_value(detail, "theoretical", device, dtype)
            if theoretical is not None:
                rows[f"Theoretical peak, {device} {dtype} (GFLOP/s)"] = (
                    f"{fmt.rate(theoretical)}: {ABOVE_THEORETICAL}" if (device, dtype) in beaten else theoretical)
    return rows


def gpu_text(gpu):
    if gpu is None:
        return "none"
    bits = [gpu.get("name") or "unknown GPU"]
    if gpu.get("memory_bytes"):
        bits.append(fmt.memory(gpu["memory_bytes"]))
    if gpu.get("driver"):
        bits.append(f"driver {gpu['driver']}")
    if gpu.get("cuda"):
        bits.append(f"CUDA {gpu['cuda']}")
    return ", ".join(bits)


def environment_table(collection):
    columns = [(label, environment_rows(label, machine, doc)) for label, machine, doc in collection.machines]
    keys = list(dict.fromkeys(key for _, rows in columns for key in rows))
    labels = [label for label, _ in columns]

    def show(cell):
        cell = value(cell)
        if isinstance(cell, (list, tuple)):
            return ", ".join(fmt.text(item) for item in cell)
        if isinstance(cell, dict):
            return ", ".join(f"{key}={fmt.text(item)}" for key, item in cell.items())
        return fmt.general(cell)

    def raw(cell):
        if isinstance(cell, (list, tuple, dict)):
            return show(cell)
        return cell

    data = pd.DataFrame([[key] + [raw(rows.get(key)) for _, rows in columns] for key in keys],
                        columns=["field"] + labels)
    display = pd.DataFrame([[key] + [show(rows.get(key)) for _, rows in columns] for key in keys],
                           columns=[""] + labels)
    return Table("environment", "Environment, per machine", data, display, [""] * len(display), css="environment")
