"""Sublayer influence: stacked last-token passes against the plain one-forward-per-variant loop, same variants, one run.

    python benchmarks/circuits.py [--model embedded] [--prompts 4] [--emotions anger] [--alphas 0.5] [--rows 96]

The loop runs one full forward over the prompts per variant (emotion x layer x sublayer x alpha); the stacked path
prefills the prompts minus their last token once and runs several variants' last tokens in each pass
(``LastTokenRunner.run_many``). Both compute ``I[e, L, p]`` per sample; the script prints both times (directions,
scales and the reference direction are computed outside the timed parts), the ratio and the largest difference; the
last line is JSON. The full measurement (6 emotions x 4 alphas) is ``--emotions all --alphas 0.1,0.3,0.5,0.7``.
"""

from __future__ import annotations

import argparse
import json
import time

import emowork
from emowork.analysis.directions import extract
from emowork.circuits import stable_segment, sublayer_influence, sublayer_influence_loop
from emowork.data import load_sev
from emowork.prompts import build_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--emotions", default="anger", help="comma-separated, or 'all'")
    parser.add_argument("--alphas", default="0.5")
    parser.add_argument("--rows", type=int, default=None, help="rows per stacked pass (default: the device's)")
    args = parser.parse_args()
    handle = emowork.load_model(args.model, device=args.device)
    subset = load_sev("analysis").select(per_theme=1)
    directions = extract(handle, subset, groups="all", progress=False)
    emotions = list(directions.emotions) if args.emotions == "all" else args.emotions.split(",")
    alphas = tuple(float(a) for a in args.alphas.split(","))
    prompts = build_prompts(handle, subset.groups[: args.prompts], emotions=None).texts
    stable = stable_segment(directions)
    sublayer_influence(handle, directions, prompts[:1], alphas[:1], emotions[:1], stable, progress=False)  # warm-up

    start = time.perf_counter()
    loop = sublayer_influence_loop(handle, directions, prompts, alphas, emotions, stable, cache=False)
    loop_s = time.perf_counter() - start
    start = time.perf_counter()
    fast = sublayer_influence(handle, directions, prompts, alphas, emotions, stable, rows_per_pass=args.rows, progress=False,
                              cache=False)
    fast_s = time.perf_counter() - start
    diff = float((fast.per_sample - loop).abs().max())
    scale = float(loop.abs().max())
    variants = len(emotions) * handle.facts.n_layers * 2 * len(alphas)
    print(handle)
    print(f"{len(prompts)} prompts x {variants} variants ({len(emotions)} emotions x {handle.facts.n_layers} layers x 2 "
          f"sublayers x {len(alphas)} alphas)")
    print(f"one full forward per variant : {loop_s:8.2f} s")
    print(f"stacked last-token passes    : {fast_s:8.2f} s")
    print(f"ratio                        : {loop_s / fast_s:8.1f}x   largest difference {diff:.2e} (largest |I| {scale:.2e})")
    print(json.dumps({"model": handle.name, "device": str(handle.device), "prompts": len(prompts), "variants": variants,
                      "loop_s": loop_s, "stacked_s": fast_s, "speedup": loop_s / fast_s, "max_abs_diff": diff,
                      "max_abs_influence": scale}))


if __name__ == "__main__":
    main()
