"""``GraphViewer``: browse attribution graphs by emotion and prompt, prune with a slider, open a node's side panel,
pin nodes and save them as a named subgraph.

All logic lives in :class:`emowork.panels.graph_view.GraphView`; this panel wires ipywidgets controls to it. A click
on a node opens it in the side panel (plotly's ``FigureWidget``, an ``anywidget`` whose JavaScript ships inside
plotly, so nothing loads from the web); the node list, ordered by influence, does the same without a mouse, and is
the fallback where ``anywidget`` is not installed. The figure rings pinned nodes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emowork.circuits.graph import AttributionGraph
from emowork.panels.graph_view import Examples, GraphView


class GraphViewer:
    """A panel over ``graphs[emotion][prompt]`` (see :class:`GraphView`); ``folder`` is where pinned subgraphs go."""

    def __init__(self, graphs: dict[str, dict[str, AttributionGraph]], share: float = 0.8, examples: Examples | None = None,
                 folder: str | Path = "subgraphs") -> None:
        import ipywidgets as w

        self.view = GraphView(graphs, share, examples)
        self.folder = Path(folder)
        self.emotion = w.Dropdown(options=self.view.emotions, value=self.view.emotion, description="emotion")
        self.prompt = w.Dropdown(options=self.view.prompts(), value=self.view.prompt, description="prompt")
        self.share = w.FloatSlider(value=share, min=0.05, max=1.0, step=0.05, description="keep share", continuous_update=False)
        self.node = w.Dropdown(options=[], description="node")
        self.pin_button = w.Button(description="Pin / unpin")
        self.name = w.Text(value="", placeholder="subgraph name", description="name")
        self.save_button = w.Button(description="Save pinned", button_style="primary")
        self.status = w.HTML()
        self.side = w.HTML(self.view.side_panel_html())
        self.plot = w.Box(layout=w.Layout(flex="1 1 auto"))  # holds the FigureWidget (or an Output without anywidget)
        self.figure_widget: Any = None  # the plotly FigureWidget shown (None without anywidget)
        self._quiet = False  # set while the panel itself changes a control's options, so no handler runs
        self.emotion.observe(lambda change: self._choose(emotion=change["new"]), names="value")
        self.prompt.observe(lambda change: self._choose(prompt=change["new"]), names="value")
        self.share.observe(lambda change: self._set_share(change["new"]), names="value")
        self.node.observe(self._on_node, names="value")
        self.pin_button.on_click(lambda _: self.pin())
        self.save_button.on_click(lambda _: self.save(self.name.value))
        self.panel = w.VBox([w.HBox([self.emotion, self.prompt, self.share]),
                             w.HBox([self.plot, w.VBox([self.node, w.HBox([self.pin_button]), w.HBox([self.name, self.save_button]),
                                                          self.status, self.side], layout=w.Layout(width="360px"))])])
        self._refresh()

    # ------------------------------------------------------------------ actions (also callable headless)
    def _on_node(self, change: dict[str, Any]) -> None:
        if not self._quiet and change["new"] is not None:
            self.select(change["new"])

    def _choose(self, emotion: str | None = None, prompt: str | None = None) -> None:
        if self._quiet:
            return
        self.view.choose(emotion, prompt)
        if emotion is not None:
            self._quiet = True
            self.prompt.options = self.view.prompts()
            self.prompt.value = self.view.prompt
            self._quiet = False
        self._refresh()

    def _set_share(self, share: float) -> None:
        self.view.set_share(share)
        self._refresh()

    def select(self, index: int) -> None:
        """Open node ``index`` (of the shown graph) in the side panel."""
        self.view.select(index)
        self.side.value = self.view.side_panel_html()

    def pin(self) -> None:
        """Pin or unpin the selected node."""
        if self.view.selected is None:
            self.status.value = "Pick a node first."
            return
        pinned = self.view.pin(self.view.selected)
        self.status.value = f"{len(pinned)} pinned"
        self._draw()

    def save(self, name: str) -> Path | None:
        """Save the pinned nodes as a subgraph named ``name``; the status line says where (or what to fix)."""
        try:
            out = self.view.save_pinned(name, self.folder)
        except Exception as exc:  # shown to the user, never swallowed silently
            self.status.value = f"<span style='color:#D55E00'>{exc}</span>"
            return None
        self.status.value = f"saved to {out}"
        return out

    # ------------------------------------------------------------------ drawing
    def _refresh(self) -> None:
        influence, _ = self.view.shown.influence()
        order = sorted(range(self.view.shown.n_nodes), key=lambda i: -influence[i])
        self._quiet = True
        self.node.options = [(f"{self.view.shown.nodes[i].label} ({influence[i]:.2f})", i) for i in order]
        self.node.value = self.view.selected
        self._quiet = False
        self.side.value = self.view.side_panel_html()
        self._draw()

    def click(self, node: int) -> None:
        """What a click on node ``node`` of the figure does: select it, and show it selected in the node list."""
        self.select(node)
        self._quiet = True
        self.node.value = node
        self._quiet = False

    def _on_click(self, trace: Any, points: Any, _selector: Any) -> None:
        for i in points.point_inds:
            self.click(int(trace.customdata[i][-1]))
            return

    def _draw(self) -> None:
        import ipywidgets as w

        fig = self.view.figure()
        try:
            import plotly.graph_objects as go

            shown = go.FigureWidget(fig)  # needs anywidget
        except ImportError:
            out = w.Output()
            with out:
                fig.show()
            self.plot.children = [out]
            return
        for trace in shown.data:
            if trace.customdata is not None and trace.mode == "markers":
                trace.on_click(self._on_click)
        self.figure_widget = shown
        self.plot.children = [shown]

    def _ipython_display_(self) -> None:
        from .static import show

        show(self.panel, "Attribution-graph viewer")

    def __repr__(self) -> str:
        return f"GraphViewer({len(self.view.emotions)} emotions)"

    def figure(self) -> Any:
        """The figure being shown."""
        return self.view.figure()
