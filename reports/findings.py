"""What the numbers say, in sentences derived from the data.

Nothing here is written in advance: each sentence is produced only when
the files hold the data behind it (a speed ratio, a first-step cost far
above a steady step, a BLAS library, a GPU crossover), and quotes the
measured values.
"""

from collections import Counter

from reports import formatting as fmt
from reports.merge import value
from reports.tables import DEVICE_ORDER, DIGITS, ordered

SLOW_FIRST_STEP = 20.0  # a first step this many times a steady one is worth explaining
LOOP_GAIN = 0.8  # a synced-once loop at most this share of the per-step time is worth saying
LOOP_ANOMALY = 2.0  # a loop this many times slower per step than the timed steps is suspect


def primary_groups(frame):
    """The comparison groups shown in sentences: the sizes with loss curves, else the most common size."""
    groups = []
    for (machine, workload), part in frame.groupby(["machine", "workload"], sort=False):
        source = part[part["has_losses"]] if part["has_losses"].any() else part
        counts = source["size_label"].value_counts()
        if counts.empty:
            continue
        size = counts.index[0]
        chosen = part[part["size_label"] == size]
        for (device, dtype), group in chosen.groupby(["device", "dtype"], sort=False):
            groups.append((machine, workload, device, dtype, size, group))
    return sorted(groups, key=lambda g: (g[1], DEVICE_ORDER.get(g[2], 2), g[2], g[3]))


def speed_sentence(machine, device, dtype, size, group):
    ok = group[(group["status"] == "ok") & group["median"].notna()].sort_values("median")
    if len(ok) < 2:
        return None
    fastest = ok.iloc[0]
    others = [f"{row.implementation} {fmt.times(row.median / fastest['median'])}" for row in ok.iloc[1:].itertuples()]
    return (f"{device}, {dtype}, {size}: {fastest['implementation']} is fastest at "
            f"{fmt.seconds(fastest['median'])} a step; the others take " + ", ".join(others) + " as long.")


def compile_reason(row):
    names = {str(value(row["framework"]) or ""), str(value(row["backend"]) or ""), str(row["implementation"])}
    if "keras" in names:
        return "Keras compiles train_on_batch with its backend on the first call"
    if any("compile" in name for name in names):
        return "torch.compile traces and compiles the step on the first call"
    if "jax" in names:
        return "jax.jit traces and compiles on the first call"
    if "tensorflow" in names or any(name.startswith("tf_") for name in names):
        return "tf.function traces the step into a graph on the first call"
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
        from reports.tables import blas_owner, blas_text

        parts = [f"{blas_owner(library.get('filepath'))} loads {blas_text(library)}" for library in blas]
        return "BLAS libraries loaded: " + "; ".join(parts) + "."
    return None


def agreement_sentence(frame):
    curves = frame[frame["has_losses"] & (frame["status"] == "ok")]
    judged = curves[curves["agrees"].notna()]
    if judged.empty:
        return None
    agree = judged[judged["agrees"].astype(bool)]
    differ = judged[~judged["agrees"].astype(bool)]
    sentence = (f"{len(agree)} of {len(judged)} runs with loss curves agree with the float64 reference "
                f"within tolerance")
    if not differ.empty:
        listed = ", ".join(f"{row.implementation} ({row.device}, {row.dtype}: {fmt.scientific(row.agreement)})"
                           for row in differ.itertuples())
        sentence += f"; differs: {listed}"
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
    ok = frame[(frame["status"] == "ok") & frame["peak_fraction"].notna()]
    sentences = []
    for device, rows in ok.groupby("device", sort=False):
        best = rows.loc[rows["peak_fraction"].idxmax()]
        peak = value(best["peak_gflops"])
        of_peak = f" of the measured {fmt.rate(peak)} GFLOP/s" if peak else " of the measured peak"
        sentence = (f"{best['implementation']} comes closest to the {device} peak: "
                    f"{fmt.percent(best['peak_fraction'])}{of_peak}, at {best['size_label']} ({best['dtype']}).")
        if best["peak_fraction"] > 1:
            sentence += (" That is above 100%: the peak measurement (one large matrix product) underestimates "
                         "this machine, so read shares of peak here as relative, not absolute.")
        sentences.append(sentence)
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


def digits_sentence(frame):
    ok = frame[(frame["workload"] == DIGITS) & (frame["status"] == "ok")]
    ok = ok[ok["time_to_accuracy_s"].notna()].sort_values("time_to_accuracy_s")
    if ok.empty:
        return None
    several = ok[["device", "dtype"]].drop_duplicates().shape[0] > 1

    def described(row):
        where = f" ({row.device}, {row.dtype})" if several else ""
        accuracy = f"{fmt.percent(row.test_accuracy)} in " if value(row.test_accuracy) is not None else ""
        return f"{row.implementation}{where} {accuracy}{fmt.seconds(row.time_to_accuracy_s)}"

    rows = list(ok.itertuples())
    return ("Digits, time to reach the final test accuracy (epoch time only): "
            + "; ".join(described(row) for row in rows) + ".")


def threads_sentence(document):
    config = document["config"]
    threads = config.get("threads") if isinstance(config, dict) else None
    if isinstance(threads, int) and not isinstance(threads, bool):
        return f"Every framework ran with the same thread count: {threads}."
    return None


def findings(collection, crossings):
    """[(machine label, [sentence, ...])] for the top of the report."""
    frame = ordered(collection.frame, collection.labels)
    result = []
    for label, machine, document in collection.machines:
        part = frame[frame["machine"] == label]
        sentences = []
        for _, workload, device, dtype, size, group in primary_groups(part[part["workload"] != DIGITS]):
            sentence = speed_sentence(label, device, dtype, size, group)
            if sentence:
                sentences.append(sentence)
        sentences += peak_sentence(part[part["workload"] != DIGITS])
        for (machine_label, dtype), crossing in crossings.items():
            if machine_label == label:
                sentences.append(crossover_sentence(label, dtype, crossing))
        sentences += first_step_sentences(part[part["workload"] != DIGITS])
        sentences += loop_sentences(part[part["workload"] != DIGITS])
        for sentence in (agreement_sentence(part),
                         digits_sentence(part), kernel_sentence(part, machine), threads_sentence(document),
                         unstable_sentence(part), status_sentence(part)):
            if sentence:
                sentences.append(sentence)
        if part.empty:
            sentences.append("This file holds no results.")
        result.append((label, sentences))
    return result
