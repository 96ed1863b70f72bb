"""The page's interactive charts: plotly figures of chartdata.py's panels.

Each chart is a plotly figure serialized with plotly.io.to_json and embedded
in the page as JSON (sidebyside/report/html.py escapes it for its <script> block);
plotly.js, inlined once, draws it. Hovering shows the values, clicking a
legend entry hides or shows that implementation in every subplot of the
chart (its traces share a legend group), and buttons above the chart switch
its axes between log and linear.

Plotly reads a subset of HTML in trace names, titles and tick labels, so
every name from a result file passes through `label`: escaped, it shows as
the text it is and cannot become markup.
"""

import html
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from sidebyside.report.chartdata import DEVICE_DASH
from sidebyside.results import one_line

FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, DejaVu Sans, sans-serif", size=12)
AXIS = dict(showgrid=True, gridcolor="#e5e9ee", zeroline=False, linecolor="#aab4bf", showline=True, automargin=True)


@dataclass
class InteractiveChart:
    id: str
    title: str
    caption: str
    alt: str
    figure_json: str  # plotly.io.to_json of the figure, not yet escaped for HTML


def label(text, limit=48):
    """A name as plotly text: one line, shortened, HTML-escaped (plotly turns &lt; back into <)."""
    return html.escape(one_line(text, limit), quote=False)


def scale_buttons(axes, name, x, y=1.1):
    """Buttons that switch `axes` (layout names like "yaxis2") between log and linear."""
    return dict(
        type="buttons", direction="right", showactive=True, active=0, x=x, y=y, xanchor="left",
        yanchor="bottom", pad=dict(r=4, t=0, b=4), font=dict(size=11),
        buttons=[dict(label=f"{name}: {scale}", method="relayout",
                      args=[{f"{axis}.type": scale for axis in axes}]) for scale in ("log", "linear")],
    )


def layout(figure, panel, height, menus, margin_top=110):
    figure.update_layout(
        template="none", font=FONT, height=height, margin=dict(l=70, r=20, t=margin_top, b=70),
        title=dict(text=label(panel.title, 120), x=0, xanchor="left", y=0.99, yanchor="top"),
        legend=dict(font=dict(size=11), itemclick="toggle", itemdoubleclick="toggleothers"),
        hoverlabel=dict(namelength=-1), updatemenus=menus, plot_bgcolor="white", paper_bgcolor="white",
    )
    figure.update_xaxes(**AXIS)
    figure.update_yaxes(**AXIS)


def serialized(figure, panel):
    return InteractiveChart(panel.id, panel.title, panel.caption, panel.alt, pio.to_json(figure, validate=True))


# ----------------------------------------------------------------------------
# Loss curves and agreement
# ----------------------------------------------------------------------------


def loss_chart(panel):
    reference_name = label(panel.reference_name or "the reference", 80)
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "Loss per step", f"Relative difference from {reference_name}" if panel.reference is not None
        else "Relative difference"))
    if panel.reference is not None:
        figure.add_trace(go.Scatter(
            y=panel.reference, name=reference_name, mode="lines", line=dict(color="black", dash="dot", width=1.5),
            legendgroup="reference", hovertemplate="step %{x}<br>loss %{y:.7g}"), row=1, col=1)
    for number, curve in enumerate(panel.curves):
        name = label(curve.implementation) + (f" ({curve.note})" if curve.note else "")
        group = f"curve-{number}"
        figure.add_trace(go.Scatter(
            y=curve.losses, name=name, mode="lines", line=dict(color=curve.colour, width=1.5), legendgroup=group,
            hovertemplate="step %{x}<br>loss %{y:.7g}"), row=1, col=1)
        if curve.last_finite is not None:
            figure.add_trace(go.Scatter(
                x=[curve.last_finite], y=[curve.losses[curve.last_finite]], mode="markers", showlegend=False,
                marker=dict(symbol="x", size=10, color=curve.colour), legendgroup=group, name=name,
                hovertemplate="last finite loss at step %{x}: %{y:.7g}"), row=1, col=1)
        if curve.difference is not None:
            figure.add_trace(go.Scatter(
                y=curve.difference, name=name, mode="lines", line=dict(color=curve.colour, width=1.2),
                legendgroup=group, showlegend=False,
                hovertemplate="step %{x}<br>relative difference %{y:.3e}"), row=1, col=2)
    if panel.reference is None:
        figure.add_annotation(text="no reference trajectory in this file", showarrow=False,
                              xref="x2 domain", yref="y2 domain", x=0.5, y=0.5)
    figure.update_xaxes(title_text="step")
    figure.update_yaxes(type="log", exponentformat="power")
    figure.update_yaxes(title_text="loss (sum of squared errors)", row=1, col=1)
    figure.update_yaxes(title_text="|loss − reference| / reference", row=1, col=2)
    layout(figure, panel, 460, [scale_buttons(["yaxis", "yaxis2"], "y axes", 0)])
    return serialized(figure, panel)


# ----------------------------------------------------------------------------
# Timing bars
# ----------------------------------------------------------------------------


def timing_chart(panel):
    rows = len(panel.bars)
    titles = []
    for bars in panel.bars:
        device = label(bars.device, 40)
        titles += [f"{device}: per step, synchronized", f"{device}: loop throughput"]
    figure = make_subplots(rows=rows, cols=2, subplot_titles=titles, horizontal_spacing=0.16,
                           vertical_spacing=min(0.25, 0.6 / rows))
    shown = set()
    for line, bars in enumerate(panel.bars, start=1):
        names = [label(name) + (" ±" if unstable else "") for name, unstable in zip(bars.implementations,
                                                                                     bars.unstable)]
        for index, implementation in enumerate(bars.implementations):
            common = dict(orientation="h", y=[names[index]], legendgroup=implementation, name=label(implementation),
                          marker=dict(color=bars.colours[index],
                                      pattern=dict(shape="/" if bars.unstable[index] else "")))
            figure.add_trace(go.Bar(
                x=[bars.medians[index]], showlegend=implementation not in shown,
                error_x=dict(type="data", symmetric=False, array=[bars.upper[index]],
                             arrayminus=[bars.lower[index]], thickness=1, width=3, color="#333"),
                customdata=[bars.iqr[index]],
                hovertemplate="median %{x:.3s}s per step<br>IQR %{customdata:.3s}s", **common), row=line, col=1)
            shown.add(implementation)
            figure.add_trace(go.Bar(x=[bars.loops[index]], showlegend=False,
                                    hovertemplate="%{x:.3s}s per step in the loop", **common), row=line, col=2)
        for column in (1, 2):
            figure.update_yaxes(categoryorder="array", categoryarray=names, row=line, col=column)
    figure.update_xaxes(type="log", ticksuffix="s", exponentformat="SI")
    figure.update_xaxes(title_text="time per step (median, IQR bars)", row=rows, col=1)
    figure.update_xaxes(title_text="time per step in a loop that syncs once", row=rows, col=2)
    figure.update_layout(barmode="overlay", bargap=0.25, legend_traceorder="reversed")  # top down, as the bars
    longest = max((len(bars.implementations) for bars in panel.bars), default=1)
    axes = [f"xaxis{number if number > 1 else ''}" for number in range(1, 2 * rows + 1)]
    layout(figure, panel, 150 + rows * (60 + 26 * longest), [scale_buttons(axes, "time axes", 0)])
    return serialized(figure, panel)


# ----------------------------------------------------------------------------
# The size sweep
# ----------------------------------------------------------------------------


def sweep_chart(panel):
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                           subplot_titles=("Step time", "Throughput against the measured peak"))
    low = np.nanmin([np.nanmin(line.flops) for line in panel.lines]) if panel.lines else 1.0
    high = np.nanmax([np.nanmax(line.flops) for line in panel.lines]) if panel.lines else 1.0
    for number, line in enumerate(panel.lines):
        name = label(f"{line.implementation} ({line.device})")
        style = dict(color=line.colour, dash=DEVICE_DASH.get(line.device, "dot"), width=1.5)
        sizes = [label(size, 60) for size in line.sizes]
        group = f"line-{number}"
        figure.add_trace(go.Scatter(
            x=line.flops, y=line.medians, name=name, mode="lines+markers", line=style, marker=dict(size=6),
            legendgroup=group, customdata=sizes,
            hovertemplate="size %{customdata}<br>%{x:.3s} FLOPs per step<br>%{y:.3s}s per step"), row=1, col=1)
        if line.fitted is not None:
            figure.add_trace(go.Scatter(
                x=line.fitted[0], y=line.fitted[1], name=name, mode="lines", showlegend=False, legendgroup=group,
                line=dict(color=line.colour, dash="dot", width=1), opacity=0.7,
                hovertemplate="fitted: %{y:.3s}s per step at %{x:.3s} FLOPs<extra></extra>"), row=1, col=1)
        figure.add_trace(go.Scatter(
            x=line.flops, y=line.gflops, name=name, mode="lines+markers", line=style, marker=dict(size=6),
            legendgroup=group, showlegend=False, customdata=sizes,
            hovertemplate="size %{customdata}<br>%{x:.3s} FLOPs per step<br>%{y:.4g} GFLOP/s"), row=1, col=2)
    for device, peak in panel.peaks:
        name = label(f"measured {device} {panel.dtype} peak {peak:.4g} GFLOP/s", 70)
        figure.add_trace(go.Scatter(
            x=[low, high], y=[peak, peak], name=name, mode="lines",
            line=dict(color="black", width=1, dash=DEVICE_DASH.get(device, "dot")),
            hovertemplate=f"{name}<extra></extra>"), row=1, col=2)
    crossing = panel.crossing
    if crossing and crossing["kind"] == "crossover":
        times = [value for line in panel.lines for value in line.medians if np.isfinite(value)]
        figure.add_trace(go.Scatter(
            x=[crossing["flops"]] * 2, y=[min(times), max(times)], name="GPU faster from here", mode="lines",
            line=dict(color="grey", dash="dot", width=1.5),
            hovertemplate=f"GPU faster from {label(crossing['size'], 60)}<extra></extra>"), row=1, col=1)
    figure.update_xaxes(type="log", title_text="problem size (FLOPs per step)", exponentformat="power")
    figure.update_yaxes(type="log", exponentformat="power")
    figure.update_yaxes(title_text="time per step (median)", ticksuffix="s", exponentformat="SI", row=1, col=1)
    figure.update_yaxes(title_text="GFLOP/s", row=1, col=2)
    layout(figure, panel, 480, [scale_buttons(["xaxis", "xaxis2"], "x axes", 0),
                                scale_buttons(["yaxis", "yaxis2"], "y axes", 0.3)])
    return serialized(figure, panel)


# ----------------------------------------------------------------------------
# At a glance, and where the time goes
# ----------------------------------------------------------------------------


def glance_chart(panel):
    figure = go.Figure()
    names = [label(bar.implementation) + (" ±" if bar.unstable else "") for bar in panel.bars]
    for name, bar in zip(names, panel.bars):
        tuned = f"tuned {label(bar.tuned_from)}" if bar.tuned_from else ""
        figure.add_trace(go.Bar(
            x=[bar.median], y=[name], orientation="h", name=label(bar.implementation),
            marker=dict(color=bar.colour, pattern=dict(shape="/" if bar.tuned_from else "")),
            error_x=dict(type="data", symmetric=False, array=[max(bar.high - bar.median, 0)],
                         arrayminus=[max(bar.median - bar.low, 0)], thickness=1, width=3, color="#333"),
            customdata=[[bar.low, bar.high, tuned]], showlegend=False,
            hovertemplate="median %{x:.3s}s per step<br>rounds %{customdata[0]:.3s}s to %{customdata[1]:.3s}s"
                          "<br>%{customdata[2]}<extra></extra>"))
    if panel.limit_s:
        figure.add_vline(x=panel.limit_s, line=dict(color="black", dash="dash", width=1.2))
        figure.add_annotation(x=np.log10(panel.limit_s), y=1, yref="paper", text="compute limit", showarrow=False,
                              xanchor="left", yanchor="bottom", font=dict(size=11))
    figure.update_yaxes(categoryorder="array", categoryarray=list(reversed(names)))
    ends = [x for bar in panel.bars for x in (bar.low, bar.high)] + ([panel.limit_s] if panel.limit_s else [])
    ends = [x for x in ends if np.isfinite(x) and x > 0]
    span = [np.log10(min(ends)) - 0.1, np.log10(max(ends)) + 0.05] if ends else None  # the limit in view
    figure.update_xaxes(type="log", ticksuffix="s", exponentformat="SI", range=span,
                        title_text="time per step (median; whiskers: fastest and slowest round)")
    figure.update_layout(bargap=0.3)
    layout(figure, panel, 130 + 24 * max(len(panel.bars), 3), [scale_buttons(["xaxis"], "time axis", 0)],
           margin_top=80)
    return serialized(figure, panel)


def overhead_chart(panel):
    figure = go.Figure()
    names = [label(bar.implementation) for bar in panel.bars]
    for part, colour, text in (("overhead_s", None, "fixed cost per step"), ("arithmetic_s", "light", "arithmetic")):
        figure.add_trace(go.Bar(
            x=[getattr(bar, part) for bar in panel.bars], y=names, orientation="h", name=text,
            marker=dict(color=[bar.colour for bar in panel.bars], opacity=1.0 if colour is None else 0.45,
                        line=dict(color=[bar.colour for bar in panel.bars], width=1)),
            showlegend=False, hovertemplate=f"{text} %{{x:.3s}}s<extra></extra>"))
    figure.add_trace(go.Scatter(
        x=[bar.median for bar in panel.bars], y=names, mode="markers", name="measured median", showlegend=False,
        marker=dict(symbol="diamond", size=8, color="black"), hovertemplate="measured %{x:.3s}s<extra></extra>"))
    figure.update_yaxes(categoryorder="array", categoryarray=list(reversed(names)))
    figure.update_xaxes(ticksuffix="s", exponentformat="SI", title_text="time per step")
    figure.update_layout(barmode="stack", bargap=0.3)
    layout(figure, panel, 150 + 24 * max(len(panel.bars), 3), [], margin_top=60)
    return serialized(figure, panel)


def interactive_charts(panels):
    """{kind: [InteractiveChart]} from chartdata.all_panels' panels ("glance", "overhead", "loss", ...)."""
    draw = {"glance": glance_chart, "overhead": overhead_chart, "loss": loss_chart, "timing": timing_chart,
            "sweep": sweep_chart}
    return {kind: [draw[kind](panel) for panel in kind_panels] for kind, kind_panels in panels.items()}
