"""Fluency of generated replies: perplexity under the unsteered model, and degenerate repetition."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle

REPEAT_NGRAM = 3
DEGENERATE_SHARE = 0.5


@torch.inference_mode()
def reply_perplexity(handle: "ModelHandle", prompts: Sequence[str], replies: Sequence[str], batch_size: int = 16) -> np.ndarray:
    """Perplexity of each reply's tokens given its prompt, under the model with no intervention: ``[n]``.

    Empty replies get NaN. The reply is tokenized on its own and appended to the prompt's tokens.
    """
    tok = handle.tokenizer
    out = np.full(len(prompts), np.nan)
    items = []
    for i, (p, r) in enumerate(zip(prompts, replies)):
        reply_ids = tok(r, add_special_tokens=False)["input_ids"]
        if reply_ids:
            items.append((i, tok(p, add_special_tokens=False)["input_ids"], reply_ids))
    items.sort(key=lambda it: -(len(it[1]) + len(it[2])))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        width = max(len(p) + len(r) for _, p, r in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, (_, p, r) in enumerate(batch):
            seq = p + r
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = handle.hf_model(input_ids=ids.to(handle.device), attention_mask=mask.to(handle.device),
                                 position_ids=positions.to(handle.device), use_cache=False).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None].to(logits.device))[..., 0].cpu()
        for row, (i, _, r) in enumerate(batch):
            nll = -logprobs[row, width - 1 - len(r):]  # predictions of the reply's tokens
            out[i] = float(torch.exp(nll.mean()))
    return out


def repeated_ngram_share(text: str, n: int = REPEAT_NGRAM) -> float:
    """Share of word n-grams in ``text`` that already occurred earlier in it (0 = no repetition)."""
    words = re.findall(r"\w+|[^\w\s]", text.lower())
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def is_degenerate(text: str) -> bool:
    """True for empty replies and replies where at least half the word trigrams repeat (loops, stutter)."""
    return not text.strip() or repeated_ngram_share(text) >= DEGENERATE_SHARE
