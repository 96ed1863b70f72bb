"""The summary, idiom-vs-ceiling and timing tables, and each other workload's own, as GitHub-flavoured Markdown, to paste into an issue.

The charts follow as links to the PNG files build.py writes beside report.md.

Cells are escaped for GFM: pipes would end a cell and angle brackets would
become HTML, so a machine named `<script>` shows as text there too.
"""

MARKDOWN_SPECIAL = "\\`*_[]<>|#"


def escape(text):
    text = " ".join(str(text).split())  # no line breaks inside a table row
    text = "".join("\\" + c if c in MARKDOWN_SPECIAL else c for c in text)
    return text.replace("&", "&amp;")


def table(columns, rows):
    lines = ["| " + " | ".join(escape(column) or " " for column in columns) + " |",
             "|" + "|".join(" --- " for _ in columns) + "|"]
    for cells in rows:
        lines.append("| " + " | ".join(escape(cell) for cell in cells) + " |")
    return "\n".join(lines)


def render_table(report_table, level="###"):
    if report_table is None or report_table.empty:
        return ""
    blocks = [f"{level} {escape(report_table.title)}"]
    if report_table.note:
        blocks.append(escape(report_table.note))
    for heading, columns, rows in report_table.parts():
        if heading is not None:
            blocks.append(f"{level}# {escape(heading)}")
        blocks.append(table(columns, [cells for _, cells in rows]))
    return "\n\n".join(blocks)


def render_markdown(report, figures=()):
    """The Markdown document; `report` is a sidebyside.report.build.Report, `figures` [(relative PNG path, title)]."""
    blocks = ["## sidebyside report"]
    sources = "; ".join(f"{escape(source.name)} ({escape(source.format)}, machine {escape(source.machine)})"
                        for source in report.sources)
    blocks.append(f"Built {escape(report.built)} from {sources}.")
    for machine, lines in report.warnings:
        where = f" ({escape(machine)})" if len(report.findings) > 1 else ""
        # One quoted paragraph per warning (an empty ">" line between keeps them apart in GFM).
        blocks.append("\n>\n".join(f"> **Warning{where}:** {escape(line)}" for line in lines))
    for machine, lines in report.notices:
        where = f"{escape(machine)}: " if len(report.findings) > 1 else ""
        blocks.append("\n".join(f"{where}{escape(line)}" for line in lines))
    choice = render_table(report.tables.get("choice"))
    if choice:
        blocks.append(choice)
    for machine, sentences in report.findings:
        if len(report.findings) > 1:
            blocks.append(f"**{escape(machine)}**")
        blocks.append("\n".join(f"- {escape(sentence)}" for sentence in sentences))
    for name in ("summary", "tuned", "machines", "timing"):
        block = render_table(report.tables.get(name))
        if block:
            blocks.append(block)
    for section in report.sections:  # the other workloads' own tables
        for own in section.tables:
            block = render_table(own)
            if block:
                blocks.append(block)
    if figures:
        blocks.append("### Figures")
        blocks.append("\n\n".join(f"![{escape(title)}]({path})" for path, title in figures))
    return "\n\n".join(blocks) + "\n"
