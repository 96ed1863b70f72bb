"""How often `sidebyside compare` is right on this machine: A/A pairs and an injected slowdown.

    python benchmarks/verdicts/trials.py [--trials 10] [--slowdown 0.15] [--out DIR]

Three experiments, each `--trials` times, numpy_manual and torch_manual at the
tutorial size (float32, the CPU, the default rounds, no sweep):

1. A/A: two runs of the same code back to back, then `compare --fail-on
   median:5%`. Right: exit 0 and no verdict claims a change.
2. Interleaved A/B: one run with two environments, `--env a=PYTHON --env
   b=SLOWED`, where SLOWED is the same interpreter with this folder's
   sitecustomize.py on its path making numpy_manual's step `--slowdown`
   slower (the implementation's file untouched); then `compare RUN
   --fail-on median:5%`. Right: numpy_manual caught, torch_manual never blamed.
3. Against a baseline: a run with numpy_manual slowed, compared with the first
   run of A/A pair i, taken minutes before (the canary's case). Right: as in 2.

Every process, slowed or not, starts alike: this folder on PYTHONPATH and
SIDEBYSIDE_SLOWDOWN set to the same length (numpy_manual:0.00 where nothing is
slowed), so every process runs the same sitecustomize.py and wraps the same
step; only the fraction the wrapper spins differs between A and B. A
process's start-up changes its memory layout, and its layout alone can move
numpy_manual's step by a third on this machine (an empty sitecustomize.py on
the path did; docs/verdicts.md).

It prints one line per trial and the rates, and keeps every run under --out.
A script, not a test: it takes about ten minutes and its figures are this
machine's.
"""

import argparse
import csv
import io
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = ["--impl", "numpy_manual", "--impl", "torch_manual", "--workload", "two_layer", "--device", "cpu",
         "--dtype", "float32", "--no-sweep", "--no-report"]
SLOWED, UNTOUCHED = "numpy_manual", "torch_manual"


def sidebyside(*arguments, env=None):
    return subprocess.run([sys.executable, "-m", "sidebyside.cli", *arguments], capture_output=True, text=True,
                          env=env)


def plug_in_path():
    return os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))


REUSE = False  # --reuse: a run folder that already holds results.json is judged again, not run again


def run(out, env=None, extra=()):
    if REUSE and (Path(out) / "results.json").is_file():
        return out
    if env is None:  # the same start-up as a slowed process, unslowed
        env = slowed_environment(0)
    result = sidebyside("run", *CASES, *extra, "--out", str(out), env=env)
    if result.returncode != 0:
        sys.exit(f"sidebyside run failed ({result.returncode}): {result.stderr.strip().splitlines()[-1:]}")
    return out


def slowed_environment(fraction):
    """os.environ with this folder's sitecustomize slowing SLOWED by `fraction` (0: wrapped, not slowed)."""
    return dict(os.environ, PYTHONPATH=plug_in_path(), SIDEBYSIDE_SLOWDOWN=f"{SLOWED}:{fraction:.2f}")


def slowed_python(folder, fraction):
    """An interpreter for --env: this Python, started with the slowdown on (0: wrapped, not slowed)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    script = Path(folder) / "slowed-python"
    script.write_text(f"#!/bin/sh\nPYTHONPATH='{plug_in_path()}' SIDEBYSIDE_SLOWDOWN='{SLOWED}:{fraction:.2f}' "
                      f"exec '{sys.executable}' \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def compare(*files):
    """(exit status, {implementation: (verdict, significant, change %, canary %, normalized %)}, blamed)."""
    result = sidebyside("compare", *map(str, files), "--format", "csv", "--fail-on", "median:5%")
    if result.returncode not in (0, 1):
        sys.exit(f"sidebyside compare failed: {result.stderr.strip()}")
    rows = {row["implementation"]: row for row in csv.DictReader(io.StringIO(result.stdout)) if row["in"] == "both"}
    blamed = [name for name in rows if f"compare: {name} (" in result.stderr]
    return result.returncode, rows, blamed


def brief(rows):
    def number(text):
        return f"{float(text):+.1f}%" if text not in ("", None) else "n/a"

    return "; ".join(f"{name} {number(row['change_percent'])} (canary {number(row['canary_change_percent'])}, "
                     f"normalized {number(row['normalized_change_percent'])}) {row['verdict']}"
                     for name, row in rows.items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--slowdown", type=float, default=0.15)
    parser.add_argument("--out", default=None, help="where the runs are kept (default: a temporary folder)")
    parser.add_argument("--only", choices=("aa", "interleaved", "baseline"), action="append")
    parser.add_argument("--reuse", action="store_true",
                        help="judge the runs already in --out again (after a change of the verdict's rule)")
    args = parser.parse_args()
    global REUSE
    REUSE = args.reuse
    out = Path(args.out or tempfile.mkdtemp(prefix="verdicts-"))
    out.mkdir(parents=True, exist_ok=True)
    chosen = args.only or ["aa", "interleaved", "baseline"]
    start = time.monotonic()
    tally = {}

    if "aa" in chosen or "baseline" in chosen:
        right = 0
        for trial in range(1, args.trials + 1):
            first = run(out / f"aa-{trial}-first")
            second = run(out / f"aa-{trial}-second")
            if "aa" not in chosen:
                continue
            code, rows, blamed = compare(first, second)
            claims = [name for name, row in rows.items() if row["significant"] == "True"]
            ok = code == 0 and not claims
            right += ok
            print(f"A/A {trial}: exit {code}, {'right' if ok else 'WRONG'}: {brief(rows)}", flush=True)
        if "aa" in chosen:
            tally["A/A: exit 0 and no significant verdict"] = right

    def slowdown_trials(what, runs):
        """Each trial's comparison: is SLOWED caught (exit 1, named), is UNTOUCHED ever blamed?"""
        caught = wrong = 0
        for trial in range(1, args.trials + 1):
            code, rows, blamed = compare(*runs(trial))
            hit = code == 1 and SLOWED in blamed
            wrong += UNTOUCHED in blamed
            caught += hit
            print(f"{what} {trial}: exit {code}, {'caught' if hit else 'MISSED'}"
                  f"{', BLAMED ' + UNTOUCHED if UNTOUCHED in blamed else ''}: {brief(rows)}", flush=True)
        tally[f"{what}: {SLOWED} caught"] = caught
        tally[f"{what}: {UNTOUCHED} blamed"] = wrong

    if "interleaved" in chosen:
        python = slowed_python(out, args.slowdown)
        unslowed = slowed_python(out / "unslowed", 0)  # the same start-up as B's
        slowdown_trials("interleaved A/B", lambda trial: [
            run(out / f"ab-{trial}", extra=["--env", f"a={unslowed}", "--env", f"b={python}"])])

    if "baseline" in chosen:
        slowdown_trials("against a baseline", lambda trial: [
            out / f"aa-{trial}-first", run(out / f"slowed-{trial}", env=slowed_environment(args.slowdown))])

    print(f"\n{args.trials} trials each, {time.monotonic() - start:.0f} s, runs in {out}")
    for what, count in tally.items():
        print(f"  {what}: {count} of {args.trials}")


if __name__ == "__main__":
    main()
