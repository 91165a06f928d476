"""Batched capture against a one-prompt-at-a-time loop, same prompts, same sites, one run.

    python benchmarks/capture.py [--model embedded] [--n 48] [--device auto]

Prints prompts/s for both and their ratio; the last line is JSON. Both paths run without the disk cache
and read the last token of resid_mid and resid_post at every layer (the direction-extraction sites).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import emowork
from emowork.data import load_sev
from emowork.prompts import build_prompts as emotion_prompts


def build_prompts(handle: emowork.ModelHandle, n: int) -> list[str]:
    """The first ``n`` emotion-elicited prompts of the analysis split (groups x six emotions)."""
    groups = load_sev("analysis").select(n=n // 6 + 1).groups
    return emotion_prompts(handle, groups[: n // 6 + 1]).texts[:n]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    handle = emowork.load_model(args.model, device=args.device)
    prompts = build_prompts(handle, args.n)
    sites = ["resid_mid", "resid_post"]
    emowork.capture(handle, prompts[:2], sites, cache=False, progress=False)  # warm-up

    batched_s = timed(lambda: emowork.capture(handle, prompts, sites, cache=False, progress=False))
    loop_s = timed(lambda: [emowork.capture(handle, [p], sites, batch_size=1, cache=False, progress=False) for p in prompts])
    tokens = handle.n_tokens(prompts)
    result = {
        "model": handle.name,
        "device": str(handle.device),
        "n_prompts": len(prompts),
        "mean_tokens": sum(tokens) / len(tokens),
        "batched_prompts_per_s": len(prompts) / batched_s,
        "loop_prompts_per_s": len(prompts) / loop_s,
        "speedup": loop_s / batched_s,
    }
    print(f"{handle}")
    print(f"{len(prompts)} prompts, {result['mean_tokens']:.0f} tokens on average, sites {sites}, all layers, last token")
    print(f"batched capture      : {result['batched_prompts_per_s']:8.1f} prompts/s")
    print(f"one prompt at a time : {result['loop_prompts_per_s']:8.1f} prompts/s")
    print(f"ratio                : {result['speedup']:8.2f}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
