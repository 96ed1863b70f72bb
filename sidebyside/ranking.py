"""Who is faster, and when two timings are a tie: the one rule of the console summary and the report.

A median step time is a measurement, not a fact: run the same case again in a
fresh process and it moves by a few percent (thread placement, frequency
scaling, what else the machine is doing). `sidebyside run` therefore times
each case in several interleaved rounds, each in a fresh process, and records
each round's median (`step_time.round_medians`); the entry's median is the
median of those. Two cases are ranked apart only when those rounds say so
(sidebyside/rounds.py `apart`, the rule `sidebyside compare` uses too):

- every round median of the faster case lies below every round median of
  the slower one (the rounds do not overlap), and
- the two medians differ by more than NOISE_MARGIN, relative to the faster.

Either condition alone is too weak. With five rounds each, two draws of one
distribution fall apart by pure chance about one time in 126 (2 of the 252
ways to interleave 5 + 5 values), with three one time in ten; and a tiny but
steady gap would be "separated" by the rounds yet be nothing anyone can rely
on on another day. Round medians are compared as they are, not over their
canaries: the canary is timed in a process of its own, and within one run the
rounds of the cases compared ran side by side.

Entries without round medians (read from pytest-benchmark JSON) fall
back to what their statistics hold: the interquartile intervals
[median - iqr/2, median + iqr/2] must not overlap, and the same margin
applies. An entry without an IQR counts as a point.

`rank` orders a group of entries fastest first into competition ranks (1, 1,
3, ...): an entry not separated from the first entry of the current rank
shares its rank, and `tied` marks ranks held by more than one entry, which
the console and the report call TIE instead of naming one of them fastest.

Only `rankable` entries are ranked: a run that finished, whose losses agree
with the float64 reference, with a step time. A fast wrong answer is not a
winner, so "disagrees" entries are shown with their reason but never ranked;
so are "unchecked" entries (read from pytest-benchmark JSON), whose losses
were never compared.

Entries are plain mappings: a result entry with a `step_time` mapping, or a
step-time mapping itself ({"median", "iqr", "round_medians"}).
"""

import math
from dataclasses import dataclass

from sidebyside import rounds
from sidebyside.fairness import off_request

# Two medians closer than this, relative to the faster, are a tie whatever the
# rounds say (sidebyside/rounds.py): 3 % keeps process-to-process noise from
# naming a winner while a real 5 % gap shows.
NOISE_MARGIN = rounds.NOISE_MARGIN
MIN_ROUNDS = rounds.MIN_ROUNDS  # fewer round medians than this on either side: use the fallback rule
TIE = "tie (within noise)"
RANKED_STATUS = "ok"


@dataclass(frozen=True)
class Ranked:
    """One entry's place in its group: rank 1 is the fastest; `tied` when the rank is shared."""

    entry: object
    rank: int
    tied: bool


def timing(entry):
    """The step-time mapping of an entry (or the mapping itself, when given one); None if there is none."""
    if not isinstance(entry, dict):
        return None
    if "step_time" in entry:
        return entry["step_time"] if isinstance(entry["step_time"], dict) else None
    return entry


def number(x):
    """A finite float, else None (missing values arrive as None or NaN)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def median(entry):
    """The entry's median step time in seconds, or None."""
    step = timing(entry)
    value = number(step.get("median")) if step else None
    return value if value is not None and value > 0 else None


def round_medians(entry):
    """The per-round medians when there are at least MIN_ROUNDS usable ones, else None."""
    step = timing(entry)
    rounds = step.get("round_medians") if step else None
    if not isinstance(rounds, (list, tuple)):
        return None
    values = [number(x) for x in rounds]
    values = [x for x in values if x is not None and x > 0]
    return values if len(values) >= MIN_ROUNDS else None


def interval(entry):
    """[median - iqr/2, median + iqr/2], the spread the fallback rule compares; a point without an IQR."""
    middle = median(entry)
    step = timing(entry)
    iqr = number(step.get("iqr")) if step else None
    half = iqr / 2 if iqr is not None and iqr > 0 else 0.0
    return middle - half, middle + half


def rankable(entry):
    """Whether an entry takes part in ranking: status ok, not disagreeing with the reference, timed."""
    if not isinstance(entry, dict) or entry.get("status") != RANKED_STATUS:
        return False
    if entry.get("agrees") is False:
        return False
    extra = entry.get("extra")
    if isinstance(extra, dict) and extra.get("disagrees") is True:
        return False
    return median(entry) is not None


def separated(a, b):
    """True only where the measurements tell a and b apart (see the module docstring).

    Symmetric; False when either has no median.
    """
    first, second = median(a), median(b)
    if first is None or second is None:
        return False
    if first > second:
        a, b, first, second = b, a, second, first
    if second <= first * (1 + NOISE_MARGIN):
        return False
    faster, slower = round_medians(a), round_medians(b)
    if faster is not None and slower is not None:
        return rounds.apart(faster, slower)
    return interval(a)[1] < interval(b)[0]


def rank(entries):
    """[Ranked], fastest first, in competition ranks (1, 1, 3, ...).

    Each entry is compared with the first entry of the current rank: if the
    two are not separated it shares that rank, else it opens a new rank at
    its position. Entries without a median are left out (filter with
    `rankable` first to leave out disagreeing ones too).
    """
    timed = sorted((entry for entry in entries if median(entry) is not None), key=median)
    places = []
    leader, current = None, 0
    for position, entry in enumerate(timed, 1):
        if leader is None or separated(leader, entry):
            leader, current = entry, position
        places.append([entry, current])
    counts = {}
    for _, place in places:
        counts[place] = counts.get(place, 0) + 1
    return [Ranked(entry, place, counts[place] > 1) for entry, place in places]


def fastest(entries):
    """The rankable entries that share rank 1: one entry, several (a tie), or none."""
    return [item.entry for item in rank([entry for entry in entries if rankable(entry)]) if item.rank == 1]


# ----------------------------------------------------------------------------
# Is the comparison fair? Checks shown beside the ranks, by the console and the report alike
# ----------------------------------------------------------------------------

def extra_of(entry):
    extra = entry.get("extra") if isinstance(entry, dict) else None
    return extra if isinstance(extra, dict) else {}


# Fewer samples than this are no evidence: a pool that spins for a moment after
# the case's set-up (OpenBLAS's, after the data was drawn) fills a short run's few samples.
MIN_RUNNABLE_SAMPLES = 5


def oversubscribed(entry):
    """"N runnable threads on M CPUs" where more of the process's threads were runnable than CPUs in its mask
    (the median of the samples taken during the timed steps, extra.runnable_threads), else None.

    Threads beyond the CPUs wait for one in the middle of a step: the time is
    not a time at the stated thread count. CPU time cannot show it: pinned to
    M CPUs, a process never gets more than M CPU seconds a second.
    """
    sample = extra_of(entry).get("runnable_threads")
    if not isinstance(sample, dict) or (number(sample.get("samples")) or 0) < MIN_RUNNABLE_SAMPLES:
        return None
    runnable, cpus = number(sample.get("median")), number(sample.get("cpus"))
    if runnable is None or cpus is None or runnable <= cpus:
        return None
    return f"{runnable:g} runnable threads on {cpus:g} CPU{'' if cpus == 1 else 's'}"


def pools_off(entry):
    """The thread pools read back at another size than asked (extra.threads_read_back):
    ["torch_intra_op 3 (asked 2)", ...], [] where every pool matches or none was read."""
    pools, threads = extra_of(entry).get("threads_read_back"), entry.get("threads") if isinstance(entry, dict) else None
    if not isinstance(pools, dict) or not isinstance(threads, int):
        return []
    return [f"{pool} {size} (asked {want})" for pool, (size, want) in off_request(pools, threads).items()]


def idle_devices(entries):
    """Devices on which nothing ran: {device: (cases, one line saying so)}.

    On a machine without a GPU every CUDA case is "n/a"; the summary says so
    once instead of printing a table of n/a rows per workload and dtype.
    """
    by_device = {}
    for entry in entries:
        by_device.setdefault(entry["device"], []).append(entry)
    idle = {}
    for device, group in by_device.items():
        if device == "cpu" or any(entry["status"] != "n/a" for entry in group):
            continue
        reasons = sorted({entry.get("reason") or "" for entry in group})
        cases = f"{len(group)} case{'' if len(group) == 1 else 's'} not run"
        if any("no CUDA device" in reason for reason in reasons):
            line = f"{device.upper()}: no device here ({cases})"
        else:
            line = f"{device.upper()}: {cases}: {'; '.join(reasons)}"
        idle[device] = (len(group), line)
    return idle


LEFT_OUT = "not in the default run"  # the reason's start for a slow starter the default run does not run


def left_out(entries):
    """Implementations the default run left out (the slow starters): (names, one line saying so), or ((), None).

    Each has an "n/a" row per case; the summary and the report name them
    once instead, with how to add them.
    """
    by_name = {}
    for entry in entries:
        by_name.setdefault(entry["implementation"], []).append(entry)
    names = tuple(name for name, group in by_name.items()
                  if all(entry["status"] == "n/a" and (entry.get("reason") or "").startswith(LEFT_OUT)
                         for entry in group))
    if not names:
        return (), None
    return names, (f"{LEFT_OUT}: {', '.join(names)} (slow to start: seconds of compiling, dispatching op by op "
                   f"or starting ranks in every fresh process); add --all, or --impl NAME")
