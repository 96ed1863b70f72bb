"""Merging normalized result documents from one machine or several.

Every machine gets a unique label (its name, disambiguated by file name
when two files name the same machine), and every entry becomes one row of a
pandas DataFrame with the derived quantities the report needs: GFLOP/s where
the file did not record it, the share of the peak of the entry's own device
and dtype, the loop's time per step,
a printable size label. Loss and epoch series stay in plain dicts keyed by
the row number, beside the frame.
"""

import math
import os
from dataclasses import dataclass, field, replace

import pandas as pd

from sidebyside.ranking import idle_devices, left_out
from sidebyside.results import gflops as gflops_of
from sidebyside.results import one_line, peak_for
from sidebyside.results import peak_fraction as share_of_peak

SIZE_KEYS = ("N", "D_in", "H", "D_out")

COLUMNS = (
    "row", "machine", "source", "workload", "implementation", "framework", "backend", "device",
    "dtype", "threads", "size_label", "size_key", "flops", "status", "reason", "diverged_at",
    "median", "iqr", "min", "max", "mean", "stddev", "rounds", "unstable", "first_step_s",
    "loop_time_s", "loop_steps", "loop_per_step", "gflops", "peak_gflops", "peak_fraction",
    "peak_memory_bytes", "agreement", "agreement_tolerance", "agrees", "test_accuracy",
    "target_accuracy", "time_to_target_s", "first_epoch_s", "has_losses", "kernels", "jit",
    "size",  # a dict per row: the size's dimensions, as the file gives them
    "full",  # whether the size ran in full (not a sweep size timed within a budget); None where the file does not say
    "round_medians",  # a list per row (or None): each timed round's median, for sidebyside.ranking
    "cpu_utilization",  # CPU seconds / wall seconds of the timed steps: cores busy, against `threads`
    "runnable_threads",  # a dict per row (or None): runnable threads sampled in the timed steps, against the CPUs
    "threads_read_back",  # a dict per row (or None): each thread pool's size as its library reported it
    "samples",  # a list per row (or None): every timed step's seconds
    "canary",  # a list per row (or None): the drift canary's seconds beside each round (sidebyside/canary.py)
    "profile",  # extra.profile as the file has it (or None): --profile's op breakdown (report/sections/profile.py)
)

INTEGER_COLUMNS = ("threads", "diverged_at", "rounds", "loop_steps", "peak_memory_bytes")


@dataclass
class Collection:
    """Everything the report reads, merged from all files."""

    documents: list
    labels: list  # one unique machine label per document, same order
    frame: pd.DataFrame  # one row per entry, columns COLUMNS
    losses: dict = field(default_factory=dict)  # row -> list of float|None
    epochs: dict = field(default_factory=dict)  # row -> list of epoch dicts
    sizes: dict = field(default_factory=dict)  # row -> size dict
    references: dict = field(default_factory=dict)  # (machine, workload, size_key) -> {dtype: losses}

    @property
    def machines(self):
        """(label, machine dict, document) for every file, in the order given."""
        return [(label, doc["machine"], doc) for label, doc in zip(self.labels, self.documents)]

    def machine(self, label):
        return self.documents[self.labels.index(label)]["machine"]

    def without_idle_rows(self):
        """(collection, notices): the rows of what did not run left out, and one line for each.

        A machine without a GPU has every CUDA case "n/a"; the report names
        that once ("CUDA: no device here (N cases not run)") instead of a row
        per case in every table, and the same for the slow starters a default
        run left out. notices: [(machine label, [line, ...])].
        """
        frame, notices, drop = self.frame, [], pd.Series(False, index=self.frame.index)
        for label in self.labels:
            mine = frame["machine"] == label
            records = frame.loc[mine, ["implementation", "device", "status", "reason"]].to_dict("records")
            idle = idle_devices(records)
            skipped, skipped_line = left_out(records)
            lines = [line for _, line in idle.values()] + ([skipped_line] if skipped_line else [])
            if lines:
                notices.append((label, lines))
                drop |= mine & (frame["device"].isin(list(idle)) | frame["implementation"].isin(list(skipped)))
        if not drop.any():
            return self, notices
        return replace(self, frame=frame[~drop]), notices

    def only(self, names):
        """The same collection with the rows of these workloads only."""
        return replace(self, frame=self.frame[self.frame["workload"].isin(list(names))])

    def in_full(self):
        """The same collection without the sweep sizes (those a file says were timed within a budget)."""
        return replace(self, frame=self.frame[self.frame["full"] != False])  # noqa: E712 (None: kept)


def path_suffix(source, depth):
    """The last `depth` parts of a file's path: results.json, run1/results.json, ..."""
    parts = os.path.normpath(source).replace("\\", "/").split("/")
    return "/".join(parts[-depth:])


def machine_labels(documents):
    """Unique labels: the machine's name, then enough of the file's path, then a counter."""
    names = [one_line(doc["machine"]["name"], 200) for doc in documents]
    suffixes = {}
    for name in set(names):
        sources = [doc["source"] for doc, other in zip(documents, names) if other == name]
        if len(sources) == 1:
            continue
        for depth in (1, 2, 3):
            if len({path_suffix(source, depth) for source in sources}) == len(sources) or depth == 3:
                break
        suffixes[name] = depth
    labels = []
    for name, doc in zip(names, documents):
        label = name
        if name in suffixes:
            label = f"{name} ({one_line(path_suffix(doc['source'], suffixes[name]), 120)})"
        candidate, counter = label, 2
        while candidate in labels:
            candidate = f"{label} #{counter}"
            counter += 1
        labels.append(candidate)
    return labels


def size_label(size):
    """64×1000×100×10 for sizes of the four dimensions N, D_in, H, D_out, else k=v pairs."""
    if tuple(size) == SIZE_KEYS:
        return "×".join(str(size[key]) for key in SIZE_KEYS)
    if not size:
        return "?"
    return " ".join(f"{key}={value}" for key, value in size.items())


def ratio(numerator, denominator):
    """numerator / denominator, or None when either is missing or the result is not finite."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    try:
        value = numerator / denominator
    except (OverflowError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def text_or_none(x):
    """A short printable form of a scalar from an entry's free-form extra, else None."""
    if x is None or isinstance(x, (dict, list)):
        return None
    return one_line(x, 200)


def full_sizes_of(document):
    """The sizes the run ran in full, as lists, where its configuration records them (options.sizes)."""
    config = document.get("config")
    options = config.get("options") if isinstance(config, dict) else None
    sizes = options.get("sizes") if isinstance(options, dict) else None
    if not isinstance(sizes, list):
        return None
    return [list(size) for size in sizes if isinstance(size, (list, tuple))]


def merge(documents, flops=None):
    """A Collection of the normalized documents.

    `flops(workload, size)`: the FLOPs of one step, for entries whose file did not record them (None: unknown).
    """
    labels = machine_labels(documents)
    rows, losses, epochs, sizes, references = [], {}, {}, {}, {}
    for label, doc in zip(labels, documents):
        peaks = doc["machine"]["peak_gflops"]
        full_sizes = full_sizes_of(doc)
        for reference in doc["references"]:
            key = (label, reference["workload"], size_label(reference["size"]))
            references.setdefault(key, {})[reference["dtype"]] = reference["losses"]
        for entry in doc["results"]:
            row = len(rows)
            timing = entry["step_time"] or {}
            size = entry["size"]
            steps = entry["flops_per_step"]
            if steps is None and flops is not None:  # pytest-benchmark JSON may not say: the workload knows
                steps = flops(entry["workload"], size)
            flops_per_step = float(steps) if steps else None
            median = timing.get("median")
            gflops = entry["gflops"]
            if gflops is None and flops_per_step and median and entry["status"] in ("ok", "unchecked"):
                gflops = gflops_of(flops_per_step, median)
            # The share of peak is always against the entry's own device AND dtype: a float64 run
            # against the float32 peak would look twice as far from the hardware as it is.
            peak = peak_for(peaks, entry["device"], entry["dtype"])
            if peaks.get(entry["device"]) is not None:  # derived from the file's own peaks, as the writer does
                peak_fraction = share_of_peak(gflops, peak)
            else:
                peak_fraction = entry["peak_fraction"]  # no peak in the file: the writer's figure or none
            rows.append(
                {
                    "row": row,
                    "machine": label,
                    "source": doc["source"],
                    "workload": entry["workload"],
                    "implementation": entry["implementation"],
                    "framework": entry["framework"],
                    "backend": entry["backend"],
                    "device": entry["device"],
                    "dtype": entry["dtype"],
                    "threads": entry["threads"],
                    "size_label": size_label(size),
                    "size": dict(size),
                    "full": None if full_sizes is None else list(size.values()) in full_sizes,
                    "size_key": (flops_per_step or 0, size_label(size)),
                    "flops": flops_per_step,
                    "status": entry["status"],
                    "reason": entry["reason"],
                    "diverged_at": entry["diverged_at"],
                    "median": median,
                    "iqr": timing.get("iqr"),
                    "min": timing.get("min"),
                    "max": timing.get("max"),
                    "mean": timing.get("mean"),
                    "stddev": timing.get("stddev"),
                    "rounds": timing.get("rounds"),
                    "unstable": bool(entry["unstable"]),
                    "first_step_s": entry["first_step_s"],
                    "loop_time_s": entry["loop_time_s"],
                    "loop_steps": entry["loop_steps"],
                    "loop_per_step": ratio(entry["loop_time_s"], entry["loop_steps"]),
                    "gflops": gflops,
                    "peak_gflops": peak,
                    "peak_fraction": peak_fraction,
                    "peak_memory_bytes": entry["peak_memory_bytes"],
                    "agreement": entry["agreement"],
                    "agreement_tolerance": entry["agreement_tolerance"],
                    "agrees": entry["agrees"],
                    "test_accuracy": entry["test_accuracy"],
                    "target_accuracy": entry["target_accuracy"],
                    "time_to_target_s": entry["time_to_target_s"],
                    "first_epoch_s": entry["first_epoch_s"],
                    "has_losses": bool(entry["losses"]),
                    "kernels": text_or_none(entry["extra"].get("kernels")),
                    "jit": text_or_none(entry["extra"].get("jit_compile")),
                    "round_medians": timing.get("round_medians"),
                    "cpu_utilization": entry["cpu_utilization"],
                    "runnable_threads": entry["extra"].get("runnable_threads"),
                    "threads_read_back": entry["extra"].get("threads_read_back"),
                    "samples": timing.get("samples"),
                    "canary": timing.get("canary"),
                    "profile": entry["extra"].get("profile"),
                }
            )
            losses[row] = entry["losses"]
            epochs[row] = entry["epochs"]
            sizes[row] = size
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame = frame.astype({"unstable": bool, "has_losses": bool, "flops": float,
                          **{column: "Int64" for column in INTEGER_COLUMNS}})
    return Collection(documents, labels, frame, losses, epochs, sizes, references)


def value(x):
    """A frame cell as a plain Python value: None for missing."""
    if x is None:
        return None
    try:
        if pd.isna(x):
            return None
    except (TypeError, ValueError):
        return x
    if hasattr(x, "item"):
        return x.item()
    return x
