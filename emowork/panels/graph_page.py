"""A standalone HTML page of attribution graphs: one file that opens offline in any browser (plotly.js embedded),
an emotion picker, the pruned graph, and a side panel that a click on a node fills with its details, its heaviest
incoming and outgoing edges and its direct write onto each emotion's target (the same HTML as the widget's side
panel, :func:`emowork.panels.graph_view.details_html`, computed for every shown node when the page is written).

For papers, the same figures export as SVG/PDF (``emowork figures RUN --format svg,pdf``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from ..circuits.graph import AttributionGraph
from ..storage import atomic_write_text
from .graph_view import EMPTY_SIDE_PANEL, GraphView

PAGE_SCRIPT = """
const DATA = JSON.parse(document.getElementById('emowork-graph-data').textContent);
const plot = document.getElementById('emowork-graph-plot');
const side = document.getElementById('emowork-graph-side');
const picker = document.getElementById('emowork-graph-emotion');
function show(emotion) {
  const entry = DATA[emotion];
  side.innerHTML = EMPTY;
  Plotly.newPlot(plot, entry.figure.data, entry.figure.layout, {responsive: true}).then(() => {
    plot.removeAllListeners && plot.removeAllListeners('plotly_click');
    plot.on('plotly_click', (event) => {
      const point = event.points.find(p => Array.isArray(p.customdata));
      if (!point) return;
      const node = point.customdata[point.customdata.length - 1];
      side.innerHTML = entry.details[node];
      side.dataset.node = String(node);
    });
  });
}
picker.addEventListener('change', () => show(picker.value));
show(picker.value);
"""


def graph_page_html(graphs: dict[str, AttributionGraph], share: float = 0.8, title: str = "Attribution graphs",
                    label: str = "graph") -> str:
    """One page over ``graphs[emotion]`` (full graphs, e.g. each emotion's mean graph; ``label`` names them in the
    figure titles), each shown pruned to ``share`` of the influence; returns the HTML (plotly.js inlined, so it
    needs no network)."""
    from plotly.offline import get_plotlyjs

    view = GraphView({e: {label: g} for e, g in graphs.items()}, share)
    data: dict[str, Any] = {}
    for emotion in view.emotions:
        view.choose(emotion=emotion)
        details = [view.side_panel_html(i) for i in range(view.shown.n_nodes)]
        data[emotion] = {"figure": json.loads(view.figure().to_json()), "details": details}
    options = "".join(f"<option value='{html.escape(e)}'>{html.escape(e)}</option>" for e in view.emotions)
    payload = json.dumps(data).replace("</", "<\\/")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<script>{get_plotlyjs()}</script><style>body{{font-family:sans-serif;margin:16px}}"
            "#emowork-graph-wrap{display:flex;gap:16px}#emowork-graph-plot{flex:1;min-width:600px}"
            "#emowork-graph-side{width:360px;font-size:.9em}</style></head><body>"
            f"<h2>{html.escape(title)}</h2><p>Each graph is pruned to the nodes and edges carrying {share:.0%} of the "
            "influence on the target. Click a node for its edges and its direct write onto each emotion's target.</p>"
            f"<label>emotion <select id='emowork-graph-emotion'>{options}</select></label>"
            "<div id='emowork-graph-wrap'><div id='emowork-graph-plot'></div><div id='emowork-graph-side'></div></div>"
            f"<script type='application/json' id='emowork-graph-data'>{payload}</script>"
            f"<script>const EMPTY = {json.dumps(EMPTY_SIDE_PANEL)};{PAGE_SCRIPT}</script></body></html>")


def write_graph_page(graphs: dict[str, AttributionGraph], path: str | Path, share: float = 0.8,
                     title: str = "Attribution graphs", label: str = "graph") -> Path:
    """Write :func:`graph_page_html` to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, graph_page_html(graphs, share, title, label))
    return path
