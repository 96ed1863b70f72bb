"""`sidebyside report FILE [FILE ...] --out DIR [--format html|markdown]`.

The lead's sidebyside/cli.py adds these arguments to its `report`
subcommand and calls `run(args)`; `main(argv)` runs the same thing alone.
Bad result files and unusable output folders end with one line on stderr
and exit status 2, never a traceback.
"""

import argparse
import sys

# The builder (matplotlib, pandas: a second to import) is imported when a
# report is built, not when the command line is.
from sidebyside.report import FORMATS
from sidebyside.results import ResultsError


def add_arguments(parser):
    parser.add_argument(
        "files", nargs="+", metavar="FILE",
        help="results.json from `sidebyside run` or pytest-benchmark JSON (--benchmark-json); "
             "files from several machines are compared side by side",
    )
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="output folder: index.html and a CSV per table (its parent must exist)")
    parser.add_argument(
        "--format", dest="formats", action="append", choices=FORMATS, metavar="{html,markdown}",
        help="html (default): the self-contained page; markdown: report.md with the summary and timing "
             "tables as GitHub-flavoured Markdown, also printed. Repeat for both.",
    )
    return parser


def run(args):
    """Build the report; returns the exit status."""
    from sidebyside.report.build import OutputError, build_report

    formats = tuple(dict.fromkeys(args.formats or ["html"]))
    try:
        main_file = build_report(args.files, args.out, formats)
    except (ResultsError, OutputError) as error:
        print(f"sidebyside: error: {error}", file=sys.stderr)
        return 2
    if "markdown" in formats:
        sys.stdout.write((main_file.parent / "report.md").read_text(encoding="utf-8"))
        print(f"report: {main_file}", file=sys.stderr)
    else:
        print(f"report: {main_file}")
    return 0


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(
        prog="sidebyside report", description="Build the comparison report from result files."))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
