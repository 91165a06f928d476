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
from .graph_view import EMPTY_SIDE_PANEL, GraphView, details_html

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


class GraphPage:
    """Builds the page one emotion at a time (:meth:`add`), so a run need not hold every emotion's full graph at
    once: each added graph leaves only its pruned graph, its shown nodes' details and its nodes' direct writes onto
    the target (for the per-emotion contributions in the side panel and the hover), then :meth:`html` writes the page."""

    def __init__(self, share: float = 0.8, title: str = "Attribution graphs", label: str = "graph") -> None:
        self.share, self.title, self.label = share, title, label
        self.entries: dict[str, dict[str, Any]] = {}
        self.direct: dict[str, dict[str, float]] = {}  # emotion -> node key -> direct edge into its target
        self.keys: dict[str, set[str]] = {}  # emotion -> keys of its graph's nodes

    def add(self, emotion: str, graph: AttributionGraph) -> AttributionGraph:
        """Add ``emotion``'s full graph (shown pruned to the page's share); returns the pruned graph."""
        view = GraphView({emotion: {self.label: graph}}, self.share)
        index = view._index(graph)
        self.entries[emotion] = {"shown": view.shown, "title": f"{emotion} · {self.label} · {self.share:.0%} of the influence",
                                 "details": [view.details(i) for i in range(view.shown.n_nodes)]}
        self.direct[emotion] = index["direct"]
        self.keys[emotion] = set(index["where"])
        return view.shown

    def html(self) -> str:
        """The page (plotly.js inlined, so it needs no network)."""
        from plotly.offline import get_plotlyjs

        from .. import plots

        data: dict[str, Any] = {}
        for emotion, entry in self.entries.items():
            panels, notes = [], []
            for d in entry["details"]:
                onto = {e: self.direct[e].get(d["key"], 0.0) for e in self.entries if d["key"] in self.keys[e]}
                panels.append(details_html({**d, "contribution_by_emotion": onto}))
                notes.append("<br>onto each target: " + ", ".join(f"{e} {v:+.3f}" for e, v in onto.items())
                             if onto and d["kind"] != "target" else "")
            figure = plots.attribution_graph_figure(entry["shown"], entry["title"], notes=notes)
            data[emotion] = {"figure": json.loads(figure.to_json()), "details": panels}
        options = "".join(f"<option value='{html.escape(e)}'>{html.escape(e)}</option>" for e in self.entries)
        payload = json.dumps(data).replace("</", "<\\/")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<script>{get_plotlyjs()}</script><style>body{{font-family:sans-serif;margin:16px}}"
                "#emowork-graph-wrap{display:flex;gap:16px}#emowork-graph-plot{flex:1;min-width:600px}"
                "#emowork-graph-side{width:360px;font-size:.9em}</style></head><body>"
                f"<h2>{html.escape(self.title)}</h2><p>Each graph is pruned to the nodes and edges carrying {self.share:.0%} of "
                "the influence on the target. Click a node for its edges and its direct write onto each emotion's target.</p>"
                f"<label>emotion <select id='emowork-graph-emotion'>{options}</select></label>"
                "<div id='emowork-graph-wrap'><div id='emowork-graph-plot'></div><div id='emowork-graph-side'></div></div>"
                f"<script type='application/json' id='emowork-graph-data'>{payload}</script>"
                f"<script>const EMPTY = {json.dumps(EMPTY_SIDE_PANEL)};{PAGE_SCRIPT}</script></body></html>")

    def write(self, path: str | Path) -> Path:
        """Write :meth:`html` to ``path`` atomically; returns the path."""
        path = Path(path)
        atomic_write_text(path, self.html())
        return path


def graph_page_html(graphs: dict[str, AttributionGraph], share: float = 0.8, title: str = "Attribution graphs",
                    label: str = "graph") -> str:
    """One page over ``graphs[emotion]`` (full graphs, e.g. each emotion's mean graph; ``label`` names them in the
    figure titles), each shown pruned to ``share`` of the influence; returns the HTML (plotly.js inlined)."""
    page = GraphPage(share, title, label)
    for emotion, graph in graphs.items():
        page.add(emotion, graph)
    return page.html()


def write_graph_page(graphs: dict[str, AttributionGraph], path: str | Path, share: float = 0.8,
                     title: str = "Attribution graphs", label: str = "graph") -> Path:
    """Write :func:`graph_page_html` to ``path`` atomically; returns the path."""
    path = Path(path)
    atomic_write_text(path, graph_page_html(graphs, share, title, label))
    return path
