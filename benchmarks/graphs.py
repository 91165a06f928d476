"""Attribution graphs: the exact build against patching one source at a time, same graph, one run.

    python benchmarks/graphs.py --run runs/NAME [--emotion anger] [--positions 8] [--sources 48] [--top-edges 40]

``runs/NAME`` is a run made with the circuits stage (``emowork run --stages all``); its circuit, directions and
model are used (the reference direction from the directions' stable segment, as the circuits stage does). The
prompt is the first neutral prompt of the analysis split.

1. Builds the graph of one emotion on that prompt (timed; the model loaded and warmed first) and counts its edges.
2. Patching one source at a time: for ``--sources`` sources drawn at random (every kind), one forward pass each with
   that source's write taken out and everything else frozen; the time per source times the number of sources is the
   time patching would need for the whole graph (the ratio against the build), and the largest difference between
   the patched changes and the edges over all nodes is printed.
3. Without freezing (plain activation patching, direct and indirect effects, scales and patterns free): for the
   ``--top-edges`` heaviest edges, and for the heaviest edges whose source is one of the circuit's neurons or heads,
   the correlation of the edge weights with the patched changes.

The last line is JSON; ``--out FOLDER`` also writes it there as ``graphs.json`` with the pruned graph's viewer JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import emowork
from emowork.analysis.directions import EmotionDirections
from emowork.circuits import Circuit, attribution_graph, edges_by_patching, reference_directions, stable_segment
from emowork.data import load_sev
from emowork.prompts import build_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a run folder made with the circuits stage")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--emotion", default="anger")
    parser.add_argument("--positions", type=int, default=8, help="component nodes on the last N tokens (0: every token)")
    parser.add_argument("--sources", type=int, default=48)
    parser.add_argument("--top-edges", type=int, default=40)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    run = Path(args.run)
    record = json.loads((run / "run.json").read_text())
    handle = emowork.load_model(record["model"]["name"] if isinstance(record.get("model"), dict) else "embedded", device=args.device)
    circuit = Circuit.load(run / "artifacts" / "circuits")
    directions = EmotionDirections.load(run / "artifacts" / "directions")
    layers, _ = stable_segment(directions)
    reference = reference_directions(directions, layers)[list(directions.emotions).index(args.emotion)]
    group = next(g for g in load_sev("analysis").groups if g.valence == "neutral")
    prompt = build_prompts(handle, [group], emotions=None).texts[0]
    positions = args.positions or None

    attribution_graph(handle, circuit, prompt, args.emotion, reference, positions=1)  # warm-up
    start = time.perf_counter()
    graph = attribution_graph(handle, circuit, prompt, args.emotion, reference, positions=positions)
    build_s = time.perf_counter() - start
    n_edges = len(graph.weights)
    kinds = np.array([n.kind for n in graph.nodes])
    rng = np.random.default_rng(0)
    pool = np.flatnonzero(kinds != "target")
    sources = [int(s) for s in rng.choice(pool, min(args.sources, len(pool)), replace=False)]
    n_sources = len(pool)

    start = time.perf_counter()
    patched = edges_by_patching(handle, graph, reference, sources, frozen=True, batch=1)
    patch_s = time.perf_counter() - start
    expected = -graph.adjacency().numpy()[:, sources].T
    max_diff = float(np.abs(patched - expected).max())
    per_source = patch_s / len(sources)

    by_weight = np.argsort(-np.abs(graph.weights))
    heaviest = by_weight[: args.top_edges]
    from_circuit = np.isin(kinds[graph.sources], ["head", "neuron"])
    heaviest_circuit = by_weight[from_circuit[by_weight]][: args.top_edges]
    free_sources = sorted({int(graph.sources[m]) for m in [*heaviest, *heaviest_circuit]})
    free = edges_by_patching(handle, graph, reference, free_sources, frozen=False, batch=8)
    row = {s: i for i, s in enumerate(free_sources)}

    def correlation_of(edges: np.ndarray) -> float:
        patch_w = np.array([-free[row[int(graph.sources[m])], int(graph.targets[m])] for m in edges])
        return float(np.corrcoef(graph.weights[edges], patch_w)[0, 1]) if len(edges) > 2 else float("nan")

    correlation, correlation_circuit = correlation_of(heaviest), correlation_of(heaviest_circuit)

    summary = {"model": handle.name, "device": str(handle.device), "emotion": args.emotion, "positions": positions,
               "n_tokens": len(graph.tokens), "circuit_size": circuit.size(args.emotion), "nodes": graph.summary()["nodes"],
               "edges": n_edges, "build_s": build_s, "edges_per_s": n_edges / build_s,
               "patched_sources": len(sources), "patch_s_per_source": per_source, "patch_all_sources_s_estimate": per_source * n_sources,
               "ratio": per_source * n_sources / build_s, "max_abs_diff_frozen": max_diff, "largest_edge": float(np.abs(graph.weights).max()),
               "top_edges": len(heaviest), "corr_with_unfrozen_patching": correlation,
               "corr_with_unfrozen_patching_circuit_sources": correlation_circuit}
    print(handle)
    print(f"graph of {args.emotion} on a {len(graph.tokens)}-token prompt: {graph.n_nodes} nodes, {n_edges} edges")
    print(f"exact build                      : {build_s:8.2f} s  ({n_edges / build_s:,.0f} edges/s)")
    print(f"patching one source at a time    : {per_source:8.3f} s per source x {n_sources} sources = {per_source * n_sources:,.0f} s (estimated from {len(sources)})")
    print(f"ratio                            : {per_source * n_sources / build_s:8.1f}x   largest difference {max_diff:.2e} "
          f"(largest |edge| {summary['largest_edge']:.2e})")
    print(f"unfrozen patching, {len(heaviest)} heaviest edges: correlation {correlation:.3f}; "
          f"{len(heaviest_circuit)} heaviest edges from circuit neurons and heads: {correlation_circuit:.3f}")
    print(json.dumps(summary))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "graphs.json").write_text(json.dumps(summary, indent=1) + "\n")
        graph.prune(0.8).to_json(out / f"graph_{args.emotion}.json")


if __name__ == "__main__":
    main()
