"""A static fallback for every panel: the same output also carries an HTML snapshot of the panel's current state.

JupyterLab shows the live widget; a page exported without a kernel or network (``make notebooks-html``) shows the
snapshot instead (the exporter keeps ``text/html`` where a widget view cannot load). The snapshot is plain HTML:
the panel's text and HTML parts, each control's name and value, and the rich outputs it holds (plotly figures
and ``FigureWidget``s included, drawn by the plotly.js the notebook embeds).
"""

from __future__ import annotations

import html
from typing import Any

STATIC_CLASS = "emowork-static"


def _value_text(widget: Any) -> str:
    value = getattr(widget, "value", None)
    if isinstance(value, (tuple, list)):
        return " - ".join(str(v) for v in value)
    return "" if value is None else str(value)


def static_html(widget: Any) -> str:
    """HTML for the current state of an ipywidgets tree (boxes, HTML/labels, controls, outputs)."""
    import ipywidgets as w

    if isinstance(widget, (w.HTML, w.HTMLMath)):
        return f"<div>{widget.value}</div>"
    if isinstance(widget, w.Label):
        return f"<div>{html.escape(widget.value)}</div>"
    if isinstance(widget, w.Box):
        direction = "row" if isinstance(widget, w.HBox) else "column"
        inner = "".join(static_html(child) for child in widget.children)
        return f"<div style='display:flex;flex-direction:{direction};gap:8px;flex-wrap:wrap'>{inner}</div>"
    if isinstance(widget, w.Output):
        parts = []
        for out in widget.outputs:
            data = out.get("data", {})
            if "text/html" in data:
                parts.append(data["text/html"])
            elif "text/plain" in data or "text" in out:
                parts.append(f"<pre>{html.escape(data.get('text/plain', out.get('text', '')))}</pre>")
        return "<div>" + "".join(parts) + "</div>"
    if hasattr(widget, "to_plotly_json") and hasattr(widget, "data"):  # a plotly FigureWidget
        import plotly.io as pio

        return pio.to_html(widget, include_plotlyjs=False, full_html=False)
    if isinstance(widget, w.Button):
        return f"<span style='border:1px solid #bbb;border-radius:3px;padding:1px 6px;color:#555'>{html.escape(widget.description)}</span>"
    if hasattr(widget, "value"):
        label = html.escape(getattr(widget, "description", "") or "")
        return f"<span><b>{label}</b> {html.escape(_value_text(widget))}</span>"
    return ""


def show(ui: Any, title: str) -> None:
    """Display ``ui`` (an ipywidgets tree) with an HTML snapshot of it in the same output."""
    from IPython.display import display

    bundle = ui._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    data = dict(data or {})
    data["text/html"] = (f"<div class='{STATIC_CLASS}' style='border:1px dashed #999;padding:8px'>"
                         f"<div style='color:#666;font-size:.85em'>{html.escape(title)}: a static snapshot of the panel; "
                         "it is interactive in JupyterLab.</div>" + static_html(ui) + "</div>")
    display(data, raw=True)
