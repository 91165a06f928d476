"""Attribution graphs as files: the viewer JSON of circuit-tracer and Neuronpedia, our own lossless files, and the mean
graph over many prompts.

**Viewer JSON** (``emowork/resources/attribution_graph.schema.json``, circuit-tracer 0.5.0's format written out as
JSON Schema; every export is validated against it). The viewer draws one row per layer; here every *sublayer* is a
row, so a block's attention and MLP stay apart: row ``2L`` holds block L's heads and attention error, row ``2L + 1``
its neurons and MLP error, the target sits on row ``2 n_layers + 1`` as the viewer's "logit". Neurons and heads are
written as features (``feature_type`` "cross layer transcoder", the type the viewer draws as a feature; the ``clerp``
label says which, e.g. ``L3 neuron 17``), error nodes as "mlp reconstruction error" (attention errors too: the
viewer knows no other error type), tokens as "embedding". Node ids follow circuit-tracer: ``{row}_{index}_{pos}``
for features, ``E_{token}_{pos}`` for tokens; errors get ``err_{row}_{pos}`` (circuit-tracer's ``0_{row}_{pos}`` would
collide with the feature ``0_{row}_{pos}``: head ``row`` of block 0).

**Our files**: ``graph.json`` (nodes, tokens, prompt, meta) and ``graph.safetensors`` (edges and biases), written
atomically; never pickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..storage import atomic_write_json, atomic_write_text, load_tensors_checked, save_tensors_checked
from .assembly import CircuitError
from .graph import AttributionGraph, Node

GRAPH_FORMAT = 1


def _cantor(x: int, y: int) -> int:
    return (x + y) * (x + y + 1) // 2 + y


def _row(node: Node, n_layers: int) -> str:
    if node.kind == "token":
        return "E"
    if node.kind == "target":
        return str(2 * n_layers + 1)
    return str(node.order)


def viewer_json(graph: AttributionGraph, slug: str | None = None, scan: str = "emowork-neurons-heads") -> dict[str, Any]:
    """The graph in the attribution-graph viewer format (module docstring), with each node's influence on the target."""
    n_layers = int(graph.meta.get("n_layers", max(n.layer for n in graph.nodes)))
    influence, _ = graph.influence()
    ids: list[str] = []
    nodes: list[dict[str, Any]] = []
    for i, n in enumerate(graph.nodes):
        row = _row(n, n_layers)
        base: dict[str, Any] = {"layer": row, "ctx_idx": n.position, "influence": float(influence[i]),
                                "activation": float(n.activation), "reverse_ctx_idx": 0, "run_idx": 0,
                                "token_prob": 0.0, "is_target_logit": False}
        if n.kind == "token":
            node_id = f"E_{n.index}_{n.position}"
            base.update(feature=n.position, feature_type="embedding", jsNodeId=f"E_{n.index}-{n.position}", clerp=n.label)
        elif n.kind == "target":
            node_id = f"{row}_0_{n.position}"
            base.update(feature=0, feature_type="logit", is_target_logit=True, token_prob=1.0, jsNodeId=f"L_0-{n.position}",
                        clerp=f"{graph.emotion} direction (value {n.value:.3f})")
        elif n.kind == "error":
            node_id = f"err_{row}_{n.position}"
            base.update(feature=-1, feature_type="mlp reconstruction error", jsNodeId=f"{row}_{n.position}-0",
                        clerp=f"L{n.layer} {n.site} error")
        else:
            node_id = f"{row}_{n.index}_{n.position}"
            what = "neuron" if n.kind == "neuron" else "head"
            base.update(feature=_cantor(int(row), n.index), feature_type="cross layer transcoder",
                        jsNodeId=f"{row}_{n.index}-0", clerp=f"L{n.layer} {what} {n.index}")
        ids.append(node_id)
        nodes.append({"node_id": node_id, **base})
    links = [{"source": ids[s], "target": ids[t], "weight": float(w)} for s, t, w in zip(graph.sources, graph.targets, graph.weights)]
    metadata = {"slug": slug or f"emowork-{graph.emotion}", "scan": scan, "transcoder_list": [],
                "prompt_tokens": [t.replace("\n", "⏎").replace("\t", "→").replace("\r", "↵") for t in graph.tokens],
                "prompt": graph.prompt, "node_threshold": graph.meta.get("pruned_share"), "schema_version": 1}
    qparams = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return {"metadata": metadata, "qParams": qparams, "nodes": nodes, "links": links}


@lru_cache(maxsize=1)
def viewer_schema() -> dict[str, Any]:
    """The JSON Schema of the viewer format (``emowork/resources/attribution_graph.schema.json``)."""
    return json.loads(resources.files("emowork").joinpath("resources/attribution_graph.schema.json").read_text())


def validate_viewer_json(data: dict[str, Any]) -> None:
    """Raise :class:`CircuitError` naming the first place where ``data`` breaks the viewer schema."""
    import jsonschema

    try:
        jsonschema.validate(data, viewer_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise CircuitError(f"the attribution-graph JSON breaks the viewer schema at {where}: {exc.message}") from None


def write_viewer_json(graph: AttributionGraph, path: str | Path, slug: str | None = None) -> Path:
    """Validate and write the viewer JSON atomically; returns the path."""
    data = viewer_json(graph, slug)
    validate_viewer_json(data)
    path = Path(path)
    atomic_write_text(path, json.dumps(data))
    return path


# ---------------------------------------------------------------------- our own files
def save_graph(graph: AttributionGraph, folder: str | Path, name: str = "graph") -> Path:
    """``{name}.json`` (nodes, tokens, prompt, emotion, meta) and ``{name}.safetensors`` (edges, biases), atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors_checked(folder / f"{name}.safetensors", {"sources": torch.as_tensor(graph.sources, dtype=torch.long),
                          "targets": torch.as_tensor(graph.targets, dtype=torch.long),
                          "weights": torch.as_tensor(graph.weights, dtype=torch.float64),
                          "bias": torch.as_tensor(graph.bias, dtype=torch.float64)})
    atomic_write_json(folder / f"{name}.json", {"format": GRAPH_FORMAT, "nodes": [asdict(n) for n in graph.nodes],
                                                "tokens": graph.tokens, "prompt": graph.prompt, "emotion": graph.emotion,
                                                "meta": graph.meta})
    return folder / f"{name}.json"


def load_graph(folder: str | Path, name: str = "graph") -> AttributionGraph:
    """Read what :func:`save_graph` wrote; a missing or damaged file raises :class:`CircuitError` saying which."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / f"{name}.json").read_text())
        tensors = load_tensors_checked(folder / f"{name}.safetensors")
    except (OSError, ValueError) as exc:
        raise CircuitError(f"cannot read the attribution graph in {folder} ({exc}); build it again.") from None
    if meta.get("format") != GRAPH_FORMAT:
        raise CircuitError(f"{folder / (name + '.json')} has graph format {meta.get('format')}; this emowork reads "
                           f"{GRAPH_FORMAT}. Build it again.")
    nodes = [Node(**n) for n in meta["nodes"]]
    return AttributionGraph(nodes, tensors["sources"].numpy(), tensors["targets"].numpy(), tensors["weights"].numpy(),
                            tensors["bias"].numpy(), meta["tokens"], meta["prompt"], meta["emotion"], meta["meta"])


# ---------------------------------------------------------------------- many prompts
def mean_graph(graphs: Sequence[AttributionGraph]) -> AttributionGraph:
    """The mean graph over prompts of one emotion and circuit, aligned at their last token.

    The last ``W`` positions (``W`` the shortest prompt's length) keep their own nodes, numbered ``1 .. W``;
    everything before them is summed into position ``0`` ("context") per node kind, block, sublayer and unit (tokens
    into one context token). Edge weights, biases, values and activations are then averaged over the prompts (an edge
    missing from a prompt counts as 0), so every node's mean incoming edges plus its mean bias still equal its mean
    input."""
    if not graphs:
        raise CircuitError("no graphs to average.")
    if len({g.emotion for g in graphs}) > 1 or len({g.meta.get("circuit_sha256") for g in graphs}) > 1:
        raise CircuitError("average graphs of one emotion and one circuit only.")
    W = min(len(g.tokens) for g in graphs)
    keys: dict[tuple, int] = {}
    proto: list[Node] = []
    mapped_all: list[np.ndarray] = []
    for g in graphs:
        T = len(g.tokens)
        mapped = []
        for n in g.nodes:
            pos = max(n.position - (T - W) + 1, 0)
            index = -1 if (n.kind == "token" and pos == 0) else n.index
            key = (n.kind, n.layer, n.site, index, pos)
            if key not in keys:
                keys[key] = len(proto)
                label = "context" if pos == 0 and n.kind == "token" else n.label.split("@")[0] + (f"@{pos}" if n.kind != "target" else "")
                proto.append(Node(n.kind, n.layer, n.site, index, pos, 0.0, 0.0, label))
            mapped.append(keys[key])
        mapped_all.append(np.asarray(mapped, dtype=np.int64))
    N, k = len(proto), len(graphs)
    bias, value, activation = np.zeros(N), np.zeros(N), np.zeros(N)
    edge_keys, edge_weights = [], []
    for g, mapped in zip(graphs, mapped_all):
        np.add.at(bias, mapped, g.bias / k)
        np.add.at(value, mapped, np.array([n.value for n in g.nodes]) / k)
        np.add.at(activation, mapped, np.array([n.activation for n in g.nodes]) / k)
        edge_keys.append(mapped[g.sources] * N + mapped[g.targets])
        edge_weights.append(g.weights / k)
    unique, inverse = np.unique(np.concatenate(edge_keys), return_inverse=True)
    summed = np.bincount(inverse, weights=np.concatenate(edge_weights), minlength=len(unique))
    nodes = [Node(n.kind, n.layer, n.site, n.index, n.position, float(activation[i]), float(value[i]), n.label) for i, n in enumerate(proto)]
    tokens = ["(context)"] + [graphs[-1].tokens[len(graphs[-1].tokens) - W + p] if len({g.tokens[len(g.tokens) - W + p] for g in graphs}) == 1
                              else f"(token {p - W})" for p in range(W)]
    meta = {**graphs[0].meta, "n_prompts": len(graphs), "aligned_positions": W, "n_tokens": W + 1}
    meta.pop("pruned_share", None)
    return AttributionGraph(nodes, unique // N, unique % N, summed, bias, tokens, f"mean over {len(graphs)} prompts",
                            graphs[0].emotion, meta)
