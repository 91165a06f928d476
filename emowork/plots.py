"""Plotly figures, shared by notebooks and the run report. Each function returns a ``go.Figure``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from .hooks.self_check import CheckReport
from .palette import DIVERGING_SCALE, GREY, METHOD_COLORS, OKABE_ITO, SEQUENCE, SEQUENTIAL_SCALE, STATUS_COLORS, color_for
from .storage import atomic_write_text

SITE_COLORS = {
    "resid_pre": GREY,
    "resid_mid": OKABE_ITO["blue"],
    "resid_post": OKABE_ITO["vermillion"],
    "attn_out": OKABE_ITO["bluish_green"],
    "mlp_out": OKABE_ITO["reddish_purple"],
}


def styled(fig: go.Figure) -> go.Figure:
    """The house style of every figure: the colour-blind-safe colour sequence and a plain white template."""
    fig.update_layout(template="plotly_white", colorway=SEQUENCE, font={"family": "Arial, Helvetica, sans-serif"})
    return fig


def check_errors(report: CheckReport) -> go.Figure:
    """Bar chart: the largest relative error of each hook self-check against its tolerance (log scale).

    Shape checks with zero error are drawn at a floor of 1e-12 so that they stay visible.
    """
    names = [r.name for r in report.results]
    errors = [max(r.max_rel_error, 1e-12) if r.max_rel_error == r.max_rel_error else 1.0 for r in report.results]
    colors = [STATUS_COLORS["ok"] if r.ok else STATUS_COLORS["fail"] for r in report.results]
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
    return styled(fig)


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
    return styled(fig)


def use_offline_renderer() -> None:
    """Show figures in notebooks so that they also draw in pages exported without network: each figure's output
    carries plotly's JSON (for JupyterLab) and HTML drawn by the plotly.js embedded once in the notebook."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype+notebook"


def save_figure(fig: go.Figure, path: Any, with_json: bool = True) -> None:
    """Write ``fig`` as a standalone interactive HTML file that loads plotly.min.js from the same folder, and (unless
    ``with_json`` is False) its plotly JSON beside it (``<stem>.json``, from which ``emowork figures`` writes SVG/PDF).

    No network is needed to view it: plotly.js is written once beside the figures. Both files are written atomically.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.write_html(str(tmp), include_plotlyjs="directory", full_html=True)
    tmp.replace(path)
    if with_json:
        atomic_write_text(path.with_suffix(".json"), fig.to_json())


def token_heatmap(tokens: Sequence[str], values: Any, layers: Sequence[int], title: str, colorbar: str = "RMS") -> go.Figure:
    """Heatmap of one value per (layer, token): ``values`` is ``[n_layers, seq]``; tokens label the x axis."""
    labels = [f"{i}:{t!r}"[:18] for i, t in enumerate(tokens)]
    fig = go.Figure(go.Heatmap(z=[list(map(float, row)) for row in values], x=labels, y=[str(l) for l in layers],
                               colorscale=SEQUENTIAL_SCALE, colorbar={"title": colorbar}))
    fig.update_layout(title=title, xaxis={"title": "token", "tickangle": -60}, yaxis={"title": "layer"}, height=520)
    return styled(fig)


def dataset_counts(table: Sequence[dict[str, Any]], title: str) -> go.Figure:
    """Bar chart: skeletons per theme (each gives three groups: positive, neutral, negative)."""
    themes = [row["theme"] for row in table]
    fig = go.Figure(go.Bar(x=themes, y=[row["skeletons"] for row in table], text=[row["skeletons"] for row in table],
                           marker_color=OKABE_ITO["blue"]))
    fig.update_layout(title=title, xaxis_title="theme", yaxis_title="skeletons (x3 valences = groups)", height=400)
    return styled(fig)


def length_histograms(lengths: dict[str, Sequence[int]], unit: str, title: str) -> go.Figure:
    """Overlaid histograms of text lengths, one trace per field (e.g. scenario, event.positive, ...)."""
    fig = go.Figure()
    for k, (name, values) in enumerate(lengths.items()):
        fig.add_histogram(x=list(values), name=name, opacity=0.6, nbinsx=30, marker_color=SEQUENCE[k % len(SEQUENCE)])
    fig.update_layout(barmode="overlay", title=title, xaxis_title=f"length ({unit})", yaxis_title="count", height=420)
    return styled(fig)


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
                               colorscale=SEQUENTIAL_SCALE, colorbar={"title": "accuracy"}))
    fig.update_layout(title=title, xaxis_title="valence of the event", yaxis_title="instructed emotion", height=480,
                      yaxis={"autorange": "reversed"})
    return styled(fig)


def accuracy_bars(by_name: dict[str, dict[str, float]], title: str, reference: float | None = None,
                  reference_label: str = "chance") -> go.Figure:
    """Bars of accuracy with 95% interval whiskers (``{name: {accuracy, low, high}}``), optional reference line."""
    names = list(by_name)
    acc = [by_name[n]["accuracy"] for n in names]
    fig = go.Figure(go.Bar(x=names, y=acc, error_y={"type": "data", "symmetric": False,
                                                     "array": [by_name[n]["high"] - by_name[n]["accuracy"] for n in names],
                                                     "arrayminus": [by_name[n]["accuracy"] - by_name[n]["low"] for n in names]},
                           marker_color=[color_for(n) for n in names],
                           text=[f"{a:.2f}" for a in acc], textposition="outside"))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", annotation_text=reference_label)
    fig.update_layout(title=title, yaxis={"range": [0, 1.05], "title": "accuracy (95% bootstrap interval)"}, height=420)
    return styled(fig)


def confusion_heatmap(matrix: Any, rows: Sequence[str], columns: Sequence[str], title: str, row_title: str = "true",
                      column_title: str = "predicted", normalise: bool = True) -> go.Figure:
    """Heatmap of a confusion matrix (row-normalised shares with counts in the cells when ``normalise``)."""
    import numpy as np

    counts = np.asarray(matrix, dtype=float)
    shares = counts / np.clip(counts.sum(1, keepdims=True), 1, None) if normalise else counts
    text = [[f"{shares[i, j]:.2f}<br>({int(counts[i, j])})" if normalise else f"{int(counts[i, j])}" for j in range(counts.shape[1])]
            for i in range(counts.shape[0])]
    fig = go.Figure(go.Heatmap(z=shares.tolist(), x=list(columns), y=list(rows), text=text, texttemplate="%{text}",
                               colorscale=SEQUENTIAL_SCALE, zmin=0, zmax=1 if normalise else None))
    fig.update_layout(title=title, xaxis_title=column_title, yaxis_title=row_title, height=480, yaxis={"autorange": "reversed"})
    return styled(fig)


def layer_lines(series: dict[str, Sequence[float]], title: str, yaxis: str, reference: float | None = None,
                reference_label: str = "", dashed: Sequence[str] = ()) -> go.Figure:
    """One line per named series over layers (``{name: [n_layers]}``); ``dashed`` names are drawn dashed (controls)."""
    fig = go.Figure()
    for k, (name, values) in enumerate(series.items()):
        fig.add_scatter(x=list(range(len(values))), y=[float(v) for v in values], mode="lines+markers", name=name,
                        line={"dash": "dash" if name in dashed else "solid", "color": color_for(name, k)})
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dot", line_color="grey", annotation_text=reference_label)
    fig.update_layout(title=title, xaxis_title="layer", yaxis_title=yaxis, height=430)
    return styled(fig)


def _layer_slider(n_layers: int, traces_per_layer: int, start: int) -> list[dict[str, Any]]:
    steps = []
    for layer in range(n_layers):
        visible = [False] * (n_layers * traces_per_layer)
        for k in range(traces_per_layer):
            visible[layer * traces_per_layer + k] = True
        steps.append({"method": "update", "args": [{"visible": visible}], "label": str(layer)})
    return [{"active": start, "currentvalue": {"prefix": "layer "}, "steps": steps}]


def emotion_cosine_slider(cos: Any, emotions: Sequence[str], title: str, start: int | None = None) -> go.Figure:
    """Heatmap of the emotion x emotion cosine matrix with a layer slider (``cos`` ``[L, E, E]``)."""
    n_layers = len(cos)
    start = n_layers // 2 if start is None else start
    fig = go.Figure()
    for layer in range(n_layers):
        z = [[float(v) for v in row] for row in cos[layer]]
        fig.add_heatmap(z=z, x=list(emotions), y=list(emotions), zmin=-1, zmax=1, colorscale=DIVERGING_SCALE,
                        text=[[f"{v:.2f}" for v in row] for row in z], texttemplate="%{text}", visible=layer == start)
    fig.update_layout(title=title, sliders=_layer_slider(n_layers, 1, start), height=520, yaxis={"autorange": "reversed"})
    return styled(fig)


def similarity_heatmap(labels: Sequence[str], matrix: Any, title: str) -> go.Figure:
    """A labelled square similarity heatmap (e.g. site x site cosines: attn0, mlp0, attn1, ...)."""
    fig = go.Figure(go.Heatmap(z=[[float(v) for v in row] for row in matrix], x=list(labels), y=list(labels), zmin=-1, zmax=1,
                               colorscale=DIVERGING_SCALE))
    fig.update_layout(title=title, height=650, yaxis={"autorange": "reversed"})
    return styled(fig)


def pca_slider(coords_by_layer: Sequence[Any], explained_by_layer: Sequence[Any], labels: Sequence[str], title: str,
               start: int | None = None) -> go.Figure:
    """Scatter of 2-D PCA coordinates coloured by label, one frame per layer selected with a slider."""
    names = list(dict.fromkeys(labels))
    n_layers = len(coords_by_layer)
    start = n_layers // 2 if start is None else start
    fig = go.Figure()
    for layer, coords in enumerate(coords_by_layer):
        for k, name in enumerate(names):
            idx = [i for i, lab in enumerate(labels) if lab == name]
            fig.add_scatter(x=[float(coords[i][0]) for i in idx], y=[float(coords[i][1]) for i in idx], mode="markers",
                            name=name, legendgroup=name, showlegend=layer == start, visible=layer == start,
                            marker={"color": color_for(name, k), "size": 6, "opacity": 0.7})
    fig.update_layout(title=title, xaxis_title="PC1", yaxis_title="PC2", height=520,
                      sliders=_layer_slider(n_layers, len(names), start))
    return styled(fig)


def steering_tradeoff(settings: Sequence[dict[str, Any]], baseline: dict[str, Any], title: str,
                      reference: float | None = None, reference_label: str = "") -> go.Figure:
    """Accuracy (with 95% interval) against median perplexity, one point per steering setting, plus the baseline."""
    fig = go.Figure()
    fig.add_scatter(x=[s["perplexity"] for s in settings], y=[s["accuracy"] for s in settings], mode="markers+text",
                    text=[f"a={s['setting']['alpha']:g}" for s in settings], textposition="top center", name="steered",
                    error_y={"type": "data", "symmetric": False, "array": [s["high"] - s["accuracy"] for s in settings],
                             "arrayminus": [s["accuracy"] - s["low"] for s in settings]},
                    hovertext=[f"{s['label']}<br>degenerate {s['degenerate']:.0%}" for s in settings],
                    marker={"size": 10, "color": [s["degenerate"] for s in settings], "colorscale": "Cividis", "reversescale": True, "cmin": 0,
                            "cmax": 1, "colorbar": {"title": "degenerate"}})
    fig.add_scatter(x=[baseline["perplexity"]], y=[baseline["accuracy"]], mode="markers+text", text=["unsteered"],
                    textposition="bottom center", name="unsteered", marker={"symbol": "x", "size": 12, "color": METHOD_COLORS["unsteered"]})
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", annotation_text=reference_label)
    fig.update_layout(title=title, xaxis={"title": "median perplexity of the reply under the unsteered model", "type": "log"},
                      yaxis={"title": "accuracy (judge)", "range": [0, 1.05]}, height=480)
    return styled(fig)


def grouped_accuracy(groups: dict[str, dict[str, dict[str, float]]], title: str) -> go.Figure:
    """Grouped bars with 95% intervals: ``{method: {emotion: {accuracy, low, high}}}``."""
    fig = go.Figure()
    for k, (method, cells) in enumerate(groups.items()):
        names = list(cells)
        fig.add_bar(name=method, x=names, marker_color=color_for(method, k), y=[cells[n]["accuracy"] for n in names],
                    error_y={"type": "data", "symmetric": False, "array": [cells[n]["high"] - cells[n]["accuracy"] for n in names],
                             "arrayminus": [cells[n]["accuracy"] - cells[n]["low"] for n in names]})
    fig.update_layout(title=title, barmode="group", yaxis={"range": [0, 1.05], "title": "accuracy (95% interval)"}, height=440)
    return styled(fig)


def dose_response(curves: dict[str, dict[str, dict[int, dict[str, float]]]], title: str, readout: int) -> go.Figure:
    """Subplots per (kind, operation): effect against k (log2 axis) for the top-k and random-k selections, with
    95% intervals. ``curves[f"{kind} {operation}"][selection][k] = {mean, low, high}``."""
    from plotly.subplots import make_subplots

    panels = list(curves)
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels, shared_yaxes=True)
    colors = {"top": METHOD_COLORS["top"], "random": METHOD_COLORS["random"]}
    for col, panel in enumerate(panels, 1):
        for selection, points in curves[panel].items():
            ks = sorted(points)
            fig.add_scatter(x=ks, y=[points[k]["mean"] for k in ks], mode="lines+markers", name=f"{selection}-k",
                            legendgroup=selection, showlegend=col == 1, line={"color": colors.get(selection)},
                            error_y={"type": "data", "symmetric": False, "array": [points[k]["high"] - points[k]["mean"] for k in ks],
                                     "arrayminus": [points[k]["mean"] - points[k]["low"] for k in ks]}, row=1, col=col)
        fig.update_xaxes(type="log", dtick=0.30103, title_text="k components", row=1, col=col)
    fig.update_yaxes(title_text=f"change of projection at layer {readout} / emotion signal", row=1, col=1)
    fig.add_hline(y=0, line_color="black", line_width=1)
    fig.update_layout(title=title, height=460)
    return styled(fig)


def component_heatmap(values: Any, x: Sequence[Any], y: Sequence[Any], title: str, x_title: str, y_title: str,
                      colorbar: str = "") -> go.Figure:
    """A diverging heatmap (e.g. head importance: layers x heads)."""
    z = [[float(v) for v in row] for row in values]
    peak = max((abs(v) for row in z for v in row), default=1.0) or 1.0
    fig = go.Figure(go.Heatmap(z=z, x=[str(v) for v in x], y=[str(v) for v in y], zmin=-peak, zmax=peak, colorscale=DIVERGING_SCALE,
                               colorbar={"title": colorbar}))
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=520)
    return styled(fig)


def neuron_box(rows: Sequence[dict[str, Any]], title: str) -> go.Figure:
    """Box plot of a neuron's activation by instructed emotion, one colour per valence."""
    fig = go.Figure()
    for valence in dict.fromkeys(r["valence"] for r in rows):
        sel = [r for r in rows if r["valence"] == valence]
        fig.add_box(x=[r["emotion"] for r in sel], y=[r["activation"] for r in sel], name=valence, boxpoints="all", jitter=0.3,
                    marker_color=color_for(valence))
    fig.update_layout(title=title, boxmode="group", yaxis_title="activation at the last prompt token", height=430)
    return styled(fig)


def judge_validation_figure(report: Any) -> go.Figure:
    """A judge measured against reference labels (:class:`~emowork.judge.validate.JudgeValidation`).

    Left: agreement per target emotion and overall, with 95% intervals. Right: how often the judge and the reference
    accept, per emotion and overall (a judge that is too strict sits below the reference).
    """
    from plotly.subplots import make_subplots

    names = [*report.by_emotion, "all"]
    rows = [*report.by_emotion.values(), {"n": report.n, **report.overall}]

    def bars(key: str, name: str, color: str) -> go.Bar:
        rates = [r[key] for r in rows]
        return go.Bar(x=names, y=[r.value for r in rates], name=name, marker_color=color,
                      error_y={"type": "data", "symmetric": False, "array": [r.high - r.value for r in rates],
                               "arrayminus": [r.value - r.low for r in rates]},
                      hovertext=[f"n={r['n']}" for r in rows])

    fig = make_subplots(rows=1, cols=2, subplot_titles=("agreement with the reference", "acceptance rate"))
    fig.add_trace(bars("agreement", "agreement", OKABE_ITO["blue"]), row=1, col=1)
    fig.add_trace(bars("reference_accept", "reference accepts", GREY), row=1, col=2)
    fig.add_trace(bars("judge_accept", "judge accepts", OKABE_ITO["orange"]), row=1, col=2)
    fig.update_yaxes(range=[0, 1.05], title_text="share (95% bootstrap interval)", row=1, col=1)
    fig.update_yaxes(range=[0, 1.05], row=1, col=2)
    fig.update_layout(title=f"{report.judge.get('name')} against the reference on {report.n} replies "
                            f"(kappa {report.overall['kappa'].value:.2f})", barmode="group", height=430)
    return styled(fig)


# ---------------------------------------------------------------------------------------------------- circuits
def influence_heatmap(influence: dict[str, dict[str, Sequence[float]]], stable_layers: Sequence[int], title: str) -> go.Figure:
    """Sublayer influence ``influence[emotion][site][layer]`` as one heatmap per emotion (rows attn / mlp, columns
    layers, diverging colours), the stable segment marked by a bracket above the columns."""
    from plotly.subplots import make_subplots

    emotions = list(influence)
    fig = make_subplots(rows=len(emotions), cols=1, shared_xaxes=True, subplot_titles=emotions, vertical_spacing=0.04)
    peak = max((abs(float(v)) for e in emotions for s in influence[e].values() for v in s), default=1.0) or 1.0
    for row, emotion in enumerate(emotions, 1):
        sites = list(influence[emotion])
        z = [[float(v) for v in influence[emotion][s]] for s in sites]
        fig.add_trace(go.Heatmap(z=z, x=list(range(len(z[0]))), y=sites, zmin=-peak, zmax=peak, colorscale=DIVERGING_SCALE,
                                 showscale=row == 1, colorbar={"title": "I"},
                                 hovertemplate="layer %{x} %{y}: I = %{z:.3f}<extra>" + emotion + "</extra>"), row=row, col=1)
        if stable_layers:
            fig.add_vrect(x0=min(stable_layers) - 0.5, x1=max(stable_layers) + 0.5, line_width=2, line_color="black",
                          fillcolor="rgba(0,0,0,0)", row=row, col=1)
    fig.update_xaxes(title_text="layer (black box: the stable segment)", row=len(emotions), col=1)
    fig.update_layout(title=title, height=110 * len(emotions) + 160)
    return styled(fig)


def circuit_composition(counts: dict[str, dict[str, Sequence[int]]], title: str) -> go.Figure:
    """Components per layer of each emotion's circuit: ``counts[emotion]["neuron" | "head"][layer]``; stacked
    bars (neurons solid, heads hatched) per emotion, side by side."""
    fig = go.Figure()
    for k, (emotion, parts) in enumerate(counts.items()):
        layers = list(range(len(parts["neuron"])))
        for kind, pattern in (("neuron", ""), ("head", "/")):
            fig.add_bar(x=layers, y=list(parts[kind]), name=f"{emotion} {kind}s", offsetgroup=emotion, legendgroup=emotion,
                        marker={"color": color_for(emotion, k), "pattern": {"shape": pattern}},
                        base=list(parts["neuron"]) if kind == "head" else None)
    fig.update_layout(title=title, barmode="group", xaxis_title="layer", yaxis_title="components", height=440)
    return styled(fig)


def method_comparison(conditions: dict[str, dict[str, float]], title: str,
                      references: dict[str, float] | None = None, reference_label: str = "") -> go.Figure:
    """One bar per condition with its 95% interval (``{name: {accuracy, low, high}}``; controls grey), and optional
    reference marks ``{condition: value}`` drawn as black diamonds labelled ``reference_label`` (e.g. another
    model's published numbers)."""
    names = list(conditions)
    fig = go.Figure(go.Bar(
        x=names, y=[conditions[n]["accuracy"] for n in names], marker_color=[color_for(n, i) for i, n in enumerate(names)],
        error_y={"type": "data", "symmetric": False, "array": [conditions[n]["high"] - conditions[n]["accuracy"] for n in names],
                 "arrayminus": [conditions[n]["accuracy"] - conditions[n]["low"] for n in names]}, name="measured",
        hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    if references:
        marked = [n for n in names if n in references]
        fig.add_scatter(x=marked, y=[references[n] for n in marked], mode="markers", name=reference_label or "reference",
                        marker={"symbol": "diamond", "size": 11, "color": "black"})
    fig.update_layout(title=title, yaxis={"range": [0, 1.05], "title": "accuracy (95% interval)", "tickformat": ".0%"},
                      height=460)
    return styled(fig)


def budget_curve(points: dict[int, dict[str, float]], title: str, random: dict[str, float] | None = None,
                 unsteered: dict[str, float] | None = None) -> go.Figure:
    """Accuracy against the circuit's budget per sublayer (log axis) with 95% intervals; the random-circuit and
    unsteered accuracies as dashed grey lines."""
    budgets = sorted(points)
    fig = go.Figure(go.Scatter(
        x=budgets, y=[points[b]["accuracy"] for b in budgets], mode="lines+markers", name="circuit",
        line={"color": METHOD_COLORS["circuit"]},
        error_y={"type": "data", "symmetric": False, "array": [points[b]["high"] - points[b]["accuracy"] for b in budgets],
                 "arrayminus": [points[b]["accuracy"] - points[b]["low"] for b in budgets]}))
    for name, ref in (("random circuit", random), ("unsteered", unsteered)):
        if ref is not None:
            fig.add_hline(y=ref["accuracy"], line_dash="dash", line_color=GREY, annotation_text=name)
    fig.update_xaxes(type="log", title_text="components per sublayer (budget)", tickvals=budgets)
    fig.update_layout(title=title, yaxis={"range": [0, 1.05], "title": "accuracy (95% interval)"}, height=420)
    return styled(fig)


def overlap_matrix(emotions: Sequence[str], jaccard: Any, shared: Any, title: str) -> go.Figure:
    """Jaccard index between emotions' circuits (colour) with the number of shared components as text."""
    z = [[float(v) for v in row] for row in jaccard]
    fig = go.Figure(go.Heatmap(z=z, x=list(emotions), y=list(emotions), zmin=0, zmax=1, colorscale=SEQUENTIAL_SCALE,
                               text=[[str(int(v)) for v in row] for row in shared], texttemplate="%{text}",
                               colorbar={"title": "Jaccard"}, hovertemplate="%{y} / %{x}: Jaccard %{z:.2f}, %{text} shared<extra></extra>"))
    fig.update_layout(title=title, height=440, yaxis={"autorange": "reversed"})
    return styled(fig)


GRAPH_KIND_COLORS = {"token": GREY, "head": OKABE_ITO["bluish_green"], "neuron": OKABE_ITO["reddish_purple"],
                     "error": "#D0D0D0", "target": OKABE_ITO["black"]}


def attribution_graph_figure(graph: Any, title: str | None = None, max_edges: int = 400, highlight: Sequence[int] = (),
                             notes: Sequence[str] | None = None) -> go.Figure:
    """An attribution graph (:class:`emowork.circuits.AttributionGraph`, best pruned first): tokens along the bottom,
    one row per sublayer (block L's attention on row 2L, its MLP on 2L + 1), the target on top; node size by
    influence on the target, edges coloured by sign (vermillion positive, blue negative) with width by weight; the
    ``max_edges`` heaviest edges drawn; nodes in ``highlight`` get a thick yellow outline. Hover shows a node's layer,
    index, activation, input and influence, then ``notes[i]`` (one HTML line per node, e.g. its direct write onto
    each emotion's target); each marker's ``customdata[-1]`` is its node index (for click handlers)."""
    influence, _ = graph.influence()
    n_layers = int(graph.meta.get("n_layers", max(n.layer for n in graph.nodes)))
    rows = [(-1 if n.kind == "token" else 2 * n_layers if n.kind == "target" else n.order) for n in graph.nodes]
    cells: dict[tuple[int, int], list[int]] = {}
    for i, n in enumerate(graph.nodes):
        cells.setdefault((rows[i], n.position), []).append(i)
    x = [0.0] * graph.n_nodes
    for (row, pos), members in cells.items():
        for rank, i in enumerate(members):
            x[i] = pos + (rank + 1) / (len(members) + 1) - 0.5
    y = [float(r) for r in rows]
    fig = go.Figure()
    order = sorted(range(len(graph.weights)), key=lambda m: -abs(float(graph.weights[m])))[:max_edges]
    peak = max((abs(float(graph.weights[m])) for m in order), default=1.0) or 1.0
    for sign, color in ((1, OKABE_ITO["vermillion"]), (-1, OKABE_ITO["blue"])):
        chosen = [m for m in order if np.sign(graph.weights[m]) == sign]
        for m in chosen:  # one trace per edge: plotly has no per-segment width
            s, t = int(graph.sources[m]), int(graph.targets[m])
            fig.add_trace(go.Scatter(x=[x[s], x[t]], y=[y[s], y[t]], mode="lines", hoverinfo="skip", showlegend=False,
                                     line={"color": color, "width": 0.5 + 4.5 * abs(float(graph.weights[m])) / peak}, opacity=0.55))
    top = max(float(influence.max()), 1e-12)
    for kind, color in GRAPH_KIND_COLORS.items():
        members = [i for i, n in enumerate(graph.nodes) if n.kind == kind]
        if not members:
            continue
        nodes = [graph.nodes[i] for i in members]
        fig.add_trace(go.Scatter(
            x=[x[i] for i in members], y=[y[i] for i in members], mode="markers", name=kind,
            marker={"color": color, "size": [6 + 22 * float(influence[i]) / top for i in members],
                    "line": {"width": [4 if i in highlight else 1 for i in members],
                             "color": [OKABE_ITO["yellow"] if i in highlight else "#444" for i in members]}},
            customdata=[[n.label, n.layer, n.index, n.activation, n.value, float(influence[i]), notes[i] if notes else "", i]
                        for n, i in zip(nodes, members)],
            hovertemplate="%{customdata[0]}<br>layer %{customdata[1]}, index %{customdata[2]}<br>activation %{customdata[3]:.3f}"
                          "<br>input %{customdata[4]:.3f}<br>influence %{customdata[5]:.3f} (in this graph)%{customdata[6]}<extra></extra>"))
    ticks = sorted({n.position for n in graph.nodes})
    fig.update_layout(
        title=title or f"Attribution graph: {graph.emotion} ({graph.n_nodes} nodes, {len(graph.weights)} edges)",
        xaxis={"tickmode": "array", "tickvals": ticks, "ticktext": [repr(graph.tokens[p])[1:-1][:12] if p < len(graph.tokens) else str(p) for p in ticks],
               "title": "token"},
        yaxis={"tickmode": "array", "tickvals": [-1, *range(0, 2 * n_layers, max(1, n_layers // 6) * 2), 2 * n_layers],
               "ticktext": ["tokens", *[f"L{r // 2}" for r in range(0, 2 * n_layers, max(1, n_layers // 6) * 2)], "target"],
               "title": "sublayer (attention, then MLP, per block)"},
        height=520)
    return styled(fig)


def graph_direct_writes(by_emotion: dict[str, dict[str, Any]], title: str) -> go.Figure:
    """Per emotion: what the circuit's nodes write directly onto the emotion's reference direction at the last token
    (``direct``), next to a random circuit of the same shape (``random_direct``, grey), each ``{mean, low, high}``."""
    emotions = list(by_emotion)
    fig = go.Figure()
    for key, name, color in (("direct", "circuit", METHOD_COLORS["circuit"]), ("random_direct", "random circuit", GREY)):
        rows = [by_emotion[e][key] for e in emotions]
        fig.add_trace(go.Bar(x=emotions, y=[r["mean"] for r in rows], name=name, marker_color=color,
                             error_y={"type": "data", "symmetric": False, "array": [r["high"] - r["mean"] for r in rows],
                                      "arrayminus": [r["mean"] - r["low"] for r in rows]}))
    fig.update_layout(title=title, barmode="group", yaxis_title="direct write onto the reference direction", xaxis_title="emotion")
    return styled(fig)


# ---------------------------------------------------------------------------------------------- comparing runs
def compare_headline(headline: dict[str, dict[str, dict[str, Any]]], title: str) -> go.Figure:
    """Grouped bars: ``headline[model][result] = {accuracy, low, high}``; one colour per model, error bars = 95% CIs."""
    names = sorted({name for rows in headline.values() for name in rows})
    fig = go.Figure()
    for k, (model, rows) in enumerate(headline.items()):
        have = [n for n in names if n in rows]
        fig.add_trace(go.Bar(x=have, y=[rows[n]["accuracy"] for n in have], name=model, marker_color=SEQUENCE[k % len(SEQUENCE)],
                             error_y={"type": "data", "symmetric": False, "array": [rows[n]["high"] - rows[n]["accuracy"] for n in have],
                                      "arrayminus": [rows[n]["accuracy"] - rows[n]["low"] for n in have]}))
    fig.update_layout(title=title, barmode="group", yaxis={"title": "share", "tickformat": ".0%", "range": [0, 1]})
    return styled(fig)


def _relative_depth(n: int) -> list[float]:
    return [i / max(1, n - 1) for i in range(n)]


def compare_profiles(profiles: dict[str, dict[str, Sequence[float]]], title: str) -> go.Figure:
    """Sublayer influence per model (``profiles[model] = {"attn": [L], "mlp": [L]}``) on a relative-depth axis;
    solid lines attention, dotted MLP, one colour per model."""
    fig = go.Figure()
    for k, (model, sites) in enumerate(profiles.items()):
        for site, dash in (("attn", "solid"), ("mlp", "dot")):
            values = list(sites[site])
            fig.add_trace(go.Scatter(x=_relative_depth(len(values)), y=values, mode="lines+markers", name=f"{model} · {site}",
                                     line={"color": SEQUENCE[k % len(SEQUENCE)], "dash": dash}))
    fig.update_layout(title=title, xaxis_title="relative depth (layer / (L - 1))", yaxis_title="influence on the last layer")
    return styled(fig)


def compare_geometry(matrices: dict[str, Sequence[Sequence[float]]], emotions: Sequence[str], title: str) -> go.Figure:
    """One 6x6 cosine heatmap per model, side by side, on one diverging scale from -1 to 1."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=len(matrices), subplot_titles=list(matrices), horizontal_spacing=0.08)
    for k, matrix in enumerate(matrices.values(), 1):
        fig.add_trace(go.Heatmap(z=matrix, x=list(emotions), y=list(emotions), zmin=-1, zmax=1, colorscale=DIVERGING_SCALE,
                                 showscale=k == len(matrices), colorbar={"title": "cosine"}), row=1, col=k)
        fig.update_yaxes(autorange="reversed", row=1, col=k)
    fig.update_layout(title=title, height=420)
    return styled(fig)


def compare_stability(stability: dict[str, dict[str, Any]], title: str, threshold: float | None = None) -> go.Figure:
    """Mean adjacent-layer cosine of the directions per model on a relative-depth axis, with the stability threshold."""
    from .depth import STABLE_COSINE

    threshold = STABLE_COSINE if threshold is None else threshold
    fig = go.Figure()
    for k, (model, s) in enumerate(stability.items()):
        values = list(s["adjacent_cosine"])
        fig.add_trace(go.Scatter(x=_relative_depth(len(values) + 1)[:-1], y=values, mode="lines+markers", name=model,
                                 line={"color": SEQUENCE[k % len(SEQUENCE)]}))
    fig.add_hline(y=threshold, line_dash="dash", line_color=GREY, annotation_text=f"stable: cosine >= {threshold:g}")
    fig.update_layout(title=title, xaxis_title="relative depth of layer L (cosine of L with L + 1)", yaxis_title="mean adjacent-layer cosine")
    return styled(fig)
