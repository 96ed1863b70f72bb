"""The digits classifier: accuracy, epoch times and agreement of a real training run.

A workload of the harness (`WORKLOAD`, at the end): one task per device and
dtype on the run's data, trained in full in round 1, timed again in later
rounds (`time_round`), judged in the worker against its own float64
reference, and shown in a section of its own in the report (accuracy
against time, each epoch's time, the table, the code).

`measure_digits` trains one registered implementation for the problem's
epochs on the shared data, weights and batch order, and returns a complete
results entry (workload "digits"). The protocol (`train`), the
two-layer net's adapted to epochs:

1. Before the first case of a process, `Digits.warm_up` trains a tiny net
   on a few random images: the framework's one-time start (libraries loaded
   on first use, thread pools, allocators) is paid there, recorded as
   `extra.process_warm_up_s`, and what it compiled is forgotten.
2. The images, the labels and every epoch's batch indices are converted to
   the framework's tensors on its device (`net.prepare`,
   `net.prepare_batches`) before any clock starts, for every implementation
   alike; the time that takes is recorded apart, as `extra.conversion_s`.
3. The start: the first step, timed alone (`first_step_s`), pays the net's
   tracing, compilation and first allocations.
4. Each epoch is then timed alone, from the call of `fit_epoch` until its
   losses are on the host, which waits for any device; the first epoch's
   time is that of its steps after the first. `first_epoch_s` is the first
   epoch as it ran, the start included.
5. After each epoch, outside the clock, the test accuracy is measured.
6. `time_to_target_s` adds up the epoch times until the first epoch whose
   test accuracy reached the problem's `target_accuracy`, one target shared
   by every implementation (null if no epoch reached it): the start and the
   evaluations are not counted.
7. The timed unit is the epoch, read as its mean step: the step statistics
   are each epoch's time over its steps, for the epochs after the first (the
   only epoch, after its first step, in a quick run), and `cpu_utilization`
   is the CPU time of the process over the wall time of those epochs.
   Later rounds (`time_round`) train a fresh net the same way, without the
   evaluations, and keep the same epochs' mean steps until the round's
   budget is spent (one epoch at least): each round one vote of one figure.
8. The per-step losses are compared with the float64 reference of
   implementations/digits/reference.py, written apart from every
   implementation (numpy_manual is judged against it like the others), and
   that module also gives the tolerance.

It raises FrameworkMissing, FrameworkBroken, DeviceUnavailable and
DtypeUnsupported for the runner to record as "n/a" or "failed". It sets no
thread counts: the worker does that before any framework is imported.
"""

import math
import time
from dataclasses import dataclass

import numpy as np

from sidebyside.fairness import default_threads
from sidebyside.frameworks import compute_framework, forget_compiled
from sidebyside.inputs import check_prepared
from sidebyside.results import gflops, is_unstable, new_entry
from sidebyside.timing import case_memory, summarize
from sidebyside.config import Option, RunConfig, positive_int
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

# The process warm-up's net: a few random images of a few pixels, two hidden units, batches of four.
WARM_UP = DigitsProblem(hidden=2, batch_size=4, epochs=1)
WARM_UP_IMAGES, WARM_UP_PIXELS = 12, 8


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


def sampled(order):
    """The epochs (indices) whose mean step makes the step statistics: those after the first, or the only one."""
    return range(1, len(order)) if len(order) > 1 else range(1)


def train(net, x, y, order, evaluate=None, budget_s=None):
    """The start, then every epoch timed alone: (start_s, epochs), the protocol of every round.

    The start is the first step, timed alone. Each of `epochs` is (losses,
    seconds, steps, cpu_s) of one epoch, seconds and cpu_s over its steps
    after the start (the first epoch's steps after its first). CPU time is
    the process's (time.process_time, every thread): a digits net starts no
    process of its own. `evaluate()` runs after each epoch, outside the
    clocks. With `budget_s`, training stops after the sampled epoch that
    brings the sampled epochs' time to the budget.
    """
    begin = time.perf_counter()
    first = np.asarray(net.fit_epoch(x, y, order[0][:1]), dtype=np.float64)
    start_s = time.perf_counter() - begin
    epochs, spent = [], 0.0
    for index, batches in enumerate(order):
        steps = batches[1:] if index == 0 else batches
        cpu, begin = time.process_time(), time.perf_counter()
        losses = np.asarray(net.fit_epoch(x, y, steps), dtype=np.float64) if len(steps) else np.empty(0)
        seconds = time.perf_counter() - begin
        cpu = time.process_time() - cpu
        epochs.append((np.concatenate([first, losses]) if index == 0 else losses, seconds, len(steps), cpu))
        if evaluate is not None:
            evaluate()
        if index in sampled(order):
            spent += seconds
            if budget_s is not None and spent >= budget_s:
                break
    return start_s, epochs


def timed_epochs(epochs, order):
    """Of `train`'s epochs, the sampled ones that timed a step: the step statistics and cpu_utilization's."""
    return [epochs[index] for index in sampled(order) if index < len(epochs) and epochs[index][2]]


def mean_steps(timed):
    """Each timed epoch's mean step: the samples of a round."""
    return [seconds / steps for _, seconds, steps, _ in timed]


def utilization(timed):
    """CPU seconds over wall seconds of the timed epochs: the cores they kept busy; None without any."""
    wall = sum(seconds for _, seconds, _, _ in timed)
    return sum(cpu for *_, cpu in timed) / wall if wall > 0 else None


@dataclass
class Case:
    """A fresh net and everything its epochs read, converted for it before any clock starts."""

    net: object
    problem: DigitsProblem
    spec: object  # the registry entry
    dataset: object  # data.Digits, as numpy arrays
    x_train: object  # the images, labels and test images as net.prepare made them
    y_train: object
    x_test: object
    order: list  # every epoch's batches, as net.prepare_batches made them
    conversion_s: float  # the time net.prepare and prepare_batches took
    memory: object  # timing.case_memory: what the case adds, counted from before the net was made


def prepared(implementation, device, dtype, epochs, data, quick):
    """The Case of one task: a fresh net and its data converted; no clock has run."""
    spec = digits.spec(implementation)  # ValueError for an unknown name
    problem = problem_for(dtype, epochs, quick)
    dataset = load_data(problem, data)  # DataError (a ValueError) names a bad file
    digits.load(implementation)  # FrameworkMissing / FrameworkBroken, before anything is measured
    params = initial_weights(problem, dataset.D_in)
    order = batch_order(problem, len(dataset.y_train))
    memory = case_memory(compute_framework(spec), device)  # what this case adds: counted from here
    # With the registry entry's options; DeviceUnavailable / DtypeUnsupported.
    net = digits.create(implementation, params, problem, device=device)
    # Everything the epochs read, converted for the framework before any clock starts.
    conversion_start = time.perf_counter()
    x_train, y_train = net.prepare(dataset.x_train, dataset.y_train)
    x_test = net.prepare(dataset.x_test)
    # Conversion and nothing more: any re-layout belongs in the timed epochs.
    check_prepared((dataset.x_train, dataset.y_train, dataset.x_test), (x_train, y_train, x_test),
                   names=("x_train", "y_train", "x_test"))
    order = [net.prepare_batches(batches) for batches in order]
    conversion_s = time.perf_counter() - conversion_start
    return Case(net, problem, spec, dataset, x_train, y_train, x_test, order, conversion_s, memory)


def measure_digits(implementation, device="cpu", dtype="float32", threads=None, epochs=None, data=None, quick=False):
    """Train `implementation` on the digits and return its results entry."""
    case = prepared(implementation, device, dtype, epochs, data, quick)
    net, problem, spec, dataset, order = case.net, case.problem, case.spec, case.dataset, case.order
    accuracies = []
    start_s, epochs_run = train(net, case.x_train, case.y_train, order,
                                evaluate=lambda: accuracies.append(accuracy(net.predict(case.x_test), dataset.y_test)))

    records = []
    for number, ((epoch_losses, seconds, _, _), test_accuracy, batches) in enumerate(
            zip(epochs_run, accuracies, order), start=1):
        finite = bool(np.all(np.isfinite(epoch_losses)))
        records.append({
            "epoch": number,
            "train_loss": train_loss(epoch_losses, batches) if finite else None,
            "test_accuracy": test_accuracy,
            "time_s": seconds,
        })

    losses = np.concatenate([epoch_losses for epoch_losses, *_ in epochs_run])
    steps = [len(batches) for batches in order]
    timed = timed_epochs(epochs_run, order)
    per_step = mean_steps(timed)
    step_time = summarize(per_step)
    final_accuracy = records[-1]["test_accuracy"]
    to_target = time_to_target(records, problem.target_accuracy)

    non_finite = np.flatnonzero(~np.isfinite(losses))
    diverged_at = int(non_finite[0]) if len(non_finite) else None
    agreement = relative_difference(losses, reference_losses(problem, data))
    tolerance = agreement_tolerance(implementation, problem, data)
    form = adam_form(implementation, dtype)

    peak_memory = case.memory.growth()

    extra = {
        "memory": case.memory.method,
        "data": dataset.source,
        "n_train": int(len(dataset.y_train)),
        "n_test": int(len(dataset.y_test)),
        "steps_per_epoch": int(steps[0]),
        "conversion_s": case.conversion_s,  # net.prepare and prepare_batches, outside every epoch's clock
        "adam": form,
        "step_time_from": "epochs after the first" if len(records) > 1 else "the only epoch, after its first step",
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
        "samples": per_step,  # each sampled epoch's mean step: the runner keeps them as step_time.samples
        "unstable": is_unstable(step_time),
        "cpu_utilization": utilization(timed),
        "first_step_s": start_s,
        "loop_time_s": float(sum(seconds for _, seconds, _, _ in timed)),
        "loop_steps": int(sum(count for _, _, count, _ in timed)) or None,
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
        "first_epoch_s": start_s + records[0]["time_s"],  # the first epoch as it ran, its start included
    })


def accuracy_cell(entry):
    accuracy_value = entry.get("test_accuracy")
    return f"{accuracy_value * 100:.1f} %" if accuracy_value is not None else "n/a"


class Digits(Workload):
    name = "digits"
    order = 10
    title = "Digits: a real classifier"
    timed_rounds = True  # an epoch's mean step, one vote per round as the two-layer net's steps
    first_time = "first_epoch_s"  # the first epoch, compilation included
    size_in_title = False
    summary_columns = (("accuracy", accuracy_cell),)
    options = (
        Option("--epochs", "epochs", f"training epochs of the digits classifier (default {DigitsProblem.epochs})", type=positive_int),
        Option("--data", "data", "the digits classifier's data set: MNIST IDX, CSV or PNG folder "
               "(default: its bundled data)", metavar="PATH"),
    )

    def registry(self):
        return digits

    def preload(self):
        return ("sklearn.datasets", "sklearn.model_selection")

    def missing(self):
        absent = missing_libraries()
        return f"n/a: {', '.join(absent)} not installed ({EXTRA})" if absent else None

    def check(self, config):
        """Read the user's data once now, so a bad file stops the run before it starts."""
        if config.option("data") and not missing_libraries():
            load_data(DigitsProblem(), config.option("data"))  # DataError (a ValueError) names the file

    def settled(self, config):
        return {"epochs": config.option("epochs", DigitsProblem.epochs), "data": config.option("data", "")}

    def tasks(self, config, spec, device):
        data = config.option("data") or None
        return [{"workload": self.name, "device": device, "dtype": dtype, "size": size_for(data),
                 "epochs": 1 if config.quick else config.option("epochs", DigitsProblem.epochs), "data": data, "quick": config.quick,
                 "round_budget_s": config.round_budget_s}
                for dtype in config.dtypes]

    def warm_up(self, spec, task, threads):
        """A tiny training before the first case: the framework's one-time start, as the two-layer net's.

        A net of WARM_UP's sizes trains one epoch on a few random images and
        predicts once, in the task's device and dtype, so what a framework
        loads and starts on first use is not charged to the first case's
        start, first epoch or memory; what it compiled is then forgotten
        (`forget_compiled`). Seconds, or None where it failed (the case
        itself will then fail and say why).
        """
        begin = time.perf_counter()
        problem = WARM_UP.with_(dtype=task["dtype"])
        x = np.random.default_rng(problem.seed).random((WARM_UP_IMAGES, WARM_UP_PIXELS))
        y = np.arange(WARM_UP_IMAGES) % 10
        try:
            net = digits.create(spec.name, initial_weights(problem, WARM_UP_PIXELS), problem, device=task["device"])
            x, y = net.prepare(x, y)
            train(net, x, y, [net.prepare_batches(batches) for batches in batch_order(problem, WARM_UP_IMAGES)])
            net.predict(x)
        except Exception:
            return None
        finally:
            forget_compiled(compute_framework(spec))
        return time.perf_counter() - begin

    def measure(self, spec, task, entry, threads):
        entry["size"] = size_for(task.get("data"))  # kept if training raises
        result = measure_digits(
            spec.name, device=task["device"], dtype=task["dtype"], threads=entry["threads"],
            epochs=task.get("epochs"), data=task.get("data"), quick=task.get("quick", False),
        )
        extra = result.pop("extra", {})
        entry.update(result)
        entry["extra"].update(extra)

    def time_round(self, spec, task, threads):
        """One later round: a fresh net trained as in round 1, its sampled epochs timed within the round's budget."""
        case = prepared(spec.name, task["device"], task["dtype"], task.get("epochs"), task.get("data"),
                        task.get("quick", False))
        start_s, epochs = train(case.net, case.x_train, case.y_train, case.order,
                                budget_s=task.get("round_budget_s", RunConfig.round_budget_s))
        timed = timed_epochs(epochs, case.order)
        return {"samples": mean_steps(timed), "cpu_utilization": utilization(timed), "first_step_s": start_s}

    def judge(self, entry, task, references):
        """The entry carries its own agreement (measured in the worker); record the reference once."""
        if entry["losses"]:
            key = (self.name, task["epochs"], task["data"], task["quick"])
            references.once(key, lambda: (None, reference_record(task["epochs"], task["data"], task["quick"])))

    def section(self, collection, lines_of_code, palette):
        from sidebyside.workloads.digits import section  # the report's libraries: never loaded in the worker

        return None if collection.frame.empty else section.section(self.name, self.title, collection, lines_of_code, palette)

    def findings(self, frame):
        from sidebyside.workloads.digits.section import time_to_target_sentence

        sentence = time_to_target_sentence(frame)
        return [sentence] if sentence else []


WORKLOAD = Digits()
