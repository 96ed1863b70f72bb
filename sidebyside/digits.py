"""Measuring one digits implementation: accuracy, epoch times and agreement.

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
        "workload": "digits",
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
        "workload": "digits",
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
