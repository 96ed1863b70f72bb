"""What else skews a timing, checked before anything is measured, as pyperf's `system show` does.

`conditions()` records, in results.json's machine record: the load average,
the CPU other processes used over a short sample (and the busiest of them),
the CPU frequency and its governor, whether turbo is on, whether this
process is pinned to fewer CPUs than the machine has, and the memory
available. `warnings(conditions)` turns that into one line each; the console
prints them with the report's line for a peak that moved between the start
and the end of the run (sidebyside/report/findings.py), and the report shows them at
its top.
The lines are derived from the numbers, so a file from another machine
reads the same wherever it is reported. `StealShare` measures, around any
block of timing, the share of CPU time the hypervisor gave to others.
"""

import os
import time
from pathlib import Path

import psutil

BUSY_CORES = 0.5  # other processes using more cores than this, on average over the sample: the machine is busy
LOW_MEMORY_BYTES = 2 * 2**30  # less available than this: swapping or the page cache may show in timings
SAMPLE_S = 0.5
SHOWN_PROCESSES = 3


def read(path):
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def turbo():
    """True/False where the kernel says (intel_pstate or cpufreq boost), else None."""
    no_turbo = read("/sys/devices/system/cpu/intel_pstate/no_turbo")
    if no_turbo in ("0", "1"):
        return no_turbo == "0"
    boost = read("/sys/devices/system/cpu/cpufreq/boost")
    return boost == "1" if boost in ("0", "1") else None


def other_processes(sample_s=SAMPLE_S):
    """(cores used by every process not of this run over `sample_s`, the busiest [(pid, name, cores)])."""
    mine = {os.getpid(), *(child.pid for child in psutil.Process().children(recursive=True))}
    processes = [process for process in psutil.process_iter(["name"]) if process.pid not in mine]
    for process in processes:
        try:
            process.cpu_percent(None)  # the first call starts the process's sample
        except psutil.Error:
            pass
    time.sleep(sample_s)
    used = []
    for process in processes:
        try:
            cores = process.cpu_percent(None) / 100
        except psutil.Error:
            continue
        if cores > 0.01:
            used.append({"pid": process.pid, "name": process.info.get("name") or "?", "cores": round(cores, 2)})
    used.sort(key=lambda item: -item["cores"])
    return round(sum(item["cores"] for item in used), 2), used[:SHOWN_PROCESSES]


def conditions(sample_s=SAMPLE_S):
    """The machine's state before the run measures: the `conditions` of results.json's machine record."""
    cores, busiest = other_processes(sample_s)
    frequency = psutil.cpu_freq()
    return {
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "other_cpu_cores": cores,
        "busy_processes": busiest,
        "cpu_mhz": round(frequency.current, 1) if frequency and frequency.current else None,
        "governor": read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "turbo": turbo(),
        "cpus_in_mask": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_count": os.cpu_count(),
        "available_memory_bytes": psutil.virtual_memory().available,
    }


def warnings(conditions):
    """One line per thing in `conditions` that skews this run's timings."""
    conditions = conditions or {}
    lines = []
    cores = conditions.get("other_cpu_cores")
    if cores is not None and cores > BUSY_CORES:
        busiest = ", ".join(f"{item['name']} {item['cores']:.2f}" for item in conditions.get("busy_processes") or [])
        lines.append(f"Busy machine: other processes kept {cores:.2f} cores busy as the run started"
                     + (f" ({busiest})" if busiest else "") + "; timings may be slower and noisier than this "
                     "machine can do.")
    governor = conditions.get("governor")
    if governor and governor != "performance":
        lines.append(f"The CPU frequency governor is {governor!r}, not 'performance': the clock may change "
                     "while timing.")
    memory = conditions.get("available_memory_bytes")
    if memory is not None and memory < LOW_MEMORY_BYTES:
        lines.append(f"Low memory: {memory / 2**30:.1f} GiB available as the run started.")
    return lines


class StealShare:
    """The share of this machine's CPU time its hypervisor gave to others (steal) while the block is open.

    Reported next to a timing, it tells time taken from this virtual machine
    apart from a slow moment of the machine it shares. None where the system
    does not count steal (not Linux).
    """

    def __init__(self):
        self.share = None

    def __enter__(self):
        self.start = time.perf_counter(), getattr(psutil.cpu_times(), "steal", None)
        return self

    def __exit__(self, *exc):
        stolen = getattr(psutil.cpu_times(), "steal", None)
        elapsed = time.perf_counter() - self.start[0]
        if stolen is not None and self.start[1] is not None and elapsed > 0:
            self.share = (stolen - self.start[1]) / (elapsed * (psutil.cpu_count() or 1))
        return False
