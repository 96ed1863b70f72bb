"""What the numbers say, in sentences derived from the data.

Nothing here is written in advance: each sentence is produced only when
the files hold the data behind it (a speed ratio, a first-step cost far
above a steady step, a BLAS library, a GPU crossover), and quotes the
measured values.

Who is fastest follows sidebyside.ranking, the rule the console uses too:
runs the timing rounds cannot tell apart are called a tie (within noise),
and a run whose losses disagree with the float64 reference is never named
in a recommendation (only counted, with a pointer to its row).

Each framework's speed-written variant gets one sentence against its
idiomatic sibling (the registry's `tuned_from`): the two step times, their
ratio (or, where the rounds do not separate the two, the tie), the tuned
one's distance from the compute limit, and what it changes (the registry's
`tuning`).

`measurement_warnings` gives the lines that say a measurement itself is suspect: a run
with more threads runnable than CPUs to run them, thread pools read back at
another size than asked, a step faster than the measured
peak (no share above 100 % is ever given: the peak is unsound there), a
peak that moved by more than 10 % between the start and the end of the run,
a measured peak above the theoretical one.
"""

from collections import Counter

import pandas as pd

from sidebyside import noise, ranking, rounds, workloads
from sidebyside.peak import UNSOUND
from sidebyside.report import formatting as fmt
from sidebyside.report.chartdata import primary_size
from sidebyside.report.merge import value
from sidebyside.report.sections.overhead import reach_text
from sidebyside.report.sections.environment import (PEAK_SPREAD_WARNING, blas_owner, blas_text, over_theoretical,
                                                    peak_devices, peak_drift)
from sidebyside.report.tables import (DEVICE_ORDER, Table, comparable_median, hardware, limit_ratio, ordered,
                                      over_peak, ranking_entry, registry, rows_separated, speedup, tuned_pairs,
                                      tuned_rows, tuned_step_cell, versus)

SLOW_FIRST_STEP = 20.0  # a first step this many times a steady one is worth explaining
LOOP_GAIN = 0.8  # a synced-once loop at most this share of the per-step time is worth saying
LOOP_ANOMALY = 2.0  # a loop this many times slower per step than the timed steps is suspect


def primary_groups(frame):
    """The comparison groups shown in sentences: at chartdata.primary_size, the size the charts show."""
    groups = []
    for (machine, workload), part in frame.groupby(["machine", "workload"], sort=False):
        size = primary_size(part)
        if size is None:
            continue
        chosen = part[part["size_label"] == size]
        for (device, dtype), group in chosen.groupby(["device", "dtype"], sort=False):
            groups.append((machine, workload, device, dtype, size, group))
    return sorted(groups, key=lambda g: (g[1], DEVICE_ORDER.get(g[2], 2), g[2], g[3]))


def behind(ranked, names):
    """[(name, ratio to the fastest, separated from the fastest)] for the entries after rank 1.

    A later rank is not always separated from the fastest entry itself (each
    rank is judged against its own first entry), so the pair is checked.
    """
    best = ranked[0].entry
    return [(names[id(item.entry)], ranking.median(item.entry) / ranking.median(best),
             ranking.separated(item.entry, best)) for item in ranked if item.rank != 1]


def ranked_group(group):
    """(ranked, {id(entry): implementation}, the fastest median) of one case's rows by sidebyside.ranking's rule;
    None below two rankable rows."""
    entries = [ranking_entry(row) for _, row in group.iterrows()]
    ranked = ranking.rank([entry for entry in entries if ranking.rankable(entry)])
    if len(ranked) < 2:
        return None
    names = {id(entry): name for entry, name in zip(entries, group["implementation"])}
    return ranked, names, ranking.median(ranked[0].entry)


def speed_sentence(machine, device, dtype, size, group):
    """Who is fastest, by sidebyside.ranking's rule: a tie (within noise) is said to be one, never a win.

    The ratios of the others to the fastest follow; one the rounds do not
    separate from the fastest is said to be a tie with it.
    """
    found = ranked_group(group)
    if found is None:
        return None
    ranked, names, best = found
    first = [item for item in ranked if item.rank == 1]
    rest = behind(ranked, names)
    others = ", ".join(f"{name} {fmt.times(ratio)}" for name, ratio, apart in rest if apart)
    close = ", ".join(f"{name} ({fmt.times(ratio)})" for name, ratio, apart in rest if not apart)
    if len(first) == 1:
        sentence = (f"{device}, {dtype}, {size}: {names[id(first[0].entry)]} is fastest at "
                    f"{fmt.seconds(best)} a step")
    else:
        tied = ", ".join(names[id(item.entry)] for item in first)
        slowest = ranking.median(first[-1].entry)
        sentence = (f"{device}, {dtype}, {size}: {ranking.TIE} for fastest between {tied}, at "
                    f"{fmt.seconds(best)} to {fmt.seconds(slowest)} a step; their timing rounds do not tell "
                    f"them apart")
    if close:
        sentence += f"; {close}: {ranking.TIE} with {names[id(ranked[0].entry)]}"
    return sentence + (f"; the others take {others} as long." if others else ".")


CHOICE_SHOWN = 3  # "then": the runners-up named in a row of the choice table


def choice_table(collection):
    """"Which should I use?" as a table: per machine, workload, device and dtype, the fastest, then ratios.

    The same groups and the same rule as the findings' speed sentences
    (sidebyside.ranking): a tie for fastest names every tied implementation,
    and a ratio whose entry the rounds do not separate from the fastest has
    the tie after it.
    """
    rows, display = [], []
    for machine, workload, device, dtype, size, group in primary_groups(ordered(collection.frame, collection.labels)):
        entries = {index: ranking_entry(row) for index, row in group.iterrows()}
        ranked = ranking.rank([entry for entry in entries.values() if ranking.rankable(entry)])
        if not ranked:
            continue
        names = {id(entry): group.loc[index, "implementation"] for index, entry in entries.items()}
        best = ranking.median(ranked[0].entry)
        first = [names[id(item.entry)] for item in ranked if item.rank == 1]
        rest = behind(ranked, names)
        then = "; ".join(f"{name} {versus(ratio, apart)}" for name, ratio, apart in rest[:CHOICE_SHOWN])
        slowest = f"{rest[-1][0]} {versus(*rest[-1][1:])}" if len(rest) > CHOICE_SHOWN else ""
        fastest = first[0] if len(first) == 1 else f"{ranking.TIE}: {', '.join(first)}"
        rows.append({"machine": machine, "workload": workload, "device": device, "dtype": dtype, "size": size,
                     "fastest": ";".join(first), "tied": len(first) > 1, "step_s": best,
                     "ranked": len(ranked), "then": ";".join(f"{name}={ratio:.4g}" for name, ratio, _ in rest),
                     "then_tied": ";".join(name for name, _, apart in rest if not apart)})
        display.append({"Machine": machine, "Workload": workload, "Device": device,
                        "Dtype": dtype, "Size": size, "Fastest": fastest, "Step": fmt.seconds(best),
                        "Then (× the fastest's step)": then or "—", "Slowest": slowest or "—"})
    shown = pd.DataFrame(display)
    if len(collection.labels) == 1 and not shown.empty:
        shown = shown.drop(columns="Machine")
    return Table("choice", "The fastest per device and dtype", pd.DataFrame(rows), shown,
                 facet="Machine" if len(collection.labels) > 1 else None,
                 note="Ranked by the timing rounds: implementations the rounds do not separate are a tie. "
                      "Runs that failed, diverged or disagree with the reference are not ranked.")


def tuned_sentences(collection, frame, pairs):
    """One sentence per framework: its tuned variant against its idiomatic sibling, in one group.

    The group is the first of the primary groups (the sizes with loss curves,
    CPU before GPU, float32 before float64) that holds the tuned variant,
    else the first group that does. The ratio follows sidebyside.ranking's
    rule: a pair the rounds do not separate is a tie (within noise), never
    faster or slower; a separated tuned variant slower than its sibling is
    said to be slower on this machine's CPU (or GPU).
    """
    records = tuned_rows(collection, pairs)
    records = [record for record in records if record[0]["machine"] in set(frame["machine"])]
    primary = {(g[0], g[1], g[2], g[3], g[4]) for g in primary_groups(frame)}

    def place(record):
        row = record[0]
        key = (row["machine"], row["workload"], row["device"], row["dtype"], row["size_label"])
        return (key not in primary, row["workload"], DEVICE_ORDER.get(row["device"], 2), row["device"], row["dtype"])

    chosen = {}
    for record in sorted(records, key=place):
        chosen.setdefault(record[0]["implementation"], record)
    sentences = []
    for name in (name for name in pairs if name in chosen):
        tuned, idiom_name, idiom, tuning = chosen[name]
        where = f"{tuned['device']}, {tuned['dtype']}, {tuned['size_label']}"
        framework = value(tuned["framework"]) or name
        ratio = speedup(tuned, idiom)
        mine = comparable_median(tuned)
        if ratio is not None:
            faster = tuned_verdict(tuned, idiom, idiom_name, ratio, long=True)
            limit = limit_ratio(tuned)
            limit = ("" if limit is None else f", {UNSOUND}" if over_peak(tuned["peak_fraction"])
                     else f", {fmt.times(limit)} the compute limit")
            said = (f"{framework}: {name} takes {fmt.seconds(mine)} a step against {idiom_name}'s "
                    f"{fmt.seconds(comparable_median(idiom))} ({where}), {faster}{limit}")
        else:
            def timing(label, row):
                if row is None:
                    return f"{label} is not in these results"
                if comparable_median(row) is None:
                    return f"{label} has no comparable timing ({tuned_step_cell(row)})"
                return f"{label} takes {fmt.seconds(comparable_median(row))} a step"

            said = (f"{framework}: {timing(name, tuned)} and {timing(idiom_name, idiom)} ({where}), "
                    f"so there is no ratio")
        sentences.append(said + (f"; what it changes: {tuning}." if tuning else "."))
    return sentences


def tuned_verdict(tuned, idiom, idiom_name, ratio, long=False):
    """A tuned variant against its sibling by sidebyside.ranking's rule: a tie (within noise), faster or slower;
    `long` for the full sentence (which names the sibling once already, and the hardware of a slower one)."""
    if not rows_separated(tuned, idiom):
        return f"{ranking.TIE} with {idiom_name}"
    if ratio >= 1:
        return f"{fmt.times(ratio)} faster" + ("" if long else f" than {idiom_name}")
    return f"{fmt.times(1 / ratio)} slower than {idiom_name}" + (f" on this {hardware(tuned['device'])}" if long else "")


def compile_reason(row):
    """Why the row's first step is slow: its registry entry's `first_step`, else what every first step pays."""
    entry = registry().get(str(row["implementation"]))
    if getattr(entry, "first_step", ""):
        return entry.first_step
    if value(row["device"]) == "cuda":
        return "the first step pays CUDA start-up and memory allocation"
    return "the first step pays one-time set-up (allocation, caches, thread pools)"


def first_step_sentences(frame):
    """One sentence on first steps far above a steady step, each with its likely cause."""
    ok = frame[(frame["status"] == "ok") & frame["first_step_s"].notna() & frame["median"].notna()]
    slow = ok[ok["first_step_s"] > SLOW_FIRST_STEP * ok["median"]]
    if slow.empty:
        return []
    parts = []
    for implementation, rows in slow.groupby("implementation", sort=False):
        worst = rows.loc[rows["first_step_s"].idxmax()]
        parts.append(
            f"{implementation} up to {fmt.seconds(worst['first_step_s'])}, "
            f"{fmt.times(worst['first_step_s'] / worst['median'])} a steady step ({worst['device']}, "
            f"{worst['dtype']}, {worst['size_label']}: {compile_reason(worst)})"
        )
    return ["First steps far slower than the steady state: " + "; ".join(parts)
            + ". They are timed apart and shown in the First step column."]


def kernel_sentence(frame, machine_record):
    """Which matrix-multiply library each framework called, from the workers' records or threadpoolctl."""
    kernels = {}
    for row in frame[frame["kernels"].notna()].itertuples():
        key = row.backend if isinstance(row.backend, str) else row.framework
        kernels.setdefault(str(key), set()).add(row.kernels)
    if kernels:
        parts = "; ".join(f"{key}: {', '.join(sorted(found))}" for key, found in kernels.items())
        distinct = {kernel for found in kernels.values() for kernel in found}
        if len(distinct) > 1:
            return (f"Matrix products do not all run in the same library ({parts}): speed differences, "
                    f"above all at small sizes, partly reflect the library rather than the framework.")
        return f"Matrix-multiply library recorded: {parts}."
    blas = [library for library in machine_record["blas"] if library.get("user_api") == "blas"]
    if blas:
        parts = [f"{blas_owner(library.get('filepath'))} loads {blas_text(library)}" for library in blas]
        return "BLAS libraries loaded: " + "; ".join(parts) + "."
    return None


def agreement_sentence(frame):
    """How many runs agree; those that do not are counted, not named (they are never a recommendation)."""
    curves = frame[frame["has_losses"] & frame["status"].isin(["ok", "disagrees"])]
    judged = curves[curves["agrees"].notna() | (curves["status"] == "disagrees")]
    if judged.empty:
        return None
    agree = judged[(judged["status"] == "ok") & (judged["agrees"] == True)]  # noqa: E712 (nullable column)
    differ = len(judged) - len(agree)
    sentence = (f"{len(agree)} of {len(judged)} runs with loss curves agree with the float64 reference "
                f"within tolerance")
    if differ:
        sentence += (f"; {differ} disagree{'s' if differ == 1 else ''}: shown with the reason in the "
                     f"Agreement table, and left out of every ranking here")
    return sentence + "."


def status_sentence(frame):
    bad = frame[frame["status"] != "ok"]
    if bad.empty:
        return None
    parts = []
    not_available = bad[bad["status"] == "n/a"]
    if not not_available.empty:
        reasons = Counter(fmt.text(reason, 80) for reason in not_available["reason"])
        listed = ", ".join(f"{reason} ×{count}" if count > 1 else reason for reason, count in reasons.most_common(4))
        parts.append(f"{len(not_available)} n/a ({listed})")
    for row in bad[bad["status"] == "diverged"].itertuples():
        parts.append(f"{row.implementation} diverged ({row.device}, {row.dtype}, {row.size_label}"
                     + (f", at step {int(row.diverged_at)}" if value(row.diverged_at) is not None else "") + ")")
    for row in bad[bad["status"] == "failed"].itertuples():
        parts.append(f"{row.implementation} failed ({row.device}, {row.dtype}: {fmt.text(row.reason, 120)})")
    if not parts:  # only disagreeing runs, which agreement_sentence counts
        return None
    return "Not measured: " + "; ".join(parts) + ". Every such run has its row in the tables."


def unstable_sentence(frame):
    unstable = frame[(frame["status"] == "ok") & frame["unstable"]]
    if unstable.empty:
        return None
    listed = ", ".join(f"{row.implementation} ({row.device}, {row.dtype}, {row.size_label})"
                       for row in unstable.head(6).itertuples())
    more = f" and {len(unstable) - 6} more" if len(unstable) > 6 else ""
    return (f"{len(unstable)} timing{'s are' if len(unstable) > 1 else ' is'} unstable (IQR over 10% of the "
            f"median, marked ±): {listed}{more}. Treat {'their' if len(unstable) > 1 else 'its'} ratios with care.")


def peak_sentence(frame):
    """Per device and dtype, the run closest to that dtype's measured peak (a step beating it is a warning)."""
    ok = frame[(frame["status"] == "ok") & frame["peak_fraction"].notna()]
    ok = ok[[not over_peak(x) for x in ok["peak_fraction"]]] if not ok.empty else ok
    sentences = []
    for (device, dtype), rows in ok.groupby(["device", "dtype"], sort=False):
        best = rows.loc[rows["peak_fraction"].astype(float).idxmax()]
        peak = value(best["peak_gflops"])
        of_peak = f" of the measured {dtype} {fmt.rate(peak)} GFLOP/s" if peak else f" of the measured {dtype} peak"
        sentences.append(f"{best['implementation']} comes closest to the {device} {dtype} peak: "
                         f"{fmt.percent(best['peak_fraction'])}{of_peak}, at {best['size_label']}.")
    return sentences


def loop_sentences(frame):
    """What the synced-once loop shows against per-step timing: a gain, or an anomaly."""
    ok = frame[(frame["status"] == "ok") & frame["loop_per_step"].notna() & frame["median"].notna()]
    if ok.empty:
        return []
    ratios = ok.assign(ratio=ok["loop_per_step"] / ok["median"])
    sentences = []
    best = ratios.loc[ratios["ratio"].idxmin()]
    if best["ratio"] <= LOOP_GAIN:
        sentences.append(
            f"Synchronizing only at the end of a loop pays off most for {best['implementation']} on "
            f"{best['device']} ({best['size_label']}, {best['dtype']}): {fmt.seconds(best['loop_per_step'])} a step "
            f"instead of {fmt.seconds(best['median'])} when every loss is copied to the host.")
    slow = ratios[ratios["ratio"] >= LOOP_ANOMALY]
    if not slow.empty:
        listed = ", ".join(f"{row.implementation} ({row.device}, {row.dtype}, {row.size_label}: "
                           f"{fmt.seconds(row.loop_per_step)} against {fmt.seconds(row.median)})"
                           for row in slow.head(4).itertuples())
        more = f" and {len(slow) - 4} more" if len(slow) > 4 else ""
        sentences.append(
            f"The loop ran much slower per step than the individually timed steps for {listed}{more}: the "
            f"loop does the same steps, so this points to interference while it ran (other load, frequency "
            f"scaling, memory pressure) or to a slower code path in that implementation's train(); rerun "
            f"before trusting those loop times.")
    return sentences


def crossover_sentence(machine, dtype, crossing):
    if crossing["kind"] == "crossover":
        return (f"GPU against CPU ({dtype}): the fastest GPU run overtakes the fastest CPU run from "
                f"{crossing['size']} on ({fmt.seconds(crossing['cuda'])} against "
                f"{fmt.seconds(crossing['cpu'])} a step); "
                f"at smaller sizes the CPU wins.")
    if crossing["kind"] == "everywhere":
        return f"GPU against CPU ({dtype}): the GPU is faster at every size measured, from {crossing['size']} up."
    return f"GPU against CPU ({dtype}): the CPU is faster at every size measured, up to {crossing['size']}."


def threads_sentence(document, frame=None):
    """The thread count every framework was given and, where measured, how many cores they kept busy."""
    config = document["config"]
    threads = config.get("threads") if isinstance(config, dict) else None
    if not isinstance(threads, int) or isinstance(threads, bool):
        return None
    sentence = f"Every framework ran with the same thread count: {threads}."
    used = [] if frame is None else [value(x) for x in frame["cpu_utilization"]]
    used = [x for x in used if x is not None]
    if used:
        low, high = min(used), max(used)
        span = f"{low:.2f}" if round(low, 2) == round(high, 2) else f"{low:.2f} to {high:.2f}"
        sentence += (f" While timed they kept {span} cores busy (CPU seconds over wall seconds; "
                     f"the timing table has each run's figure).")
    return sentence


def described(row):
    return f"{row['implementation']} ({row['device']}, {row['dtype']}, {row['size_label']})"


def listing(parts, limit=6):
    more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def flagged_runs(frame, flag):
    """["<run>: <what flag says>", ...] for the rows `flag` (a ranking check on one entry) finds something in."""
    return [f"{described(row)}: {found if isinstance(found, str) else ' and '.join(found)}"
            for _, row in frame.iterrows() if (found := flag(ranking_entry(row)))]


def oversubscribed_warning(frame):
    """One line naming the runs with more runnable threads than CPUs during their timed steps, else None."""
    parts = flagged_runs(frame, ranking.oversubscribed)
    if not parts:
        return None
    return (f"Oversubscribed: {listing(parts)} (the median of samples taken during the timed steps). Threads "
            f"waited for a CPU in the middle of a step, so these times are not times at the stated thread count.")


def pools_warning(frame):
    """One line naming the runs whose thread pools, read back from each library, are not the size asked for."""
    parts = flagged_runs(frame, ranking.pools_off)
    if not parts:
        return None
    return (f"Thread pools not at the size asked for: {listing(parts)}, as each library reported them after "
            f"the settings. These times are not times at the stated thread count.")


def over_peak_warning(frame, machine):
    """One line naming the steps faster than the measured peak (and whether it was measured once more), else None."""
    rows = [row for _, row in frame.iterrows() if over_peak(row["peak_fraction"])]
    if not rows:
        return None
    parts = [f"{described(row)}: {fmt.rate(row['gflops'])} GFLOP/s against the measured {fmt.rate(row['peak_gflops'])}"
             for row in rows]
    remeasured = "remeasured" in (machine.get("peak_detail") or {})
    again = ", even measured once more at the end of the run" if remeasured else ""
    return (f"Faster than the measured peak{again}: {listing(parts)}. No step can beat a sound peak, so the peak "
            f"is unsound here (measured low, under load) or the FLOP count is wrong; these rows give no share of "
            f"peak, only “{UNSOUND}”.")


def theoretical_warning(machine):
    """One line where a measured peak is above the theoretical one, else None."""
    parts = [f"{device} {dtype}: {fmt.rate(measured)} measured against {fmt.rate(theoretical)} GFLOP/s"
             for (device, dtype), (measured, theoretical) in over_theoretical(machine).items()]
    if not parts:
        return None
    return (f"The measured peak is above the theoretical one ({listing(parts)}): what the theoretical peak "
            f"assumes (clock, FMA units per core) does not hold on this machine.")


def peak_spread_warning(machine):
    parts = []
    for device, dtype in peak_devices(machine):
        start, end, spread = peak_drift(machine, device, dtype)
        if spread is not None and spread > PEAK_SPREAD_WARNING:
            measured = f": {fmt.rate(start)} then {fmt.rate(end)} GFLOP/s" if start and end else ""
            parts.append(f"{device} {dtype} by {fmt.percent(spread)}{measured}")
    if not parts:
        return None
    return (f"The measured peak moved between the start and the end of the run ({listing(parts)}; over "
            f"{PEAK_SPREAD_WARNING:.0%}): the machine's speed changed while it ran (other load, thermal or "
            f"frequency scaling), and its timings may have too.")


def drift_warning(document):
    """One line where the drift canary moved by more than PEAK_SPREAD_WARNING during the run, else None."""
    spread = rounds.drift([(entry.get("step_time") or {}).get("canary") for entry in document["results"]])
    if spread is None or spread[2] <= 1 + PEAK_SPREAD_WARNING:
        return None
    low, high, ratio = spread
    return (f"The drift canary, the same computation each time, took {fmt.seconds(low)} to {fmt.seconds(high)} "
            f"during the run ({fmt.times(ratio)}): the machine's own speed changed while it ran. Rankings "
            f"compare rounds that ran side by side; `sidebyside compare` divides each round by its canary.")


def measurement_warnings(collection):
    """[(machine label, [line, ...])]: measurement faults, one visible line per kind."""
    frame = collection.frame
    result = []
    for label, machine, document in collection.machines:
        part = frame[frame["machine"] == label]
        lines = [line for line in (oversubscribed_warning(part), pools_warning(part), over_peak_warning(part, machine),
                                   peak_spread_warning(machine), theoretical_warning(machine), drift_warning(document))
                 if line] + noise.warnings(machine.get("conditions"))
        result.append((label, lines))
    return result


HEADLINE = 8  # findings shown as the top list; the rest fold into "More findings"


def short_speed_sentence(device, dtype, size, group):
    """Who is fastest and who slowest, in one short sentence pointing at the step-time chart."""
    found = ranked_group(group)
    if found is None:
        return None
    ranked, names, best = found
    first = [names[id(item.entry)] for item in ranked if item.rank == 1]
    lead = f"{first[0]} is fastest" if len(first) == 1 else f"{ranking.TIE} for fastest between {', '.join(first)}"
    slowest = ranked[-1]
    tail = ""
    if slowest.rank != 1:
        tail = (f", {names[id(slowest.entry)]} slowest at {fmt.times(ranking.median(slowest.entry) / best)} "
                f"as long")
    return f"{device}, {dtype}, {size} (step time chart): {lead} at {fmt.seconds(best)} a step{tail}."


def framework_label(fit, frame):
    rows = frame[frame["implementation"] == fit.implementation]
    if rows.empty:
        return fit.implementation
    framework, backend = value(rows["framework"].iloc[0]), value(rows["backend"].iloc[0])
    framework = str(framework or fit.implementation)
    return f"{framework} on {backend}" if backend and str(backend) != framework else framework


def per_framework(group, frame):
    """{framework: its good fit with the smallest fixed cost} in one compared group, by that cost."""
    chosen = {}
    for fit in sorted((fit for fit in group.fits if not fit.poor), key=lambda fit: fit.overhead_s):
        chosen.setdefault(framework_label(fit, frame), fit)
    return chosen


def reach_parts(group, frame):
    """Per framework, from which size its best implementation stays within 10 % of the fastest (measured)."""
    def order(item):
        return (not item.everywhere, item.from_flops is None, item.from_flops or 0.0)

    best = {}
    for item in sorted(group.reach, key=order):
        best.setdefault(framework_label(item.fit, frame), item)
    return [f"{name} {reach_text(item)} ({item.fit.implementation})" for name, item in best.items()]


def overhead_sentences(groups, frame):
    """Per framework its fixed cost per step and from which size it is within 10 % of the fastest (the first
    device and dtype fitted), and the poor fits, named."""
    headline, more = [], []
    for number, group in enumerate(groups):
        chosen = per_framework(group, frame)
        machine, workload, device, dtype, family = group.key
        where = f"{device}, {dtype}, {family}"
        poor = [fit.implementation for fit in group.fits if fit.poor]
        said = []
        if chosen:
            costs = "; ".join(f"{name} {fmt.seconds(fit.overhead_s)} ({fit.implementation})"
                              for name, fit in chosen.items())
            said.append(f"Fixed cost per step, fitted over {where} (where-the-time-goes chart): {costs}.")
        parts = reach_parts(group, frame)
        if parts:
            said.append(f"Within 10 % of the fastest ({where}, step time against size chart): "
                        + "; ".join(parts) + ".")
        if poor:
            (more if said else said).append(
                f"Poor fits ({where}), so no fixed cost is given: {', '.join(poor)}; the line misses a size by "
                f"more than the rounds' spread, or a held-out size by more than 15 % (the Where the time goes "
                f"table says where).")
        (headline if number == 0 else more).extend(said)
    return headline, more


def short_tuned_sentence(collection, frame, pairs):
    """The tuned variants against their siblings in one sentence (their full sentences go to More findings)."""
    parts = []
    primary = {(g[0], g[1], g[2], g[3], g[4]) for g in primary_groups(frame)}
    for tuned, idiom_name, idiom, _ in tuned_rows(collection, pairs):
        key = (tuned["machine"], tuned["workload"], tuned["device"], tuned["dtype"], tuned["size_label"])
        if key not in primary or idiom is None or any(p.startswith(tuned["implementation"] + " ") for p in parts):
            continue
        ratio = speedup(tuned, idiom)
        if ratio is None:
            continue
        parts.append(f"{tuned['implementation']} {tuned_verdict(tuned, idiom, idiom_name, ratio)}")
    if not parts:
        return None
    return "Tuned variants, hatched beside their siblings in the step time chart: " + "; ".join(parts) + "."


def short_status_sentence(frame):
    bad = frame[~frame["status"].isin(["ok", "disagrees"])]
    if bad.empty:
        return None
    counts = Counter(bad["status"])
    listed = ", ".join(f"{count} {status}" for status, count in counts.most_common())
    return f"Not measured: {listed} (the reasons are under More findings and in the Not run table)."


def findings(collection, crossings, groups=()):
    """[(machine label, [headline sentence, ...], [more, ...])] for the top of the report.

    At most HEADLINE short sentences lead, each pointing at its chart: who is
    fastest, the fixed cost per step and where each framework comes within
    10 % of the fastest, the tuned variants, the peak, the GPU crossover,
    agreement and what did not run. Everything else, and the long forms,
    fold into More findings. The speed, peak, tuned, first-step and loop
    sentences read the ranked workloads' rows (sidebyside.workloads,
    `main`); every other workload adds its own sentences; the rest read
    every row.
    """
    frame = ordered(collection.frame, collection.labels)
    result = []
    for label, machine, document in collection.machines:
        part = frame[frame["machine"] == label]
        main = part[part["workload"].isin(workloads.main_names())]
        headline, more = [], []
        for _, workload, device, dtype, size, group in primary_groups(main):
            headline.append(short_speed_sentence(device, dtype, size, group))
            more.append(speed_sentence(label, device, dtype, size, group))
        fitted, unfitted = overhead_sentences([g for g in groups if g.key[0] == label], main)
        headline += fitted
        more += unfitted
        headline.append(short_tuned_sentence(collection, main, tuned_pairs()))
        more += tuned_sentences(collection, main, tuned_pairs())
        peaks = peak_sentence(main)
        headline += peaks[:1]
        more += peaks[1:]
        for (machine_label, dtype), crossing in crossings.items():
            if machine_label == label:
                headline.append(crossover_sentence(label, dtype, crossing))
        headline.append(agreement_sentence(part))
        headline.append(short_status_sentence(part))
        more += first_step_sentences(main)
        more += loop_sentences(main)
        for name, rows in part[~part["workload"].isin(workloads.main_names())].groupby("workload", sort=False):
            more += workloads.reading(name).findings(rows)
        more += [kernel_sentence(part, machine), threads_sentence(document, part), unstable_sentence(part),
                 status_sentence(part)]
        if part.empty:
            headline.append("This file holds no results.")
        headline = [sentence for sentence in headline if sentence]
        more = [sentence for sentence in headline[HEADLINE:] + more if sentence]
        result.append((label, headline[:HEADLINE], more))
    return result
