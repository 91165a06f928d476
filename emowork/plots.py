"""Plotly figures, shared by notebooks and the run report. Each function returns a ``go.Figure``."""

from __future__ import annotations

from typing import Any, Sequence

import plotly.graph_objects as go

from .check import CheckReport

SITE_COLORS = {
    "resid_pre": "#7f7f7f",
    "resid_mid": "#1f77b4",
    "resid_post": "#d62728",
    "attn_out": "#2ca02c",
    "mlp_out": "#9467bd",
}


def check_errors(report: CheckReport) -> go.Figure:
    """Bar chart: the largest relative error of each hook self-check against its tolerance (log scale).

    Shape checks with zero error are drawn at a floor of 1e-12 so that they stay visible.
    """
    names = [r.name for r in report.results]
    errors = [max(r.max_rel_error, 1e-12) if r.max_rel_error == r.max_rel_error else 1.0 for r in report.results]
    colors = ["#2ca02c" if r.ok else "#d62728" for r in report.results]
    fig = go.Figure()
    fig.add_bar(x=names, y=errors, marker_color=colors, name="largest relative error",
                hovertext=[f"{r.detail}<br>abs err {r.max_abs_error:.2e}" for r in report.results])
    fig.add_scatter(x=names, y=[r.tolerance for r in report.results], mode="markers", name="tolerance (or minimum effect)",
                    marker={"symbol": "line-ew-open", "size": 28, "color": "black", "line": {"width": 2}})
    fig.update_layout(
        title=f"Hook self-check, {report.model} ({report.dtype}): {'all pass' if report.ok else 'FAILED'}",
        yaxis={"type": "log", "title": "relative error (max |a-b| / max |b|)"},
        xaxis={"tickangle": -25}, height=480, margin={"b": 160},
    )
    return fig


def residual_profile(rms: dict[str, Sequence[float]], model: str) -> go.Figure:
    """Lines: RMS of the last-token activation per layer, one line per site (``{site: [n_layers]}``)."""
    fig = go.Figure()
    for site, values in rms.items():
        fig.add_scatter(x=list(range(len(values))), y=list(values), mode="lines+markers", name=site,
                        line={"color": SITE_COLORS.get(site)})
    fig.update_layout(
        title=f"Size of the residual stream and of each sublayer's write, last prompt token ({model})",
        xaxis_title="layer", yaxis_title="RMS over d_model (mean over prompts)", yaxis_type="log", height=450,
    )
    return fig


def save_figure(fig: go.Figure, path: Any) -> None:
    """Write ``fig`` as a standalone interactive HTML file that loads plotly.min.js from the same folder.

    No network is needed to view it: plotly.js is written once beside the figures.
    """
    fig.write_html(str(path), include_plotlyjs="directory", full_html=True)


def token_heatmap(tokens: Sequence[str], values: Any, layers: Sequence[int], title: str, colorbar: str = "RMS") -> go.Figure:
    """Heatmap of one value per (layer, token): ``values`` is ``[n_layers, seq]``; tokens label the x axis."""
    labels = [f"{i}:{t!r}"[:18] for i, t in enumerate(tokens)]
    fig = go.Figure(go.Heatmap(z=[list(map(float, row)) for row in values], x=labels, y=[str(l) for l in layers],
                               colorscale="Viridis", colorbar={"title": colorbar}))
    fig.update_layout(title=title, xaxis={"title": "token", "tickangle": -60}, yaxis={"title": "layer"}, height=520)
    return fig


def dataset_counts(table: Sequence[dict[str, Any]], title: str) -> go.Figure:
    """Bar chart: skeletons per theme (each gives three groups: positive, neutral, negative)."""
    themes = [row["theme"] for row in table]
    fig = go.Figure(go.Bar(x=themes, y=[row["skeletons"] for row in table], text=[row["skeletons"] for row in table],
                           marker_color="#4a78c2"))
    fig.update_layout(title=title, xaxis_title="theme", yaxis_title="skeletons (x3 valences = groups)", height=400)
    return fig


def length_histograms(lengths: dict[str, Sequence[int]], unit: str, title: str) -> go.Figure:
    """Overlaid histograms of text lengths, one trace per field (e.g. scenario, event.positive, ...)."""
    fig = go.Figure()
    for name, values in lengths.items():
        fig.add_histogram(x=list(values), name=name, opacity=0.6, nbinsx=30)
    fig.update_layout(barmode="overlay", title=title, xaxis_title=f"length ({unit})", yaxis_title="count", height=420)
    return fig


def accuracy_heatmap(cells: dict[str, dict[str, dict[str, float]]], title: str) -> go.Figure:
    """Heatmap of accuracy per emotion (rows) x valence (columns), cells labelled "acc [low, high]".

    ``cells[emotion][valence] = {"accuracy", "low", "high", "n"}``.
    """
    emotions = list(cells)
    valences = list(next(iter(cells.values())))
    z = [[cells[e][v]["accuracy"] for v in valences] for e in emotions]
    text = [[f"{cells[e][v]['accuracy']:.2f}<br>[{cells[e][v]['low']:.2f}, {cells[e][v]['high']:.2f}]<br>n={cells[e][v]['n']}"
             for v in valences] for e in emotions]
    fig = go.Figure(go.Heatmap(z=z, x=valences, y=emotions, text=text, texttemplate="%{text}", zmin=0, zmax=1,
                               colorscale="Blues", colorbar={"title": "accuracy"}))
    fig.update_layout(title=title, xaxis_title="valence of the event", yaxis_title="instructed emotion", height=480,
                      yaxis={"autorange": "reversed"})
    return fig


def accuracy_bars(by_name: dict[str, dict[str, float]], title: str, reference: float | None = None,
                  reference_label: str = "chance") -> go.Figure:
    """Bars of accuracy with 95% interval whiskers (``{name: {accuracy, low, high}}``), optional reference line."""
    names = list(by_name)
    acc = [by_name[n]["accuracy"] for n in names]
    fig = go.Figure(go.Bar(x=names, y=acc, error_y={"type": "data", "symmetric": False,
                                                     "array": [by_name[n]["high"] - by_name[n]["accuracy"] for n in names],
                                                     "arrayminus": [by_name[n]["accuracy"] - by_name[n]["low"] for n in names]},
                           marker_color="#4a78c2", text=[f"{a:.2f}" for a in acc], textposition="outside"))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", annotation_text=reference_label)
    fig.update_layout(title=title, yaxis={"range": [0, 1.05], "title": "accuracy (95% bootstrap interval)"}, height=420)
    return fig


def confusion_heatmap(matrix: Any, rows: Sequence[str], columns: Sequence[str], title: str, row_title: str = "true",
                      column_title: str = "predicted", normalise: bool = True) -> go.Figure:
    """Heatmap of a confusion matrix (row-normalised shares with counts in the cells when ``normalise``)."""
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.clip(counts.sum(1, keepdims=True), 1, None) if normalise else counts
    text = [[f"{shares[i, j]:.2f}<br>({int(counts[i, j])})" if normalise else f"{int(counts[i, j])}" for j in range(counts.shape[1])]
            for i in range(counts.shape[0])]
    fig = go.Figure(go.Heatmap(z=shares.tolist(), x=list(columns), y=list(rows), text=text, texttemplate="%{text}",
                               colorscale="Blues", zmin=0, zmax=1 if normalise else None))
    fig.update_layout(title=title, xaxis_title=column_title, yaxis_title=row_title, height=480, yaxis={"autorange": "reversed"})
    return fig
