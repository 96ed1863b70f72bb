"""The attainable matmul peak: how fast this machine multiplies square matrices.

Each implementation's GFLOP/s is reported as a share of this peak (a
roofline for compute-bound work), so the peak has to be a real ceiling: if a
plain `a @ b` timed a moment later beats it, every share above is inflated.
A single product timed a few times at the start of a run is not enough on a
shared machine (one burst of someone else's load and the "peak" is half the
truth), so this module:

- tries every BLAS at hand, per device and dtype (float32 and float64):
  each installed framework's product, as its adapter makes it
  (`matmul` in sidebyside/frameworks/: numpy's OpenBLAS, torch's MKL or
  cuBLAS, XLA's through `jax.jit(jnp.matmul)`); an adapter without one is
  never imported (TensorFlow's start-up alone costs seconds, and this runs
  twice per `sidebyside run`);
- at several sizes around the knee where the product turns from cache-bound
  to compute-bound (256 to 2048 on the CPU, 4096 and 8192 on a GPU), since
  the best size differs per library and machine;
- keeps the best of many repeats, and interleaves a library's cases (one
  slice of each size and dtype in turn, pass after pass, until its share of
  the time budget is spent) so that a burst of load from elsewhere hits
  every case a little rather than one case entirely;
- times the libraries one after another, never interleaved with each other,
  in two rounds (jax, numpy, torch, then torch, numpy, jax): a library's
  idle thread pool keeps spinning for a while after its last product
  (OpenBLAS's threads for 2^28 cycles, about 0.1 s), and on a machine with
  few cores a spinning pool slows whichever library runs next, so each block
  is followed by a short settling pause;
- skips a size whose single product would take longer than MAX_PRODUCT_S
  (estimated from the size below), which keeps a slow machine or a slow
  float64 GPU within the budget.

`combine` merges the measurement taken at the start of a run with the one at
its end (the higher counts, their spread is recorded). A step faster than
that peak (`beaten`) makes the runner measure once more (`remeasured`); a
step that still beats it gets no share of peak anywhere, only `UNSOUND`.
`theoretical_peak` records what the system says of cores × clock × FLOPs per
cycle, and why that is not enough for a theoretical peak.

Run as `python -m sidebyside.peak THREADS TF32(0|1) [BUDGET_S]`: prints one JSON line,
{"peak_gflops": {"cpu": {"float32": x, "float64": y}, "cuda": {...} | null},
 "peak_detail": {...}}. With `--wait` it prepares, prints {"ready": true},
and measures each time a line arrives on stdin (see `wait_and_measure`).
"""

import json
import os
import sys
import time
from pathlib import Path

from sidebyside import fairness, frameworks
from sidebyside.processes import die_with_parent
from sidebyside.results import gflops, peak_for, peak_fraction

DTYPES = ("float32", "float64")
SIZES = {"cpu": (256, 512, 1024, 2048), "cuda": (4096, 8192)}
# Seconds of timing per device, after set-up and warm-up, shared by the
# libraries and the two rounds (each block runs at least one pass).
BUDGET_S = {"cpu": 3.0, "cuda": 1.5}
ROUNDS = 2
SETTLE_DEFAULT_S = 0.02  # pause after a block, unless the adapter's SETTLE_S says its pool spins longer
SLICE_S = 0.02  # a pass repeats a fast case until about this long (small sizes get many repeats)
MAX_PRODUCT_S = 0.25  # a size whose one product would take longer is skipped
MAX_REPEATS = 200  # per case and pass


def settle_s(library):
    """Seconds to pause after a block of `library`'s products or steps, until its thread pool stops spinning."""
    return getattr(frameworks.adapter(library), "SETTLE_S", SETTLE_DEFAULT_S) if library in frameworks.NAMES \
        else SETTLE_DEFAULT_S


def describe(error):
    """An exception as one short line, for the detail record."""
    first = str(error).splitlines()[0][:200] if str(error) else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


class Case:
    """One library multiplying one size in one dtype on one device.

    `multiply` runs one product and waits for it (GPU work synchronized), so
    the wall time around it is the time of the product.
    """

    def __init__(self, library, device, dtype, size, multiply, smaller=None):
        self.library, self.device, self.dtype, self.size = library, device, dtype, size
        self.multiply = multiply
        self.smaller = smaller  # the same library and dtype one size down: predicts this one's time
        self.best = None  # seconds of the fastest product so far
        self.repeats = 0
        self.note = None  # why it was skipped or failed
        self.failed = False

    @property
    def flops(self):
        return 2 * self.size**3

    def predicted_s(self):
        """The expected time of one product: its own best, or the size below scaled up.

        The estimate from below is halved, as a larger product runs closer to
        peak; and it is re-read every pass, so a slow first sample at the size
        below (a burst of load) does not shut this size out for good.
        """
        estimates = [self.best] if self.best else []
        if self.smaller is not None and self.smaller.best:
            estimates.append(self.smaller.best * (self.size / self.smaller.size) ** 3 / 2)
        return min(estimates) if estimates else (0.0 if self.smaller is None else None)

    def sample(self):
        """Time one slice of products; keep the fastest."""
        if self.failed:
            return
        predicted = self.predicted_s()
        if predicted is None:
            self.note = self.note or f"skipped: {self.smaller.size} was not measured"
            return
        if predicted > MAX_PRODUCT_S:
            if self.best is None:
                self.note = f"skipped: one product would take about {predicted:.2f} s"
            return
        count = 1 if not self.best else max(1, min(MAX_REPEATS, round(SLICE_S / self.best)))
        try:
            for _ in range(count):
                start = time.perf_counter()
                self.multiply()
                elapsed = time.perf_counter() - start
                self.best = elapsed if self.best is None else min(self.best, elapsed)
                self.repeats += 1
            self.note = None
        except Exception as error:  # out of memory, a dtype the device lacks...
            self.note, self.failed, self.best = f"failed: {describe(error)}", True, None

    @property
    def gflops(self):
        return gflops(self.flops, self.best)

    def reset(self):
        """Forget the timings (not a failure): the same case, measured afresh."""
        self.best, self.repeats = None, 0
        if not self.failed:
            self.note = None


def build_cases(device, libraries, dtypes=DTYPES):
    """Every (library, dtype, size) case for one device, smallest size first."""
    import numpy as np  # here, not above: numpy's BLAS sizes its pool when it loads, after `prepare` sets it

    cases, errors = [], {}
    for dtype in dtypes:
        operands = {}
        if device == "cpu":
            generator = np.random.default_rng(0)
            operands = {size: tuple(generator.standard_normal((size, size)).astype(dtype) for _ in range(2)) for size in SIZES["cpu"]}
        for library in libraries:
            try:  # each framework's products, from its adapter
                products = frameworks.adapter(library).matmul(device, dtype, SIZES[device], operands) or []
                made = [Case(library, device, dtype, size, multiply) for size, multiply in products]
            except Exception as error:  # e.g. out of memory for the operands
                errors[f"{library} {dtype}"] = describe(error)
                continue
            for smaller, case in zip([None] + made, made):
                case.smaller = smaller
            # Warm-up, untimed: start the thread pool, load the kernels, create
            # the cuBLAS handle; the smallest size is enough for all of that.
            try:
                made[0].multiply()
            except Exception as error:
                made[0].note, made[0].failed = f"failed: {describe(error)}", True
            cases += made
    return cases, errors


def run_passes(cases, budget_s):
    """Interleave the cases until the budget is spent (at least one pass); returns the passes."""
    deadline = time.perf_counter() + budget_s
    passes = 0
    while passes == 0 or time.perf_counter() < deadline:
        for case in cases:
            case.sample()
        passes += 1
    return passes


def run_rounds(cases, budget_s):
    """Each library's cases as one block, libraries in turn, ROUNDS times.

    A block runs at least one pass, so a budget smaller than a round's
    passes (a --quick run's) would be overrun ROUNDS times: a round starts
    only while the budget lasts, and the first always does. Returns the
    passes per library.
    """
    libraries = list(dict.fromkeys(case.library for case in cases))
    order = [library for round_ in range(ROUNDS) for library in (libraries if round_ % 2 == 0 else libraries[::-1])]
    share = budget_s / len(order) if order else 0
    passes = dict.fromkeys(libraries, 0)
    timed_s = 0.0  # the blocks' own time; the pauses between them are not timing
    for position, library in enumerate(order):
        if position and position % len(libraries) == 0 and timed_s >= budget_s:
            break  # the budget is spent: no further round
        begin = time.perf_counter()
        passes[library] += run_passes([case for case in cases if case.library == library], share)
        timed_s += time.perf_counter() - begin
        if position + 1 < len(order) and order[position + 1] != library:
            time.sleep(settle_s(library))  # let this pool stop spinning
    return passes


def summarize(cases):
    """Best GFLOP/s per device and dtype, and the per-case detail."""
    peak, best, table = {}, {}, {}
    for case in cases:
        row = table.setdefault(case.library, {}).setdefault(case.dtype, {})
        row[str(case.size)] = {"gflops": case.gflops, "repeats": case.repeats, **({"note": case.note} if case.note else {})}
        if case.gflops and case.gflops > (peak.get(case.dtype) or 0):
            peak[case.dtype] = case.gflops
            best[case.dtype] = {"library": case.library, "size": case.size}
    return {dtype: peak.get(dtype) for dtype in DTYPES}, {"best": best, "libraries": table}


def measure_device(device, libraries, budget_s):
    return run_device(*build_device(device, libraries), budget_s)


def build_device(device, libraries):
    """The device's cases, built and warmed (untimed): (device, cases, errors, setup_s)."""
    start = time.perf_counter()
    cases, errors = build_cases(device, libraries)
    return device, cases, errors, time.perf_counter() - start


def run_device(device, cases, errors, setup_s, budget_s):
    start = time.perf_counter()
    passes = run_rounds(cases, budget_s)
    peak, detail = summarize(cases)
    detail.update(sizes=list(SIZES[device]), passes=passes, setup_s=setup_s,
                  elapsed_s=setup_s + time.perf_counter() - start)
    if errors:
        detail["errors"] = errors
    return peak, detail


def prepare(threads, tf32, budget_s=None):
    """Everything before the timing: imports, operands, warmed cases. Returns the state for `finish`."""
    began = time.perf_counter()
    fairness.set_environment(threads)  # before any framework is imported
    libraries = frameworks.peak_libraries()
    fairness.apply(libraries, threads, tf32)  # imports them: seconds, on a slow disk
    imports_s = time.perf_counter() - began
    budget = dict(BUDGET_S) if budget_s is None else {"cpu": budget_s, "cuda": budget_s}
    # Already imported by fairness.apply.
    versions = {name: getattr(sys.modules.get(name), "__version__", None) for name in libraries}
    detail = {"threads": threads, "tf32": tf32, "versions": versions, "budget_s": budget,
              "max_product_s": MAX_PRODUCT_S, "imports_s": imports_s, "theoretical": theoretical_peak(threads)}
    state = {"detail": detail, "budget": budget, "libraries": libraries, "undo": [], "devices": []}
    try:
        for name in libraries:  # what each one's products need (JAX's 64-bit mode), undone by `restore`
            state["undo"].append(frameworks.adapter(name).for_peak())
        state["devices"].append(build_device("cpu", libraries))
        gpu_libraries = [name for name in libraries if frameworks.cuda_available(name)]
        if gpu_libraries:
            state["devices"].append(build_device("cuda", gpu_libraries))
    except BaseException:
        restore(state)
        raise
    state["setup_s"] = time.perf_counter() - began
    return state


def restore(state):
    while state["undo"]:
        state["undo"].pop()()


def finish(state, keep=False):
    """Time the prepared cases. Returns {"peak_gflops": ..., "peak_detail": ...}.

    With `keep`, the state stays usable for another measurement (what the
    adapters' `for_peak` switched on stays on); otherwise the process is
    restored as it was.
    """
    began = time.perf_counter()
    detail = state["detail"]
    peak_gflops = {"cpu": None, "cuda": None}
    try:
        for device, cases, errors, setup_s in state["devices"]:
            for case in cases:
                case.reset()
            peak_gflops[device], detail[device] = run_device(device, cases, errors, setup_s, state["budget"][device])
            for library in dict.fromkeys(case.library for case in cases):
                frameworks.adapter(library).after_peak(device)  # torch hands its CUDA cache back
    finally:
        if not keep:
            restore(state)
    # Set-up and timing; a process started early (see `wait_and_measure`) idles in between.
    detail["elapsed_s"] = state["setup_s"] + time.perf_counter() - began
    return {"peak_gflops": peak_gflops, "peak_detail": detail}


def measure(threads, tf32, budget_s=None):
    """The peak per device and dtype, with the same threads and TF32 as the run.

    budget_s: seconds of timing per device (default BUDGET_S).
    Returns {"peak_gflops": {"cpu": {"float32", "float64"}, "cuda": ... | None},
    "peak_detail": {...}}; every value JSON-serializable.
    """
    return finish(prepare(threads, tf32, budget_s))


def wait_and_measure(threads, tf32, budget_s):
    """Prepare, say {"ready": true}, then measure and print the result for each line on stdin.

    The runner starts this process together with its workers, so the imports
    and the set-up overlap theirs; each measurement starts only when the
    runner asks (at the start of the run and at its end), with every other
    process of the run idle. Each one forgets the previous timings.
    """
    die_with_parent()
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever a library prints goes to the log, not into the answer
    state = prepare(threads, tf32, budget_s)
    answer.write(json.dumps({"ready": True}) + "\n")
    answer.flush()
    while sys.stdin.readline():
        answer.write(json.dumps(finish(state, keep=True)) + "\n")
        answer.flush()
    os._exit(0)  # the runner hung up


def best_cpu_case():
    """The fastest float32 CPU case (library and size) of every library here, measured in this process as it is set up."""
    cases, _ = build_cases("cpu", frameworks.peak_libraries(), dtypes=("float32",))
    run_rounds(cases, BUDGET_S["cpu"] / 2)
    return max((case for case in cases if case.gflops), key=lambda case: case.gflops)


def _per_dtype(value):
    """A device's peak ({dtype: value} or None) with every dtype."""
    return {dtype: (value or {}).get(dtype) for dtype in DTYPES}


def higher(first, second):
    """(per device and dtype the higher of two peak_gflops, their relative spread |first - second| / max)."""
    peak, spread = {}, {}
    for device in ("cpu", "cuda"):
        one, other = first.get(device), second.get(device)
        if one is None and other is None:
            peak[device] = spread[device] = None
            continue
        one, other = _per_dtype(one), _per_dtype(other)
        peak[device], spread[device] = {}, {}
        for dtype in DTYPES:
            values = [v for v in (one[dtype], other[dtype]) if v]
            peak[device][dtype] = max(values) if values else None
            spread[device][dtype] = abs(one[dtype] - other[dtype]) / max(values) if len(values) == 2 else None
    return peak, spread


def combine(start, end):
    """The peak a run records from its measurements at the start and the end.

    Per device and dtype the higher of the two counts; `peak_detail` keeps
    both, their relative spread |start - end| / max, the theoretical peak and
    the detail of the measurement with the higher float32 CPU peak.
    """
    peak, spread = higher(start["peak_gflops"], end["peak_gflops"])
    start_cpu = _per_dtype(start["peak_gflops"].get("cpu"))["float32"] or 0
    end_cpu = _per_dtype(end["peak_gflops"].get("cpu"))["float32"] or 0
    chosen, label = (end, "end") if end_cpu > start_cpu else (start, "start")
    detail = dict(chosen.get("peak_detail") or {})
    detail.update(start=start["peak_gflops"], end=end["peak_gflops"], spread=spread, detail_from=label,
                  theoretical=detail.get("theoretical") or (start.get("peak_detail") or {}).get("theoretical"))
    return {"peak_gflops": peak, "peak_detail": detail}


# --- a step faster than the measured peak ---------------------------------

UNSOUND = "faster than the measured peak: the peak is unsound here"  # shown instead of a share above 100 %


def beats(fraction):
    """Whether a share of the measured peak is above 1: no step beats a sound peak, so the peak is unsound there."""
    return fraction is not None and fraction > 1


def beaten(entries, peaks):
    """The entries faster than the measured peak of their own device and dtype in `peaks` (peak_gflops).

    Returns [{workload, implementation, device, dtype, size, gflops, peak}], JSON-serializable.
    """
    found = []
    for entry in entries:
        peak = peak_for(peaks, entry["device"], entry["dtype"])
        if beats(peak_fraction(entry.get("gflops"), peak)):
            found.append({key: entry.get(key) for key in ("workload", "implementation", "device", "dtype", "size",
                                                          "gflops")} | {"peak": peak})
    return found


def remeasured(combined, again, entries):
    """`combined` (as `combine` returns it) with `again`, a measurement taken because `entries` beat its peak.

    Per device and dtype the higher of the two counts; start, end and their
    spread stay as they were. peak_detail["remeasured"] says why it was taken
    (the entries that beat the peak), what it found, and which entries still
    beat the peak: only those are shown as `UNSOUND`.
    """
    peak, _ = higher(combined["peak_gflops"], again["peak_gflops"])
    record = {"why": "steps ran faster than the measured peak", "beaten": beaten(entries, combined["peak_gflops"]),
              "peak_gflops": again["peak_gflops"], "still_beaten": beaten(entries, peak)}
    if (again.get("peak_detail") or {}).get("error"):
        record["error"] = again["peak_detail"]["error"]
    return {"peak_gflops": peak, "peak_detail": {**(combined.get("peak_detail") or {}), "remeasured": record}}


# --- the theoretical CPU peak ---------------------------------------------

# The widest vector extension the flags name, and its float32 lanes (float64 has half).
VECTOR_ISAS = (("avx512f", 16), ("avx", 8), ("asimd", 4), ("sse2", 4))
UNKNOWN_UNITS = ("no theoretical peak: FLOPs per cycle are vector lanes × 2 (a fused multiply-add) × the FMA "
                 "units per core, and neither the CPU flags nor sysfs give that count (AVX-512 parts have one or "
                 "two FMA units with the same flags)")


def cpu_flags():
    """The first processor's flags (x86 "flags", ARM "Features") and "cpu MHz"."""
    flags, mhz = set(), None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return flags, mhz
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("flags", "Features") and not flags:
            flags = set(value.split())
        elif key == "cpu MHz" and mhz is None:
            mhz = float(value)
    return flags, mhz


def clock_mhz():
    """(MHz, where it was read): the maximum clock where exposed, else the current one."""
    try:
        return int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1000, "cpuinfo_max_freq"
    except (OSError, ValueError):
        pass
    try:
        import psutil

        frequency = psutil.cpu_freq()
        if frequency and frequency.max:
            return frequency.max, "psutil.cpu_freq().max"
    except (ImportError, NotImplementedError, RuntimeError):
        pass
    mhz = cpu_flags()[1]
    # Under a hypervisor this is the nominal clock; turbo can run above it.
    return (mhz, "/proc/cpuinfo cpu MHz (current or nominal; boost may exceed it)") if mhz else (None, None)


def physical_cores(cpus):
    """Distinct physical cores among these logical CPUs (SMT siblings share FMA units)."""
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add((topology.joinpath("physical_package_id").read_text().strip(), topology.joinpath("core_id").read_text().strip()))
        except OSError:
            return len(cpus)
    return len(cores)


def theoretical_peak(threads):
    """The CPU's theoretical peak from what the system reports, for machine.peak_detail["theoretical"].

    cores × clock × FLOPs per cycle: the flags give the vector lanes, sysfs
    the cores and sometimes the clock, but nothing gives the FMA units per
    core, so nothing is assumed: "float32" and "float64" are None, "why" says
    so, and the readable factors are kept beside it.
    """
    flags, _ = cpu_flags()
    isa = next(((name, lanes) for name, lanes in VECTOR_ISAS if name in flags), (None, None))
    mhz, source = clock_mhz()
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = list(range(os.cpu_count() or 1))
    return {"float32": None, "float64": None, "why": UNKNOWN_UNITS, "cores": min(threads, physical_cores(cpus)),
            "cpus_in_mask": len(cpus), "mhz": mhz, "clock_source": source, "isa": isa[0], "float32_lanes": isa[1]}


if __name__ == "__main__":
    arguments = [argument for argument in sys.argv[1:] if argument != "--wait"]
    try:
        threads, tf32 = int(arguments[0]), arguments[1] == "1"
        budget = float(arguments[2]) if len(arguments) > 2 else None
    except (IndexError, ValueError):
        sys.exit("usage: python -m sidebyside.peak THREADS TF32(0|1) [BUDGET_S] [--wait]")
    if "--wait" in sys.argv[1:]:
        wait_and_measure(threads, tf32, budget)
    print(json.dumps(measure(threads, tf32, budget)))
