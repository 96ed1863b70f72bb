"""The two-layer ReLU net: the tutorial's problem, timed step by step.

Its tasks are the configuration's sizes in full (every dtype, the full number
of steps: the loss trajectory agreement is judged on) and the sweep's sizes
(the first dtype, a time budget; agreement judged on the first
SWEEP_AGREEMENT_STEPS steps). Its entries are the ones the report ranks: they
fill the summary, agreement and timing sections.
A case is measured in the worker (`measure`: burn-in, timed steps, the loop
view, memory), timed again in later rounds (`time_round`), and judged in the
runner against the float64 reference of sidebyside/workloads/two_layer/agreement.py.

The tools that only this problem has live beside this module: the cases
shared by the pytest-benchmark suite (cases.py) and the speed targets
(targets.py, baselines.py). Its data-parallel implementations (torch_ddp,
tf_multiworker, jax_distributed) run as jobs, a plug-in kind of their own
(sidebyside/jobs/).
"""

import math
import statistics

import numpy as np
import psutil

from sidebyside import implementations, timing
from sidebyside.frameworks import adapter, compute_framework, computes
from sidebyside.implementations import one_line
from sidebyside.implementations.two_layer.problem import Problem, make_data
from sidebyside.workloads import Workload
from sidebyside.workloads.two_layer import agreement, cases
from sidebyside.workloads.two_layer import tasks as planning
from sidebyside.workloads.two_layer.tasks import (NAME, SIZE_KEYS, finite_or_none, loop_steps, problem_bytes,  # noqa: F401
                                                 size_dict, task)

SWEEP_AGREEMENT_STEPS = 20  # a sweep size's check: its first losses against the reference's (all, if fewer)
PROFILE_STEPS = 20  # --profile's steps: a middle half of ten steps to average (frameworks/_profile.py)
PROFILE_BUDGET_S = 1.0  # fewer steps where steps are long, but never fewer than PROFILE_MIN_STEPS
PROFILE_MIN_STEPS = 4
TURNS = 5  # a later round's blocks per case, timed in turns with the other cases (`time_rounds`)


def overrides_for(spec, task, threads):
    """Harness parameters an implementation takes: torch_ddp's ranks and their threads."""
    if "ranks" not in spec.options:
        return {}
    ranks = task.get("ranks") or spec.options["ranks"]
    return {"ranks": ranks, "threads_per_rank": max(threads // ranks, 1)}


def build(spec, task, threads):
    """(net, x, y, problem) for one task, as the registry defines the variant."""
    return cases.build(
        spec.name, task["device"], task["dtype"], task["size"], task["learning_rate"], task["steps"], task["seed"],
        **overrides_for(spec, task, threads),
    )


def profiled(framework, step, device, durations):
    """--profile: the op breakdown of steady steps under `framework`'s profiler; None where it has none (numpy).

    Run after the timed steps, so the steps it describes are as warm as
    theirs, and recorded beside their median (`unprofiled_s`): the profiled
    step's wall time against it is the profiler's overhead. A profiler that
    fails leaves one line saying why; the entry stands.
    """
    if not computes(framework) or not hasattr(adapter(framework), "profile"):
        return None
    unprofiled = statistics.median(durations) if durations else None
    steps = PROFILE_STEPS
    if unprofiled:
        steps = max(PROFILE_MIN_STEPS, min(steps, int(PROFILE_BUDGET_S / unprofiled)))
    try:
        parts = adapter(framework).profile(step, steps, device)
    except Exception as error:  # a profiler's failure is no failure of the implementation
        return {"error": one_line(error)}
    rest = parts["wall_s"] - parts["matmul_s"] - parts["other_kernels_s"]
    return {**parts, "rest_s": rest, "unprofiled_s": unprofiled}


class TwoLayer(Workload):
    name = NAME
    title = "Two-layer net"
    main = True
    order = 0
    timed_rounds = True
    code_pair = ("numpy_manual", "torch_manual")  # the tutorial's own first comparison
    options = planning.OPTIONS

    def registry(self):
        return implementations

    def names(self):
        return self.registry().names(self.name)

    def preload(self):
        return ("sidebyside.workloads.two_layer.cases",)

    def check(self, config):
        """Refuse sizes whose arrays cannot fit, before anything is allocated."""
        available = psutil.virtual_memory().available
        for N, D_in, H, D_out in planning.sizes(config) + planning.sweep(config):
            for dtype in config.dtypes:
                needed = Problem(N=N, D_in=D_in, H=H, D_out=D_out, dtype=dtype).bytes_needed()
                if needed > available:
                    raise ValueError(f"size {N},{D_in},{H},{D_out} in {dtype} needs {needed:,} bytes; "
                                     f"only {available:,} are available")

    def settled(self, config):
        return planning.settled(config)

    def tasks(self, config, spec, device):
        # The cases of an implementation share its process: the largest size
        # first, so a memory reset that did nothing would show (a smaller case
        # would report at least the larger one's peak; sidebyside/timing.py).
        # Within a size the dtypes keep their order: a float64 case switches
        # JAX's 64-bit mode on for the rest of the process.
        planned = [task(config, device, dtype, size, full=True) for size in planning.sizes(config)
                   for dtype in config.dtypes]
        planned += [task(config, device, config.dtypes[0], size, full=False) for size in planning.sweep(config)]
        return sorted(planned, key=lambda case: problem_bytes(tuple(case["size"].values())), reverse=True)

    def measure(self, spec, task, entry, threads):
        """Fill `entry` with the losses and timings of one run (a launcher's implementation: sidebyside/jobs/)."""
        framework = compute_framework(spec)
        memory = timing.case_memory(framework, task["device"])  # from here on, what the case adds
        net, x, y, problem = build(spec, task, threads)
        try:
            losses, entry["first_step_s"], diverged_at = timing.start(net, x, y, task["warmup"])
            durations = []
            if diverged_at is None:
                more, durations, diverged_at, entry["cpu_utilization"] = timing.timed_steps(
                    net, x, y, problem.steps - len(losses), budget_s=task.get("budget_s"),
                    min_rounds=task.get("min_steps", 20), first_index=len(losses), extra=entry["extra"],
                )
                losses += more
            entry["losses"] = [finite_or_none(float(loss)) for loss in losses]
            timing.record_steps(entry, durations, problem.flops_per_step())
            if diverged_at is not None:
                entry["status"] = "diverged"
                entry["diverged_at"] = diverged_at
                entry["reason"] = f"loss became {losses[-1]} at step {diverged_at}"
            else:
                if task.get("profile"):
                    breakdown = profiled(framework, lambda: net.step(x, y), task["device"], durations)
                    if breakdown is not None:
                        entry["extra"]["profile"] = breakdown
                entry["loop_steps"] = task["loop_steps"]
                entry["loop_time_s"], loop_losses = timing.time_loop(net, x, y, task["loop_steps"])
                if not all(math.isfinite(float(value)) for value in loop_losses):
                    entry["extra"]["loop_diverged"] = True
            entry["peak_memory_bytes"] = memory.growth()
            entry["extra"]["memory"] = memory.method
            if hasattr(net, "info"):
                entry["extra"].update(net.info())
            loop_note = getattr(net, "loop_note", None)
            if loop_note:
                entry["extra"]["loop_note"] = loop_note
        finally:
            if hasattr(net, "close"):
                net.close()

    def warm_up(self, spec, task, threads):
        """A few steps at a tiny size before the first case: the framework's one-time start.

        Frameworks load parts of themselves on first use (torch's optimizers
        pull in torch._dynamo, about 80 MB, on their first step; a compiler
        initializes itself on its first compile; allocators and thread pools
        start). Paid here, that start is not charged to the first case's memory
        or first step. What the warm-up compiled is then forgotten
        (`forget_compiled`), so no case inherits its graphs. Returns the seconds
        it took, or None where it was skipped (torch_ddp: its ranks are fresh
        processes for every net) or failed (the case itself will then fail and
        say why).
        """
        return cases.warm_up(spec, task, threads)

    def time_round(self, spec, task, threads):
        """One timing round: a fresh net, burn-in, then steps within a budget."""
        net, x, y, problem = build(spec, task, threads)
        try:
            losses, first_step_s, diverged_at = timing.start(net, x, y, task["warmup"])
            if diverged_at is not None:
                return {"samples": [], "cpu_utilization": None, "first_step_s": first_step_s}
            _, durations, _, utilization = timing.timed_steps(
                net, x, y, problem.steps - len(losses), budget_s=task["round_budget_s"],
                min_rounds=task.get("min_steps", 20), first_index=len(losses),
            )
            return {"samples": durations, "cpu_utilization": utilization, "first_step_s": first_step_s}
        finally:
            if hasattr(net, "close"):
                net.close()

    def time_rounds(self, spec, tasks, threads, ready):
        """A later round times its cases in turns: TURNS short blocks each, largest first, then back.

        The fit of step time against size (sidebyside/report/overhead.py)
        compares an implementation's sizes with one another. Timed one after
        another, each size met another few seconds of a machine whose speed
        drifts from one second to the next, and the curve's shape was partly
        the machine's; timed in turns within one process, every size meets the
        same seconds. A block after the first starts with one untimed step
        (the other nets have taken the caches). Where the nets might not fit
        in memory together, or a net starts processes of its own (ranks), each
        case runs alone (`time_round`).
        """
        needed = sum(problem_bytes(tuple(task["size"].values())) for task in tasks)
        if len(tasks) < 2 or "ranks" in spec.options or needed > psutil.virtual_memory().available / 2:
            yield from super().time_rounds(spec, tasks, threads, ready)
            return
        records, cases_in_turn = [None] * len(tasks), []
        try:
            for index, task in enumerate(tasks):
                try:
                    ready(task)
                    net, x, y, problem = build(spec, task, threads)
                    case = {"index": index, "task": task, "net": net, "x": x, "y": y, "left": 0, "samples": [],
                            "busy": []}
                    cases_in_turn.append(case)
                    losses, first_step_s, diverged_at = timing.start(net, x, y, task["warmup"])
                    case["left"] = 0 if diverged_at is not None else problem.steps - len(losses)
                    records[index] = {"samples": [], "cpu_utilization": None, "first_step_s": first_step_s}
                except KeyboardInterrupt:
                    raise
                except Exception as error:
                    records[index] = {"samples": [], "reason": one_line(error)}
            for turn in range(TURNS):
                for case in cases_in_turn if turn % 2 == 0 else cases_in_turn[::-1]:
                    if case["left"] < 2 * (TURNS - turn) or "reason" in records[case["index"]]:
                        continue
                    task, net, x, y = case["task"], case["net"], case["x"], case["y"]
                    try:
                        if turn:
                            net.step(x, y)
                            case["left"] -= 1
                        _, durations, diverged_at, utilization = timing.timed_steps(  # the steps left shared out
                            net, x, y, case["left"] // (TURNS - turn), budget_s=task["round_budget_s"] / TURNS,
                            min_rounds=math.ceil(task.get("min_steps", 20) / TURNS),
                        )
                    except KeyboardInterrupt:
                        raise
                    except Exception as error:
                        records[case["index"]] = {"samples": [], "reason": one_line(error)}
                        continue
                    case["left"] = 0 if diverged_at is not None else case["left"] - len(durations)
                    case["samples"] += durations
                    case["busy"].append((utilization, sum(durations)))
            for case in cases_in_turn:
                record = records[case["index"]]
                if "reason" not in record and case["samples"]:
                    weighed = [(share, seconds) for share, seconds in case["busy"] if share is not None]
                    spent = sum(seconds for _, seconds in weighed)
                    record.update(samples=case["samples"], cpu_utilization=(
                        sum(share * seconds for share, seconds in weighed) / spent if spent else None))
        finally:
            for case in cases_in_turn:
                if hasattr(case["net"], "close"):
                    case["net"].close()
        yield from records

    def judge(self, entry, task, references):
        """Compare a run's losses with the float64 reference of its task: same size, learning rate, seed, data.

        A full-size run is judged on every step. A sweep size (timed within a
        budget) is judged on its first SWEEP_AGREEMENT_STEPS losses, or all of
        them where it has fewer, against the reference of that many steps;
        `extra.agreement_steps` says how many. Nothing timed goes unchecked.
        """
        if not entry["losses"]:
            return
        losses, steps = entry["losses"], task["steps"]
        if "budget_s" in task:
            steps = min(SWEEP_AGREEMENT_STEPS, steps)
            losses = losses[:steps]
            entry["extra"]["agreement_steps"] = len(losses)
        key = (self.name, tuple(task["size"].values()), task["learning_rate"], task["seed"], steps)
        (reference, y), _ = references.once(key, lambda: self.reference({**task, "steps": steps}))
        result = agreement.compare(losses, reference, entry["dtype"], y)
        entry["extra"]["agreement_ratio"] = result.pop("agreement_ratio")
        entry.update(result)

    def reference(self, task):
        """((float64 losses, y), the record results.json keeps) for one task's problem."""
        problem = Problem(**task["size"], learning_rate=task["learning_rate"], steps=task["steps"],
                          seed=task["seed"], dtype="float64")
        x, y, w1, w2 = make_data(problem)
        losses = agreement.reference_losses(x, y, w1, w2, problem.learning_rate, problem.steps)
        record = {"workload": self.name, "size": task["size"], "dtype": "float64",
                  "learning_rate": task["learning_rate"],
                  "losses": [float(v) if np.isfinite(v) else None for v in losses]}
        return (losses, y), record

    def flops(self, size):
        """FLOPs of one training step, as the problem (implementations/two_layer/problem.py) counts them."""
        if not all(key in size for key in SIZE_KEYS):
            return None
        N, D_in, H, D_out = (size[key] for key in SIZE_KEYS)
        forward = 2 * N * D_in * H + 2 * N * H * D_out
        backward = 2 * (2 * N * H * D_out) + 2 * N * D_in * H
        return forward + backward

    def findings(self, frame):
        return []  # the main sections' sentences are the report's own


WORKLOAD = TwoLayer()
