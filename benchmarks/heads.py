"""Head importance: the per-head masking loop against the exact one-pass path, same samples, one run.

    python benchmarks/heads.py [--model embedded] [--samples 2] [--layers all|0,10,20]

The loop runs one forward pass per (sample, layer, head) with that head's hook_z zeroed (hooks registered once per
layer, each pass stopped after layer L); the fast path computes every head of every layer from one captured pass.
Prints both times, the ratio and the largest difference; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import emowork
from emowork.components import collect_samples, head_importance, head_importance_masking_loop
from emowork.data import load_sev
from emowork.analysis.directions import extract


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--layers", default="all")
    parser.add_argument("--method", default="masked", choices=["masked", "linear"])
    args = parser.parse_args()
    handle = emowork.load_model(args.model, device=args.device)
    subset = load_sev("analysis").select(per_theme=1)
    directions = extract(handle, subset, groups="all", progress=False)
    emotion = directions.emotions[0]
    groups = subset.groups[: args.samples]
    samples = collect_samples(handle, groups, emotions=[emotion], progress=False)
    layers = list(range(handle.facts.n_layers)) if args.layers == "all" else [int(x) for x in args.layers.split(",")]
    prompts = samples.prompts_of(emotion)

    start = time.perf_counter()
    loop = head_importance_masking_loop(handle, directions, prompts, emotion, layers, args.method)
    loop_s = time.perf_counter() - start
    start = time.perf_counter()
    captured = collect_samples(handle, groups, emotions=[emotion], progress=False, cache=False)  # the forward pass counts
    fast = head_importance(handle, directions, captured, args.method)
    fast_s = time.perf_counter() - start
    diff = float((fast.per_sample[:, 0][:, layers] - loop).abs().max())
    forwards = len(prompts) * len(layers) * (handle.facts.n_heads + 1)
    print(handle)
    print(f"{len(prompts)} samples x {len(layers)} layers x {handle.facts.n_heads} heads ({args.method})")
    print(f"masking loop ({forwards} forward passes): {loop_s:8.2f} s")
    print(f"one pass + closed form            : {fast_s:8.3f} s")
    print(f"ratio                             : {loop_s / fast_s:8.1f}x   largest difference {diff:.2e}")
    print(json.dumps({"model": handle.name, "device": str(handle.device), "samples": len(prompts), "layers": len(layers),
                      "loop_s": loop_s, "fast_s": fast_s, "speedup": loop_s / fast_s, "max_abs_diff": diff}))


if __name__ == "__main__":
    main()
