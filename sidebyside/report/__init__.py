"""The comparison report: `sidebyside report FILE [FILE ...] --out DIR`.

sidebyside/results.py (outside this package: the writer shares its model)
reads result files (untrusted JSON, validated); merge.py joins machines
into one pandas frame; chartdata.py takes the charts' numbers from
it once; tables.py, interactive.py (plotly), figures.py (matplotlib PNGs),
code.py and findings.py make the tables, the charts, the side-by-side code
and the sentences; html.py and markdown.py render them; build.py writes the
folder; cli.py is the command line.
"""

FORMATS = ("html", "markdown")  # what `sidebyside report --format` writes
