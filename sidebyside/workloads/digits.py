"""The digits classifier: accuracy, epoch times and agreement of a real training run.

A workload of the harness (`WORKLOAD`, at the end): one task per device and
dtype on the run's data, measured in full in round 1 (no later timing
rounds: an epoch is long enough to time alone), judged in the worker against
its own float64 reference, and shown in a section of its own in the report
(accuracy against time, each epoch's time, the table, the code).

`measure_digits` trains one registered implementation for the problem's
epochs on the shared data, weights and batch order, and returns a complete
results entry (schema 1, workload "digits"). The protocol:

1. The images, the labels and every epoch's batch indices are converted to
   the framework's tensors on its device (`net.prepare`,
   `net.prepare_batches`) before any clock starts, for every implementation
   alike; the time that takes is recorded apart, as `extra.conversion_s`.
2. Each epoch is timed alone, from the call of `fit_epoch` until its losses
   are on the host, which waits for any device. The first epoch pays
   tracing, compilation and warm-up (`first_epoch_s`).
3. After each epoch, outside the clock, the test accuracy is measured.
4. `time_to_target_s` adds up the epoch times until the first epoch whose
   test accuracy reached the problem's `target_accuracy`, one target shared
   by every implementation (null if no epoch reached it); evaluation time is
   not counted.
5. Per-step statistics divide each epoch's time by its number of steps and
   use the epochs after the first (the only epoch, in a quick run).
6. The per-step losses are compared with the float64 reference of
   implementations/digits/reference.py, written apart from every
   implementation (numpy_manual is judged against it like the others), and
   that module also gives the tolerance.

It raises FrameworkMissing, FrameworkBroken, DeviceUnavailable and
DtypeUnsupported for the runner to record as "n/a" or "failed". It sets no
thread counts: the worker does that before any framework is imported.
"""

import math
import time

import numpy as np

from sidebyside.fairness import default_threads
from sidebyside.frameworks import compute_framework, gpu_peak_bytes, reset_gpu_peak
from sidebyside.results import gflops, is_unstable, new_entry
from sidebyside.timing import PeakMemory, summarize
from sidebyside.workloads import Workload
from sidebyside.implementations import digits
from sidebyside.implementations.digits.data import BUNDLED_PIXELS, EXTRA, load_data, missing_libraries
from sidebyside.implementations.digits.problem import DigitsProblem, accuracy, batch_order, initial_weights, train_loss
from sidebyside.implementations.digits.reference import (
    adam_form,
    agreement_tolerance,
    reference_losses as _reference_losses,
    relative_difference,
)

def problem_for(dtype="float32", epochs=None, quick=False):
    """The digits problem of a run: one epoch when quick, else `epochs` (default 5)."""
    return DigitsProblem(dtype=dtype, epochs=1 if quick else (epochs or DigitsProblem.epochs))


def reference_losses(problem, data=None):
    """The float64 reference's per-step losses (reference.py's own run; Adam with eps on √v̂)."""
    return _reference_losses(problem, data)


def reference_record(epochs=None, data=None, quick=False):
    """The reference as results.json's "references" keep it."""
    problem = problem_for("float64", epochs, quick)
    dataset = load_data(problem, data)
    return {
        "workload": WORKLOAD.name,
        "size": problem.size(dataset.D_in),
        "dtype": "float64",
        "data": dataset.source,
        "losses": [float(value) for value in reference_losses(problem, data)],
    }


def size_for(data=None):
    """The entry "size" of the digits on `data`, for entries that never trained (n/a, failed)."""
    problem = DigitsProblem()
    if data is None and missing_libraries():  # known without the library that loads it
        return problem.size(BUNDLED_PIXELS)
    return problem.size(load_data(problem, data).D_in)


def flops_per_step(problem, D_in):
    """FLOPs of a full batch's products, counted as for the two-layer net (no gradient for x)."""
    first = 2 * problem.batch_size * D_in * problem.hidden
    second = 2 * problem.batch_size * problem.hidden * 10
    return 2 * first + 3 * second


def time_to_target(records, target):
    """Seconds of training until the first epoch whose test accuracy is >= target, or None if none is.

    records: the entry's "epochs", in order, each with "test_accuracy" and "time_s".
    """
    elapsed = 0.0
    for record in records:
        elapsed += record["time_s"]
        if record["test_accuracy"] >= target:
            return elapsed
    return None


def measure_digits(implementation, device="cpu", dtype="float32", threads=None, epochs=None, data=None, quick=False):
    """Train `implementation` on the digits and return its results entry."""
    spec = digits.spec(implementation)  # ValueError for an unknown name
    problem = problem_for(dtype, epochs, quick)
    dataset = load_data(problem, data)  # DataError (a ValueError) names a bad file
    digits.load(implementation)  # FrameworkMissing / FrameworkBroken, before anything is measured
    params = initial_weights(problem, dataset.D_in)
    order = batch_order(problem, len(dataset.y_train))
    framework = compute_framework(spec)

    memory = PeakMemory()  # this case's growth alone: the high-water mark is reset here
    # With the registry entry's options; DeviceUnavailable / DtypeUnsupported.
    net = digits.create(implementation, params, problem, device=device)
    if device == "cuda":
        reset_gpu_peak(framework, device)
    # Everything the epochs read, converted for the framework before any clock starts.
    conversion_start = time.perf_counter()
    x_train, y_train = net.prepare(dataset.x_train, dataset.y_train)
    x_test = net.prepare(dataset.x_test)
    order = [net.prepare_batches(batches) for batches in order]
    conversion_s = time.perf_counter() - conversion_start

    losses, records = [], []
    for number, batches in enumerate(order, start=1):
        start = time.perf_counter()
        epoch_losses = np.asarray(net.fit_epoch(x_train, y_train, batches), dtype=np.float64)
        duration = time.perf_counter() - start
        losses.extend(epoch_losses)
        finite = bool(np.all(np.isfinite(epoch_losses)))
        records.append({
            "epoch": number,
            "train_loss": train_loss(epoch_losses, batches) if finite else None,
            "test_accuracy": accuracy(net.predict(x_test), dataset.y_test),
            "time_s": duration,
        })

    losses = np.array(losses)
    steps = [len(batches) for batches in order]
    per_step = [record["time_s"] / count for record, count in zip(records, steps)]
    step_time = summarize(per_step[1:] or per_step)
    final_accuracy = records[-1]["test_accuracy"]
    to_target = time_to_target(records, problem.target_accuracy)

    non_finite = np.flatnonzero(~np.isfinite(losses))
    diverged_at = int(non_finite[0]) if len(non_finite) else None
    agreement = relative_difference(losses, reference_losses(problem, data))
    tolerance = agreement_tolerance(implementation, problem, data)
    form = adam_form(implementation, dtype)

    if device == "cuda":
        peak_memory = gpu_peak_bytes(framework)
    else:
        peak_memory = memory.growth()

    extra = {
        "data": dataset.source,
        "n_train": int(len(dataset.y_train)),
        "n_test": int(len(dataset.y_test)),
        "steps_per_epoch": int(steps[0]),
        "conversion_s": conversion_s,  # net.prepare and prepare_batches, outside every epoch's clock
        "adam": form,
        "step_time_from": "epochs after the first" if len(records) > 1 else "the only epoch (includes compilation)",
    }
    if form != "pytorch":
        # How far Keras's Adam rule alone moves the float64 losses from the reference.
        extra["adam_difference"] = relative_difference(_reference_losses(problem, data, form), reference_losses(problem, data))
    if hasattr(net, "info"):
        extra.update(net.info())

    flops = flops_per_step(problem, dataset.D_in)
    return new_entry(**{
        "workload": WORKLOAD.name,
        "implementation": spec.name,
        "framework": spec.framework,
        "backend": spec.backend,
        "device": device,
        "dtype": dtype,
        "threads": threads if threads is not None else default_threads(),
        "size": problem.size(dataset.D_in),
        "status": "ok" if diverged_at is None else "diverged",
        "reason": None if diverged_at is None else f"loss became {losses[diverged_at]} at step {diverged_at}",
        "diverged_at": diverged_at,
        "losses": [float(value) if math.isfinite(value) else None for value in losses],
        "step_time": step_time,
        "samples": per_step[1:] or per_step,  # each epoch's mean step: the runner keeps them as step_time.samples
        "unstable": is_unstable(step_time),
        "first_step_s": None,
        "loop_time_s": float(sum(record["time_s"] for record in records[1:] or records)),
        "loop_steps": int(sum(steps[1:] or steps)),
        "flops_per_step": flops,
        "gflops": gflops(flops, step_time["median"]) if step_time else None,
        "peak_fraction": None,
        "peak_memory_bytes": peak_memory,
        "agreement": agreement if math.isfinite(agreement) else None,
        "agreement_tolerance": float(tolerance),
        "agrees": bool(agreement <= tolerance),
        "extra": extra,
        "epochs": records,
        "test_accuracy": final_accuracy,
        "target_accuracy": float(problem.target_accuracy),
        "time_to_target_s": to_target,
        "first_epoch_s": records[0]["time_s"],
    })


def digits_table(collection, lines_of_code):
    """The section's table: accuracy, time to target, epoch times, lines of code."""
    import pandas as pd

    from sidebyside.report import formatting as fmt
    from sidebyside.report.tables import Table, ordered, step_cell

    frame = collection.frame[collection.frame["workload"] == WORKLOAD.name]
    if frame.empty:
        return None
    frame = ordered(frame.assign(median=frame["time_to_target_s"]).assign(step_median=frame["median"]),
                    collection.labels)
    later = [later_epochs_median(collection.epochs[row]) for row in frame["row"]]
    loc = [lines_of_code.get(name) for name in frame["implementation"]]
    data = pd.DataFrame(
        {
            "machine": frame["machine"], "device": frame["device"], "dtype": frame["dtype"],
            "implementation": frame["implementation"], "framework": frame["framework"],
            "backend": frame["backend"], "status": frame["status"], "reason": frame["reason"],
            "test_accuracy": frame["test_accuracy"], "target_accuracy": frame["target_accuracy"],
            "time_to_target_s": frame["time_to_target_s"],
            "first_epoch_s": frame["first_epoch_s"], "later_epoch_median_s": later,
            "epochs": [len(collection.epochs[row]) for row in frame["row"]],
            "step_median_s": frame["step_median"], "lines_of_code": loc,
        }
    )
    display = pd.DataFrame(
        {
            "Machine": frame["machine"], "Device": frame["device"], "Dtype": frame["dtype"],
            "Implementation": frame["implementation"],
            "Test accuracy": [fmt.percent(x) if s == "ok" else fmt.status_text(s, r, d) for x, s, r, d in
                              zip(frame["test_accuracy"], frame["status"], frame["reason"], frame["diverged_at"])],
            "Time to target": [fmt.seconds(x) for x in frame["time_to_target_s"]],
            "First epoch": [fmt.seconds(x) for x in frame["first_epoch_s"]],
            "Later epochs (median)": [fmt.seconds(x) for x in later],
            "Epochs": [fmt.general(x) for x in data["epochs"]],
            "Step (median)": [step_cell(m, u) for m, u in zip(frame["step_median"], frame["unstable"])],
            "LOC": [fmt.general(x) for x in loc],
        }
    )
    classes = ["" if s == "ok" else "status-" + {"n/a": "na"}.get(s, s) for s in frame["status"]]
    return Table(
        WORKLOAD.name, "Digits: accuracy and time", data, display, classes, facet="Machine",
        note=("Rows run fastest first by time to target: the epoch time until the first epoch whose test "
              "accuracy reached the target shared by every implementation (none where no epoch did). "
              "The first epoch includes tracing and compilation."),
    )


def later_epochs_median(epochs):
    times = [epoch["time_s"] for epoch in epochs[1:] if epoch["time_s"] is not None]
    return float(np.median(times)) if times else None


def digits_charts(collection, palette):
    """Per machine: test accuracy against training time, and each epoch's time (PNG figures)."""
    import matplotlib

    from sidebyside.report.chartdata import series
    from sidebyside.report.figures import (LINE_STYLES, MARKERS, STYLE, FigurePanel, legend_outside, new_figure,
                                           plot_label, render)

    frame = collection.frame
    frame = frame[(frame["workload"] == WORKLOAD.name) & (frame["status"] == "ok")]
    frame = frame[frame["row"].map(lambda row: bool(collection.epochs[row])).astype(bool)]
    charts = []
    for machine, group in frame.groupby("machine", sort=False):
        several = group[["device", "dtype"]].drop_duplicates().shape[0] > 1
        with matplotlib.rc_context(STYLE):
            figure = new_figure(11, 4.2)
            accuracy_axes, epoch_axes = figure.subplots(1, 2)
            names = []
            for index, (_, row) in enumerate(group.iterrows()):
                epochs = collection.epochs[row["row"]]
                times = np.cumsum(np.nan_to_num(series([epoch["time_s"] for epoch in epochs])))
                accuracy_values = series([epoch["test_accuracy"] for epoch in epochs]) * 100
                name = row["implementation"] + (f" ({row['device']}, {row['dtype']})" if several else "")
                names.append(plot_label(name))
                colour = palette(row["implementation"])
                accuracy_axes.plot(times, accuracy_values, LINE_STYLES.get(row["device"], ":"),
                                   marker=MARKERS[index % len(MARKERS)], markersize=4, color=colour,
                                   label=plot_label(name))
                durations = series([epoch["time_s"] for epoch in epochs])
                width = 0.8 / max(len(durations), 1)
                for number, duration in enumerate(durations):
                    epoch_axes.bar(index - 0.4 + width * (number + 0.5), duration, width, color=colour,
                                   hatch="//" if number == 0 else None, edgecolor="white")
            accuracy_axes.set_xlabel("wall time, seconds (cumulative over epochs)")
            accuracy_axes.set_ylabel("test accuracy, %")
            accuracy_axes.set_title("Accuracy against wall time")
            epoch_axes.set_xticks(range(len(names)), names, rotation=20, ha="right")
            epoch_axes.set_ylabel("seconds")
            epoch_axes.set_title("Time of each epoch (first hatched)")
            legend_outside(accuracy_axes, figure)
            title = f"{machine} · {WORKLOAD.name}"
            figure.suptitle(plot_label(title, 120))
            charts.append(render(figure, FigurePanel(
                f"{WORKLOAD.name}-{len(charts)}", title,
                "Left: test accuracy after each epoch against the time spent training. Right: each epoch's "
                "time, one bar per epoch in order; the first (hatched) includes tracing and compilation.",
                f"Digits accuracy and epoch times for {title}",
            )))
    return charts


def time_to_target_sentence(frame):
    """One finding: each implementation's time to the shared accuracy target."""
    from sidebyside.report import formatting as fmt
    from sidebyside.report.formatting import value

    ok = frame[frame["status"] == "ok"]
    ok = ok[ok["time_to_target_s"].notna()].sort_values("time_to_target_s")
    if ok.empty:
        return None
    several = ok[["device", "dtype"]].drop_duplicates().shape[0] > 1

    def described(row):
        where = f" ({row.device}, {row.dtype})" if several else ""
        final = f" (final {fmt.percent(row.test_accuracy)})" if value(row.test_accuracy) is not None else ""
        return f"{row.implementation}{where} {fmt.seconds(row.time_to_target_s)}{final}"

    # One target is shared by every implementation of a run (DigitsProblem.target_accuracy).
    targets = ", ".join(fmt.percent(t) for t in sorted(ok["target_accuracy"].dropna().unique())) or "the target"
    return (f"Digits, time to reach {targets} test accuracy (epoch time only): "
            + "; ".join(described(row) for row in ok.itertuples()) + ".")


def accuracy_cell(entry):
    accuracy_value = entry.get("test_accuracy")
    return f"{accuracy_value * 100:.1f} %" if accuracy_value is not None else "n/a"


class Digits(Workload):
    name = "digits"
    order = 10
    title = "Digits: a real classifier"
    first_time = "first_epoch_s"  # the first epoch, compilation included
    size_in_title = False
    summary_columns = (("accuracy", accuracy_cell),)

    def registry(self):
        return digits

    def preload(self):
        return ("sklearn.datasets", "sklearn.model_selection")

    def missing(self):
        absent = missing_libraries()
        return f"n/a: {', '.join(absent)} not installed ({EXTRA})" if absent else None

    def check(self, config):
        """Read the user's data once now, so a bad file stops the run before it starts."""
        if config.data and not missing_libraries():
            load_data(DigitsProblem(), config.data)  # DataError (a ValueError) names the file

    def tasks(self, config, spec, device):
        return [{"workload": self.name, "device": device, "dtype": dtype, "size": size_for(config.data or None),
                 "epochs": 1 if config.quick else config.epochs, "data": config.data or None, "quick": config.quick}
                for dtype in config.dtypes]

    def measure(self, spec, task, entry, threads):
        entry["size"] = size_for(task.get("data"))  # kept if training raises
        result = measure_digits(
            spec.name, device=task["device"], dtype=task["dtype"], threads=entry["threads"],
            epochs=task.get("epochs"), data=task.get("data"), quick=task.get("quick", False),
        )
        extra = result.pop("extra", {})
        entry.update(result)
        entry["extra"].update(extra)

    def judge(self, entry, task, references):
        """The entry carries its own agreement (measured in the worker); record the reference once."""
        if entry["losses"]:
            key = (self.name, task["epochs"], task["data"], task["quick"])
            references.once(key, lambda: (None, reference_record(task["epochs"], task["data"], task["quick"])))

    def section(self, collection, lines_of_code, palette):
        from sidebyside.report.sections import Section

        if collection.frame.empty:
            return None
        return Section(self.name, self.title, charts=digits_charts(collection, palette),
                       tables=[digits_table(collection, lines_of_code)])

    def findings(self, frame):
        sentence = time_to_target_sentence(frame)
        return [sentence] if sentence else []


WORKLOAD = Digits()
