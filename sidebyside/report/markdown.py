"""The report as GitHub-flavoured Markdown, to paste into an issue.

One loop over the sections (tables.Section) that are meant for it (the
summary, the timing, each other workload's own; not the environment,
agreement, code), over the blocks of each that are; a section that failed
is its one line. The charts follow as links to the PNG files build.py
writes beside report.md.

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


def render_text(text):
    """A tables.Text: sub-headings in bold, findings as a list, warnings quoted, other lines as they are."""
    lines = [escape(line) for line in text.lines]
    if text.css == "heading":
        return "\n\n".join(f"**{line}**" for line in lines)
    if text.css == "findings":
        return "\n".join(f"- {line}" for line in lines)
    if text.css == "details":  # folded on the page; a list under its lead here
        return f"**{escape(text.lead)}**\n\n" + "\n".join(f"- {line}" for line in lines)
    lead = f"**{escape(text.lead)}** " if text.lead else ""
    if text.css == "warning":  # one quoted paragraph each (an empty ">" line between keeps them apart in GFM)
        return "\n>\n".join(f"> {lead}{line}" for line in lines)
    return "\n".join(lead + line for line in lines)


def render_figures(block, figures, placed):
    """The PNG of each of the block's charts, where it is in the section (`placed` collects their ids)."""
    shown = [chart.id for chart in block.charts if chart.id in figures]
    placed.update(shown)
    return "\n\n".join(f"![{escape(figures[name][1])}]({figures[name][0]})" for name in shown)


def render_section(section, figures=None, placed=None):
    if section.failed:
        return escape(section.failed)
    blocks = [f"## {escape(section.title)}"]
    for block in section.blocks:
        if block is not None and block.kind == "table" and block.markdown:
            blocks.append(render_table(block))
        elif block is not None and block.kind == "text" and block.markdown and block.lines:
            blocks.append(render_text(block))
        elif block is not None and block.kind == "figures" and figures:
            blocks.append(render_figures(block, figures, placed))
    return "\n\n".join(block for block in blocks if block)


def render_markdown(report, figures=None):
    """The Markdown document; `report` is a sidebyside.report.build.Report, `figures` {chart id: (relative PNG
    path, title)}: each figure where its section shows the chart, those no section shows at the end."""
    figures = figures or {}
    sources = "; ".join(f"{escape(source.name)} ({escape(source.format)}, machine {escape(source.machine)})"
                        for source in report.sources)
    blocks = ["## sidebyside report", f"Built {escape(report.built)} from {sources}."]
    placed = set()
    blocks += [render_section(section, figures, placed) for section in report.sections
               if section.markdown or section.failed]
    rest = [(path, title) for name, (path, title) in figures.items() if name not in placed]
    if rest:
        blocks.append("### Figures")
        blocks.append("\n\n".join(f"![{escape(title)}]({path})" for path, title in rest))
    return "\n\n".join(blocks) + "\n"
