"""Reply perplexity: one forward pass per padded prompt+reply through the wrapped model (the straightforward way)
against ``emowork.generation.fluency.reply_perplexity`` (each distinct prompt run once, its KV cache shared by every
reply to it, the unwrapped model, the unembedding only where a reply token is predicted), same replies, one run.

    python benchmarks/perplexity.py [--model embedded] [--groups 8] [--tokens 32] [--repeats 3]

The replies are the model's own unsteered replies to the neutral prompts of ``--groups`` test groups, each scored
once per emotion (six replies per prompt, as the steering sweep and the circuit comparison score them). Prints both
times (best of ``--repeats``), the ratio and the largest relative difference; the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import emowork
from emowork.data import load_sev
from emowork.emotions import EMOTIONS
from emowork.generation.fluency import reply_perplexity
from emowork.generation.generate import DecodingConfig, generate
from emowork.prompts import build_prompts


@torch.inference_mode()
def straightforward(handle, prompts, replies, batch_size=16) -> np.ndarray:
    """Every prompt + reply padded into a batch and run whole through the wrapped model; logits everywhere."""
    tok = handle.tokenizer
    out = np.full(len(prompts), np.nan)
    items = [(i, tok(p, add_special_tokens=False)["input_ids"], tok(r, add_special_tokens=False)["input_ids"])
             for i, (p, r) in enumerate(zip(prompts, replies))]
    items = sorted((it for it in items if it[2]), key=lambda it: -(len(it[1]) + len(it[2])))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        width = max(len(p) + len(r) for _, p, r in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, (_, p, r) in enumerate(batch):
            ids[row, width - len(p) - len(r):] = torch.tensor(p + r)
            mask[row, width - len(p) - len(r):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = handle.hf_model(input_ids=ids.to(handle.device), attention_mask=mask.to(handle.device),
                                 position_ids=positions.to(handle.device), use_cache=False).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None].to(logits.device))[..., 0].cpu()
        for row, (i, _, r) in enumerate(batch):
            out[i] = float(torch.exp(-logprobs[row, width - 1 - len(r):].mean()))
    return out


def best_of(repeats: int, fn, *args) -> tuple[float, np.ndarray]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    handle = emowork.load_model(args.model, device=args.device)
    groups = [g for g in load_sev("test").groups if g.valence == "neutral"][:args.groups]
    prompts = build_prompts(handle, groups, emotions=None).texts
    replies = [g.text for g in generate(handle, prompts, DecodingConfig(max_new_tokens=args.tokens), progress=False)]
    items_prompts = [p for _ in EMOTIONS for p in prompts]
    items_replies = [r for _ in EMOTIONS for r in replies]
    slow_s, slow = best_of(args.repeats, straightforward, handle, items_prompts, items_replies)
    fast_s, fast = best_of(args.repeats, reply_perplexity, handle, items_prompts, items_replies)
    both = ~np.isnan(slow)
    assert (np.isnan(slow) == np.isnan(fast)).all(), "the same replies are empty"
    diff = float(np.max(np.abs(fast[both] - slow[both]) / slow[both])) if both.any() else 0.0
    print(f"{handle.name} on {handle.device}: {len(items_replies)} replies ({len(prompts)} prompts x {len(EMOTIONS)}), "
          f"up to {args.tokens} tokens")
    print(f"straightforward (whole prompt + reply per row, wrapped model): {slow_s:.2f} s")
    print(f"reply_perplexity (shared prompt caches, unwrapped model):      {fast_s:.2f} s")
    print(f"ratio {slow_s / fast_s:.1f}x, largest relative difference {diff:.1e}")
    print(json.dumps({"model": handle.name, "device": str(handle.device), "replies": len(items_replies), "prompts": len(prompts),
                      "max_new_tokens": args.tokens, "straightforward_s": round(slow_s, 3), "shared_prefix_s": round(fast_s, 3),
                      "ratio": round(slow_s / fast_s, 2), "max_relative_difference": diff}))


if __name__ == "__main__":
    main()
