"""The tables `sidebyside run` prints when it finishes: one per workload, device, dtype and size.

A device on which nothing ran (CUDA on a machine without a GPU) gets one
line instead of its tables, and so do the slow starters the default run
left out.

Rows are ranked by sidebyside.ranking, the rule the HTML report uses too:
entries whose timing rounds do not separate them share a rank ("1 tie"), and
the line under the table says "tie (within noise)" rather than naming one of
them fastest. ×best is the ratio to the fastest's median, followed by "tie
(within noise)" where ranking.separated does not tell the row from the
fastest (the fastest itself, when it shares rank 1, reads the tie alone).
Runs that disagree with the float64 reference keep their row, their time and
their reason, but get no rank and no ×best. "cores" is CPU
seconds over wall seconds of the timed steps against the threads asked for;
"!" marks a run that had more runnable threads than CPUs (ranking.oversubscribed:
CPU time cannot show it under pinning); the lines under the table name those
runs, and any run whose thread pools read back at another size than asked.
A step faster than the measured peak gets no share of peak: "%peak" reads
"> peak" and the line under the table says the peak is unsound there
(sidebyside.peak.UNSOUND).

Names and reasons come from entries, so every cell is a rich Text (never
parsed as console markup: a reason holding "[/x]" prints as written).
"""

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sidebyside import ranking, workloads
from sidebyside.peak import UNSOUND, beats


def describe_status(entry):
    status = entry.get("status")
    if status == "disagrees" or (status == "ok" and entry.get("agrees") is False):
        return f"disagrees: {entry.get('reason') or 'loss differs from the float64 reference'}"
    if status == "ok":
        return "ok" + (", unstable" if entry.get("unstable") else "")
    if status == "diverged":
        return f"diverged at step {entry.get('diverged_at')}"
    return f"{status}: {entry.get('reason') or ''}"


def first_cost(entry):
    """The first step's time, or what the workload shows instead (the first epoch's, compilation included)."""
    value = entry.get(workloads.reading(entry["workload"]).first_time)
    return f"{value:.3f}" if value is not None else "n/a"


def print_summary(document, console=None):
    console = console or Console(width=max(Console().width, 120))
    idle = ranking.idle_devices(document["results"])
    skipped, skipped_line = ranking.left_out(document["results"])
    entries = [entry for entry in document["results"]
               if entry["device"] not in idle and entry["implementation"] not in skipped]
    groups = {}
    for entry in entries:
        key = (entry["workload"], entry["device"], entry["dtype"], tuple(entry["size"].values()), entry.get("environment"))
        groups.setdefault(key, []).append(entry)
    for key, group in groups.items():
        name, device, dtype, size, environment = key
        workload = workloads.reading(name)
        title = f"{name} · {device} · {dtype}" + (f" · size {','.join(map(str, size))}" if workload.size_in_title else "")
        title += f" · env {environment}" if environment else ""
        ranked = ranking.rank([entry for entry in group if ranking.rankable(entry)])
        places = {id(item.entry): item for item in ranked}
        best = ranked[0] if ranked else None
        table = Table(title=title, title_justify="left")
        for column in ("implementation", "rank", "µs/step", "×best", "GFLOP/s", "%peak", "cores", "1st (s)",
                       "agreement", "status"):
            table.add_column(column, justify="left" if column in ("implementation", "status") else "right",
                             no_wrap=column == "implementation")  # a name is never cut
        for header, _ in workload.summary_columns:
            table.add_column(header, justify="right")
        # Ranked rows in rank order, then the unranked: timed ones (disagreeing) by time, then the rest.
        unranked = sorted((e for e in group if id(e) not in places), key=lambda e: ranking.median(e) or float("inf"))
        for entry in [item.entry for item in ranked] + unranked:
            place = places.get(id(entry))
            median = ranking.median(entry)
            peak = entry.get("peak_fraction")
            cells = [
                entry["implementation"],
                (f"{place.rank} tie" if place.tied else str(place.rank)) if place else "—",
                f"{median * 1e6:,.0f}" if median else "n/a",
                times_best(entry, best) if place else "n/a",
                f"{entry['gflops']:.1f}" if entry.get("gflops") else "n/a",
                ("> peak" if beats(peak) else f"{peak * 100:.0f}") if peak else "n/a",
                cores(entry),
                first_cost(entry),
                f"{entry['agreement']:.1e}" if entry.get("agreement") is not None else "n/a",
                describe_status(entry),
            ]
            cells += [cell(entry) for _, cell in workload.summary_columns]
            table.add_row(*(Text(cell) for cell in cells))
        console.print(table)
        for line in notes(group, ranked):
            console.print(Text(line))
    for _, line in idle.values():
        console.print(Text(line))
    if skipped_line:
        console.print(Text(skipped_line))


def times_best(entry, best):
    """×best: the entry's median over the fastest's, with the tie after it where the two are not separated."""
    if entry is best.entry:
        return ranking.TIE if best.tied else "1.00"
    ratio = f"{ranking.median(entry) / ranking.median(best.entry):.2f}"
    return ratio if ranking.separated(entry, best.entry) else f"{ratio}, {ranking.TIE}"


def cores(entry):
    """Cores kept busy against the threads asked for, "1.96/2"; "!" where the run was oversubscribed."""
    used, threads = entry.get("cpu_utilization"), entry.get("threads")
    if used is None:
        return "n/a"
    text = f"{used:.2f}" + (f"/{threads}" if threads else "")
    return text + (" !" if ranking.oversubscribed(entry) else "")


def notes(group, ranked):
    """Lines under a table: a tie for fastest, oversubscribed runs, pools not as asked, steps faster than the peak."""
    lines = []
    first = [item.entry["implementation"] for item in ranked if item.rank == 1]
    if len(first) > 1:
        lines.append(f"  fastest: {ranking.TIE} between {', '.join(first)}: their timing rounds do not separate them")
    over = [f"{e['implementation']} ({ranking.oversubscribed(e)})" for e in group if ranking.oversubscribed(e)]
    if over:
        lines.append(f"  ! oversubscribed: {', '.join(over)}")
    off = [f"{e['implementation']}: {', '.join(ranking.pools_off(e))}" for e in group if ranking.pools_off(e)]
    if off:
        lines.append(f"  ! thread pools not at the size asked for: {'; '.join(off)}")
    unsound = [e["implementation"] for e in group if beats(e.get("peak_fraction"))]
    if unsound:
        lines.append(f"  ! > peak, {', '.join(unsound)}: {UNSOUND}")
    return lines
