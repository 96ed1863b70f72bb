"""The table `sidebyside run` prints when it finishes."""

from rich.console import Console
from rich.table import Table


def describe_status(entry):
    if entry["status"] == "ok":
        if entry.get("agrees") is False:
            return "ok, differs"
        return "ok" + (", unstable" if entry.get("unstable") else "")
    if entry["status"] == "diverged":
        return f"diverged at step {entry.get('diverged_at')}"
    return f"{entry['status']}: {entry.get('reason') or ''}"


def first_cost(entry):
    """The first step's time; for digits, the first epoch's (compilation included)."""
    value = entry.get("first_epoch_s") if entry["workload"] == "digits" else entry.get("first_step_s")
    return f"{value:.3f}" if value is not None else "n/a"


def print_summary(document, console=None):
    console = console or Console(width=max(Console().width, 110))
    entries = document["results"]
    groups = {}
    for entry in entries:
        size = entry["size"]
        key = (entry["workload"], entry["device"], entry["dtype"], size["N"], size["D_in"], size["H"], size["D_out"])
        groups.setdefault(key, []).append(entry)
    for key, group in groups.items():
        workload, device, dtype, *size = key
        title = f"{workload} · {device} · {dtype}" + ("" if workload == "digits" else f" · size {','.join(map(str, size))}")
        timed = [e["step_time"]["median"] for e in group if e["status"] == "ok" and e.get("step_time")]
        fastest = min(timed) if timed else None
        table = Table(title=title, title_justify="left")
        for column in ("implementation", "µs/step", "×best", "GFLOP/s", "%peak", "1st (s)", "agreement", "status"):
            table.add_column(column, justify="left" if column in ("implementation", "status") else "right")
        if workload == "digits":
            table.add_column("accuracy", justify="right")
        for entry in sorted(group, key=lambda e: (e.get("step_time") or {}).get("median", float("inf"))):
            step = entry.get("step_time")
            cells = [
                entry["implementation"],
                f"{step['median'] * 1e6:,.0f}" if step else "n/a",
                f"{step['median'] / fastest:.2f}" if step and fastest else "n/a",
                f"{entry['gflops']:.1f}" if entry.get("gflops") else "n/a",
                f"{entry['peak_fraction'] * 100:.0f}" if entry.get("peak_fraction") else "n/a",
                first_cost(entry),
                f"{entry['agreement']:.1e}" if entry.get("agreement") is not None else "n/a",
                describe_status(entry),
            ]
            if workload == "digits":
                accuracy = entry.get("test_accuracy")
                cells.append(f"{accuracy * 100:.1f} %" if accuracy is not None else "n/a")
            table.add_row(*cells)
        console.print(table)
