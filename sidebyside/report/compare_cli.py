"""`sidebyside compare BASE [NEW] [--between A B] [--format terminal|markdown|csv] [--fail-on median:N%]`.

sidebyside/cli.py adds these arguments to its `compare` subcommand and calls
`run(args)`. BASE and NEW are result files (results.json or pytest-benchmark
JSON) or run folders holding a results.json; BASE alone is a run with two
environments (`sidebyside run --env ... --env ...`), compared with each other
(`--between A B` picks two of more). Exit status: 0; 1 where
--fail-on is given and a case is significantly slower by more than its
threshold (after the table, one line per such case on stderr); 2 for a bad
file, in one line. Nothing heavy (pandas, scipy, rich) is imported until
the command runs, so `sidebyside --help` stays fast.
"""

import argparse
import re
import sys

from sidebyside.results import ResultsError

OUTPUT_FORMATS = ("terminal", "markdown", "csv")
FAIL_ON = re.compile(r"median:(\d+(?:\.\d*)?|\.\d+)%")


def fail_on(text):
    """--fail-on median:5% -> 5.0 (percent)."""
    match = FAIL_ON.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not median:<number>% (for example median:5%)")
    return float(match.group(1))


def add_arguments(parser):
    parser.add_argument("base", metavar="BASE",
                        help="the results before: results.json, pytest-benchmark JSON, or a run folder")
    parser.add_argument("new", metavar="NEW", nargs="?",
                        help="the results after, the same kinds; left out: BASE is a run of two --env environments")
    parser.add_argument("--between", nargs=2, metavar=("A", "B"),
                        help="with BASE alone: the two environments to compare (default: its first two)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="terminal",
                        help="terminal (default): a table; markdown: a GitHub-flavoured table; csv: every field")
    parser.add_argument("--fail-on", type=fail_on, metavar="median:N%",
                        help="exit 1 if any case is significantly slower by more than N%% of its median")
    return parser


def offending_lines(comparison, threshold):
    """One line per case significantly slower than the threshold allows."""
    from sidebyside.report.compare import CASE, case_name

    lines = []
    for _, row in comparison.slower_than(threshold).iterrows():
        change = row["change"]
        lines.append(f"compare: {case_name(tuple(row[key] for key in CASE))}: {100 * change.deciding:+.1f}% "
                     f"({change.verdict}, p = {change.p_value:.2g}), over the {threshold:g}% threshold")
    return lines


def run(args):
    """Print the comparison; returns the exit status."""
    from sidebyside.report import compare_output
    from sidebyside.report.compare import compare_files

    try:
        if args.between and args.new:
            raise ResultsError(args.new, "--between picks two environments of one run: give BASE alone")
        comparison = compare_files(args.base, args.new, args.between)
    except ResultsError as error:
        print(f"sidebyside: error: {error}", file=sys.stderr)
        return 2
    if args.format == "markdown":
        sys.stdout.write(compare_output.markdown_text(comparison))
    elif args.format == "csv":
        sys.stdout.write(compare_output.csv_text(comparison))
    else:
        compare_output.print_terminal(comparison)
    if args.fail_on is None:
        return 0
    lines = offending_lines(comparison, args.fail_on)
    for line in lines:
        print(line, file=sys.stderr)
    return 1 if lines else 0


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(
        prog="sidebyside compare", description="Compare two result files case by case."))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
