"""Fluency of generated replies: perplexity under the unsteered model, and degenerate repetition."""

from __future__ import annotations

import copy
import re
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle

REPEAT_NGRAM = 3
DEGENERATE_SHARE = 0.5


@torch.inference_mode()
def reply_perplexity(handle: "ModelHandle", prompts: Sequence[str], replies: Sequence[str], batch_size: int = 16) -> np.ndarray:
    """Perplexity of each reply's tokens given its prompt, under the model with no intervention: ``[n]``.

    Empty replies get NaN. The reply is tokenized on its own and appended to the prompt's tokens. Each distinct prompt
    is run once (``batch_size`` distinct prompts per pass) and its KV cache shared by every reply to it (a comparison
    asks for one reply per emotion to the same neutral prompt); then passes of at most ``batch_size`` replies. It runs on the
    unwrapped model (no hook points to pay for; the bridge when ``handle.use_unwrapped`` is off), and the unembedding
    and softmax over the vocabulary only at the positions that predict a reply token.
    """
    from ..model.unwrapped import unwrapped_model

    model = unwrapped_model(handle) if handle.use_unwrapped else handle.hf_model
    tok = handle.tokenizer
    out = np.full(len(prompts), np.nan)
    by_prompt: dict[str, list[tuple[int, list[int]]]] = {}
    for i, (p, r) in enumerate(zip(prompts, replies)):
        reply_ids = tok(r, add_special_tokens=False)["input_ids"]
        if reply_ids:
            by_prompt.setdefault(p, []).append((i, reply_ids))
    distinct = sorted(by_prompt, key=lambda p: -len(p))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    device = handle.device
    for start in range(0, len(distinct), batch_size):
        chunk = distinct[start:start + batch_size]
        prompt_ids = [tok(p, add_special_tokens=False)["input_ids"] for p in chunk]
        width = max(len(ids) for ids in prompt_ids)
        ids, mask = _padded(prompt_ids, width, pad, left=True)
        first = model.base_model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                 position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(device), use_cache=True)
        last = first.last_hidden_state[:, -1]  # [P, D]: predicts each prompt's first reply token
        every = [(k, i, r) for k, p in enumerate(chunk) for i, r in by_prompt[p]]  # (prompt in chunk, item, reply ids)
        for row_start in range(0, len(every), batch_size):  # at most batch_size replies per pass
            rows = every[row_start:row_start + batch_size]
            cache = first.past_key_values if len(every) <= batch_size else copy.deepcopy(first.past_key_values)
            _score_replies(model, cache, mask, last, prompt_ids, rows, pad, device, out)
    return out


def _score_replies(model: torch.nn.Module, cache: Any, prompt_mask: torch.Tensor, last: torch.Tensor,
                   prompt_ids: list[list[int]], rows: list[tuple[int, int, list[int]]], pad: int, device: torch.device,
                   out: np.ndarray) -> None:
    """One pass over ``rows`` (prompt index ``k`` in the chunk, item, reply ids) on their prompts' ``cache`` (expanded
    in place to one copy per row); writes each item's perplexity into ``out``."""
    owner = torch.tensor([k for k, _, _ in rows])
    cache.reorder_cache(owner.to(device))  # [n_rows, ...]
    reply_width = max(len(r) for _, _, r in rows)
    reply_ids, reply_mask = _padded([r for _, _, r in rows], reply_width, pad, left=False)
    lengths = torch.tensor([len(prompt_ids[k]) for k, _, _ in rows])
    hidden = model.base_model(input_ids=reply_ids.to(device), attention_mask=torch.cat([prompt_mask[owner], reply_mask], 1).to(device),
                              position_ids=(lengths[:, None] + torch.arange(reply_width)).to(device),
                              past_key_values=cache, use_cache=True).last_hidden_state  # [n_rows, reply_width, D]
    # reply token 0 is predicted from its prompt's last position, token j > 0 from reply position j - 1
    last = last.to(hidden.device)
    predictors = torch.cat([torch.cat([last[k:k + 1], hidden[row, :len(r) - 1]]) for row, (k, _, r) in enumerate(rows)])
    targets = torch.tensor([t for _, _, r in rows for t in r])
    logits = _logits(model, predictors)  # [n_reply_tokens, vocab]
    logprobs = torch.log_softmax(logits, -1).gather(-1, targets[:, None].to(logits.device))[:, 0].cpu()
    offset = 0
    for _, i, r in rows:
        out[i] = float(torch.exp(-logprobs[offset:offset + len(r)].mean()))
        offset += len(r)


def _padded(sequences: Sequence[Sequence[int]], width: int, pad: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, mask)`` ``[n, width]``: token lists padded on the left or the right."""
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[row, span] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, span] = 1
    return ids, mask


def _logits(model: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The model's next-token logits (float32) for final hidden states ``[n, D]``: its output embedding, then the
    scalings some models' own forward applies after it (Cohere's ``logit_scale``, Granite's ``logits_scaling``, Gemma's
    final soft-capping)."""
    config = model.config
    logits = model.get_output_embeddings()(hidden).float()
    if getattr(config, "logit_scale", None):
        logits = logits * config.logit_scale
    if getattr(config, "logits_scaling", None):
        logits = logits / config.logits_scaling
    cap = getattr(config, "final_logit_softcapping", None)
    return cap * torch.tanh(logits / cap) if cap else logits


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
