"""The comparison report: `sidebyside report FILE [FILE ...] --out DIR`.

sidebyside/results.py (outside this package: the writer shares its model)
reads result files (untrusted JSON, validated); merge.py joins machines
into one pandas frame; chartdata.py takes the charts' numbers from
it once; interactive.py (plotly), figures.py (matplotlib PNGs), code.py and
findings.py make the charts, the side-by-side code and the sentences. The
report is a list of sections (tables.py: Section, and the Table and Text
blocks it holds): one module each in sections/, found by listing it, plus
plug-ins named in SIDEBYSIDE_SECTIONS, and each workload's own; html.py and
markdown.py render them, each with one loop; build.py writes the folder;
cli.py is the command line.
"""

FORMATS = ("html", "markdown")  # what `sidebyside report --format` writes
