"""The graphs stage: each emotion's attribution graph (docs/method.md section 11), the mean over neutral analysis
prompts, pruned, as viewer JSON, lossless files and figures; the circuit's direct write onto the emotion's reference
direction against a random circuit of the same shape."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from ... import findings, plots
from ...analysis.directions import EmotionDirections
from ...circuits import Circuit, attribution_graph, mean_graph, random_circuit, reference_directions, stable_segment
from ...circuits.graph import circuit_write_into_target, direct_write as circuit_direct_write
from ...emotions import EMOTIONS
from ...intervals import bootstrap_ci
from ...panels.graph_page import GraphPage
from ...prompts import build_prompts
from ..base import RunContext, Stage, StageOutput
from .preparation import analysis_split

PRUNE_SHARE = 0.8


def _summary(values: list[float]) -> dict[str, float]:
    mean, low, high = bootstrap_ci(values)
    return {"mean": mean, "low": low, "high": high, "n": len(values)}


class GraphsStage(Stage):
    """Attribution graphs of every emotion's circuit, and the random-circuit control of its direct write."""

    name = "graphs"
    title = "Attribution graphs"
    in_default = False  # needs the opt-in circuits stage
    description = (
        "How each emotion's circuit passes the emotion along: on neutral analysis prompts, every normalisation scale, "
        "attention pattern and MLP gate is frozen, and each edge is the exact direct effect of one node's write on "
        "another's input (tokens, the circuit's neurons and heads on the last tokens, one error node per block, "
        "sublayer and position for everything else, and the target: the last layer's state at the last token on the "
        "emotion's reference direction). The graphs are averaged over the prompts (aligned at their last token) and "
        "pruned to the nodes and edges carrying 80% of the influence on the target. Control: what random circuits with "
        "the circuit's per-block counts (the preset's number of seeds) write directly onto the same direction on the same prompts.")
    captions = {
        "graphs_direct": ("what the circuit's components write straight onto the emotion's direction at the last token; "
                          "it means something only where it clears the grey random circuit of the same shape."),
        **{f"graphs_{emotion}": (f"the {emotion} graph read from the prompt's tokens (bottom) up to the emotion's target "
                                 "(top): the largest nodes and thickest edges carry most of the influence on the target, "
                                 "vermillion edges raise the node they enter and blue ones lower it; hover a node for its layer, "
                                 "activation and influence.") for emotion in EMOTIONS},
    }

    def settings(self, ctx: RunContext) -> dict[str, Any]:
        path = ctx.artifacts_dir / "circuits" / "circuit.json"
        return {"preset": [ctx.preset.graph_prompts, ctx.preset.graph_positions, ctx.preset.random_seeds], "prune": PRUNE_SHARE,
                "circuit": json.loads(path.read_text()).get("sha256") if path.exists() else None}

    def run(self, ctx: RunContext) -> StageOutput:
        handle, preset = ctx.handle, ctx.preset
        circuit = Circuit.load(ctx.artifacts_dir / "circuits")
        directions = EmotionDirections.load(ctx.artifacts_dir / "directions")
        stable = ctx.results.get("circuits", {}).get("stable_layers") or stable_segment(directions)[0]
        reference = reference_directions(directions, stable)
        f = handle.facts
        zeros = (torch.zeros(len(directions.emotions), f.n_layers, f.d_mlp), torch.zeros(len(directions.emotions), f.n_layers, f.n_heads, f.d_head))
        controls = [random_circuit(circuit, *zeros, seed, emotions=directions.emotions) for seed in range(preset.random_seeds)]
        dataset = analysis_split(ctx)
        used = [dataset.group(g) for g in directions.provenance["groups"]]
        prompts = build_prompts(handle, used[:preset.graph_prompts], emotions=None).texts
        folder = ctx.artifacts_dir / "graphs"
        by_emotion: dict[str, dict[str, Any]] = {}
        figures: dict[str, Any] = {}
        sizes: dict[str, Any] = {}
        page = GraphPage(PRUNE_SHARE, f"{handle.name}: each emotion's circuit as a mean attribution graph over {len(prompts)} neutral prompts",
                         label=f"mean of {len(prompts)} prompts")
        for emotion in circuit.emotions:
            ref = reference[list(directions.emotions).index(emotion)]
            graphs = [attribution_graph(handle, circuit, p, emotion, ref, positions=preset.graph_positions) for p in prompts]
            mine = [circuit_write_into_target(g) for g in graphs]
            theirs = [circuit_direct_write(handle, c, p, emotion, ref) for c in controls for p in prompts]
            by_emotion[emotion] = {"direct": _summary([m[0] for m in mine]), "share": _summary([m[1] for m in mine]),
                                   "random_direct": _summary(theirs)}
            mean = mean_graph(graphs)
            mean.save(folder / emotion, "mean")
            pruned = page.add(emotion, mean)  # pruned once, for the page and the files
            pruned.to_json(folder / f"{emotion}.json", slug=f"{handle.name}-{emotion}")
            sizes[emotion] = {"full": mean.summary()["nodes"], "full_edges": int(len(mean.weights)),
                              "pruned": pruned.summary()["nodes"], "pruned_edges": int(len(pruned.weights))}
            figures[f"graphs_{emotion}"] = plots.attribution_graph_figure(
                pruned, f"{emotion}: mean attribution graph over {len(prompts)} prompts, pruned to {PRUNE_SHARE:.0%} of the influence")
        page.write(folder / "graphs.html")
        figures = {"graphs_direct": plots.graph_direct_writes(by_emotion, "Direct write onto each emotion's direction: circuit vs random"),
                   **figures}
        numbers = {"by_emotion": by_emotion, "sizes": sizes, "n_prompts": len(prompts), "positions": preset.graph_positions,
                   "prune_share": PRUNE_SHARE, "stable_layers": list(stable),
                   "files": sorted(p.name for p in folder.glob("*.json")) + ["graphs.html"]}
        summary = [f"Graphs on {len(prompts)} neutral analysis prompts; circuit nodes on the last {preset.graph_positions} tokens; "
                   f"viewer JSON (circuit-tracer / Neuronpedia format) per emotion in artifacts/graphs/.",
                   *findings.graphs(by_emotion, len(prompts))]
        tables = [{"title": "Graph sizes (mean graph, then pruned)", "columns": ["emotion", "nodes", "edges", "pruned nodes", "pruned edges"],
                   "rows": [[e, sum(s["full"].values()), s["full_edges"], sum(s["pruned"].values()), s["pruned_edges"]] for e, s in sizes.items()]}]
        links = {"Explore the graphs (one page, opens offline: pick an emotion, click a node for its edges)": "artifacts/graphs/graphs.html"}
        return StageOutput(numbers=numbers, figures=figures, summary=summary, tables=tables, links=links)
