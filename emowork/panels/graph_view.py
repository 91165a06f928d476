"""The logic of the attribution-graph viewer, as a plain object: pick an emotion and a prompt, set the pruning share,
select a node (its details, edges, per-emotion contributions and top-activating prompts), pin nodes and save them as
a named subgraph. The widget (``widgets.graph_viewer.GraphViewer``) only wires controls and clicks to these calls."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from .. import plots
from ..circuits.assembly import CircuitError
from ..circuits.graph import AttributionGraph
from ..hooks.attach import attach_hooks
from ..hooks.sites import hook_name
from ..storage import atomic_write_json

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle

Examples = Callable[[Any], list[dict[str, Any]]]  # node -> [{"prompt", "tokens", "values", "peak"}]


def top_activating(handle: "ModelHandle", prompts: Sequence[str], k: int = 3) -> Examples:
    """An ``examples`` source for :class:`GraphView`: for a neuron, its activation at every token of ``prompts``; for
    a head, the size of its write (``|z_h W_O[h]|``); the ``k`` prompts with the largest value, one batched pass."""
    def examples(node: Any) -> list[dict[str, Any]]:
        if node.kind not in ("neuron", "head"):
            return []
        name = hook_name("mlp_post", node.layer) if node.kind == "neuron" else hook_name("z", node.layer)
        enc = handle.encode(list(prompts))
        seen: dict[str, torch.Tensor] = {}
        with torch.no_grad(), attach_hooks(handle, [(name, lambda act, hook: seen.__setitem__("a", act.detach().float().cpu()))]):
            handle.hf_model(**enc, use_cache=False)
        act = seen["a"]
        if node.kind == "neuron":
            values = act[..., node.index]
        else:
            f = handle.facts
            z = act.reshape(act.shape[0], act.shape[1], f.n_heads, f.d_head)[:, :, node.index]
            values = (z @ handle.W_O(node.layer)[node.index].detach().float().cpu()).norm(dim=-1)
        mask = enc["attention_mask"].bool().cpu()
        rows = []
        for i, prompt in enumerate(prompts):
            ids = enc["input_ids"][i][mask[i]].tolist()
            vals = values[i][mask[i]].tolist()
            rows.append({"prompt": prompt, "tokens": [handle.tokenizer.decode([t]) for t in ids], "values": vals,
                         "peak": max(vals, key=abs) if vals else 0.0})
        return sorted(rows, key=lambda r: -abs(r["peak"]))[:k]
    return examples


EMPTY_SIDE_PANEL = "<div class='emowork-graph-side'><i>Click a node to see its edges and top-activating prompts.</i></div>"


def details_html(d: dict[str, Any], examples: list[dict[str, Any]] | None = None) -> str:
    """The side panel for one node's :meth:`GraphView.details` ``d`` (and its top-activating prompts, if given):
    the same HTML in the widget and in the standalone page (:mod:`emowork.panels.graph_page`)."""
    esc = html.escape
    parts = [f"<div class='emowork-graph-side'><h4>{esc(d['label'])}</h4>",
             f"<div>{esc(d['kind'])}, layer {d['layer']}, index {d['index']}, token {d['position']} "
             f"({esc(repr(d['token']))})</div>",
             f"<div>activation {d['activation']:.3f} · input {d['input']:.3f} · influence {d['influence']:.3f} (in the full graph)</div>"]
    for title in ("incoming", "outgoing"):
        items = "".join(f"<li>{esc(r['node'])}: {r['weight']:+.3f}</li>" for r in d[title]) or "<li>none</li>"
        parts.append(f"<div><b>{title} edges</b><ul class='emowork-{title}'>{items}</ul></div>")
    if d["contribution_by_emotion"]:
        items = "".join(f"<li>{esc(e)}: {v:+.3f}</li>" for e, v in d["contribution_by_emotion"].items())
        parts.append(f"<div><b>direct write onto each emotion's target</b><ul>{items}</ul></div>")
    if examples:
        from ..components.viewers import colored_tokens

        parts.append("<div><b>top-activating prompts</b>" + "".join(
            colored_tokens(r["tokens"], r["values"], f"peak {r['peak']:+.3f}").html for r in examples) + "</div>")
    return "".join(parts) + "</div>"


class GraphView:
    """Graphs by emotion and prompt name (``graphs[emotion][prompt] -> AttributionGraph``), shown pruned to
    ``share`` of the influence; ``examples`` (optional) gives a node's top-activating prompts (:func:`top_activating`)."""

    def __init__(self, graphs: dict[str, dict[str, AttributionGraph]], share: float = 0.8, examples: Examples | None = None):
        if not graphs or not all(graphs.values()):
            raise CircuitError("the viewer needs at least one graph per emotion it lists.")
        self.graphs = graphs
        self.examples = examples
        self.emotion = next(iter(graphs))
        self.prompt = next(iter(graphs[self.emotion]))
        self.share = share
        self.selected: int | None = None
        self.pinned: list[str] = []  # node keys, stable across pruning shares
        self._indexes: dict[int, dict[str, Any]] = {}  # id(graph) -> _index(graph)
        self._shown = self._prune()

    # ------------------------------------------------------------------ choosing
    @property
    def emotions(self) -> list[str]:
        return list(self.graphs)

    def prompts(self, emotion: str | None = None) -> list[str]:
        return list(self.graphs[emotion or self.emotion])

    def choose(self, emotion: str | None = None, prompt: str | None = None) -> AttributionGraph:
        """Show another emotion and/or prompt (the prompt kept when the new emotion has it); returns the shown graph."""
        if emotion is not None:
            if emotion not in self.graphs:
                raise CircuitError(f"no graph for {emotion!r}; the viewer has {', '.join(self.graphs)}.")
            self.emotion = emotion
            if self.prompt not in self.graphs[emotion]:
                self.prompt = next(iter(self.graphs[emotion]))
        if prompt is not None:
            if prompt not in self.graphs[self.emotion]:
                raise CircuitError(f"no graph of {self.emotion} for prompt {prompt!r}; there are {', '.join(self.graphs[self.emotion])}.")
            self.prompt = prompt
        self.selected = None
        self._shown = self._prune()
        return self._shown

    def set_share(self, share: float) -> AttributionGraph:
        """Prune to ``share`` of the influence (the slider); the selection is kept when the node is still shown."""
        key = self.shown.nodes[self.selected].key if self.selected is not None else None
        self.share = share
        self._shown = self._prune()
        keys = [n.key for n in self._shown.nodes]
        self.selected = keys.index(key) if key in keys else None
        return self._shown

    def _prune(self) -> AttributionGraph:
        return self.graph.prune(self.share)

    @property
    def graph(self) -> AttributionGraph:
        """The full (unpruned) graph of the chosen emotion and prompt."""
        return self.graphs[self.emotion][self.prompt]

    @property
    def shown(self) -> AttributionGraph:
        return self._shown

    def figure(self) -> Any:
        """The shown graph as a plotly figure (each marker's ``customdata[-1]`` is its node index); pinned nodes get a
        thick outline."""
        pinned = [i for i, n in enumerate(self.shown.nodes) if n.key in self.pinned]
        return plots.attribution_graph_figure(self.shown, f"{self.emotion} · {self.prompt} · {self.share:.0%} of the influence",
                                              highlight=pinned, notes=self.hover_notes())

    def hover_notes(self) -> list[str]:
        """Per shown node, one hover line: its direct write onto each emotion's target on this prompt (the emotions
        whose graph has the node)."""
        others = [(e, self._index(by_prompt[self.prompt])) for e, by_prompt in self.graphs.items() if self.prompt in by_prompt]
        notes = []
        for node in self.shown.nodes:
            parts = [f"{e} {ix['direct'].get(node.key, 0.0):+.3f}" for e, ix in others if node.key in ix["where"]]
            notes.append("<br>onto each target: " + ", ".join(parts) if parts and node.kind != "target" else "")
        return notes

    # ------------------------------------------------------------------ one node
    def select(self, index: int) -> dict[str, Any]:
        """Select node ``index`` of the shown graph; returns :meth:`details`."""
        if not 0 <= index < self.shown.n_nodes:
            raise CircuitError(f"node {index} is not shown; the graph shows {self.shown.n_nodes} nodes.")
        self.selected = index
        return self.details(index)

    def _index(self, graph: AttributionGraph) -> dict[str, Any]:
        """Per graph, computed once: influence, node positions by key, edges grouped by target and by source
        (``argsort`` + boundaries, so a node's edges are a slice, not a scan of millions), and each node's direct
        edge into the target by key."""
        found = self._indexes.get(id(graph))
        if found is not None and found["graph"] is graph:
            return found
        n = graph.n_nodes
        by_target = np.argsort(graph.targets, kind="stable")
        by_source = np.argsort(graph.sources, kind="stable")
        into = graph.targets == graph.target_index
        direct = np.zeros(n)
        np.add.at(direct, graph.sources[into], graph.weights[into])
        keys = [node.key for node in graph.nodes]
        found = {"graph": graph, "influence": graph.influence()[0], "where": {k: i for i, k in enumerate(keys)},
                 "by_target": by_target, "target_starts": np.searchsorted(graph.targets[by_target], np.arange(n + 1)),
                 "by_source": by_source, "source_starts": np.searchsorted(graph.sources[by_source], np.arange(n + 1)),
                 "direct": {k: float(direct[i]) for i, k in enumerate(keys) if direct[i] != 0.0}}
        self._indexes[id(graph)] = found
        return found

    def details(self, index: int, top: int = 8) -> dict[str, Any]:
        """A node's identity, activation, input and influence; its heaviest incoming and outgoing edges in the full
        graph; its direct edge into each emotion's target on this prompt (where that emotion's graph has the node)."""
        node = self.shown.nodes[index]
        full = self.graph
        ix = self._index(full)
        where = ix["where"][node.key]

        def edges(order: np.ndarray, starts: np.ndarray, other: np.ndarray) -> list[dict[str, Any]]:
            mine = order[starts[where]:starts[where + 1]]
            heaviest = mine[np.argsort(-np.abs(full.weights[mine]), kind="stable")[:top]]
            return [{"node": full.nodes[int(other[m])].label, "weight": float(full.weights[m])} for m in heaviest]

        contributions = {}
        for emotion, by_prompt in self.graphs.items():
            g = by_prompt.get(self.prompt)
            if g is not None and node.key in self._index(g)["where"]:
                contributions[emotion] = self._index(g)["direct"].get(node.key, 0.0)
        return {"key": node.key, "label": node.label, "kind": node.kind, "layer": node.layer, "site": node.site, "index": node.index,
                "position": node.position, "token": full.tokens[node.position] if node.position < len(full.tokens) else "",
                "activation": node.activation, "input": node.value, "influence": float(ix["influence"][where]),
                "incoming": edges(ix["by_target"], ix["target_starts"], full.sources),
                "outgoing": edges(ix["by_source"], ix["source_starts"], full.targets),
                "contribution_by_emotion": contributions}

    def side_panel_html(self, index: int | None = None) -> str:
        """The side panel of the selected node: details, edges, per-emotion contributions, top-activating prompts
        with their tokens coloured by the node's activation."""
        index = self.selected if index is None else index
        if index is None:
            return EMPTY_SIDE_PANEL
        examples = self.examples(self.shown.nodes[index]) if self.examples is not None else None
        return details_html(self.details(index), examples)

    # ------------------------------------------------------------------ pinned subgraphs
    def pin(self, index: int) -> list[str]:
        """Pin (or unpin, when pinned) node ``index`` of the shown graph; returns the pinned node keys."""
        key = self.shown.nodes[index].key
        if key in self.pinned:
            self.pinned.remove(key)
        else:
            self.pinned.append(key)
        return list(self.pinned)

    def pinned_subgraph(self) -> AttributionGraph:
        """The pinned nodes of the full graph and every edge between them."""
        if not self.pinned:
            raise CircuitError("no node is pinned: pin nodes first (click a node, then Pin).")
        full = self.graph
        keep = np.array([n.key in self.pinned for n in full.nodes])
        edges = np.flatnonzero(keep[full.sources] & keep[full.targets])
        return full._subgraph(keep, edges, {"subgraph": list(self.pinned)})

    def save_pinned(self, name: str, folder: str | Path) -> Path:
        """Save the pinned subgraph as ``{folder}/{name}/``: lossless files, the viewer JSON (with the pins as the
        viewer's pinned ids) and ``pins.json``; returns the folder."""
        if not name or any(c in name for c in "/\\") or name.startswith("."):
            raise CircuitError(f"name the subgraph with letters, digits, '-' or '_' (not {name!r}).")
        from ..circuits.graph_files import validate_viewer_json, viewer_json

        sub = self.pinned_subgraph()
        out = Path(folder) / name
        sub.save(out, "subgraph")
        data = viewer_json(sub, slug=name)
        ids = {n.key: d["node_id"] for n, d in zip(sub.nodes, data["nodes"])}
        data["qParams"]["pinnedIds"] = [ids[k] for k in self.pinned if k in ids]
        validate_viewer_json(data)
        atomic_write_json(out / f"{name}.json", data)
        atomic_write_json(out / "pins.json", {"name": name, "emotion": self.emotion, "prompt": self.prompt, "pinned": self.pinned})
        return out

