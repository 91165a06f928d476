"""``capture``: batched, cached activation capture at chosen sites, layers and token positions.

Prompts are tokenized with left padding, so position ``-1`` is every prompt's last token. Within a chunk
they are sorted by length and grouped into batches under a token budget (little padding); each hook
copies only the requested positions to a preallocated float32 CPU result, and the forward stops after the
last layer needed (no unembedding). Memory beyond the result is one batch's activations.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from .activation_store import CHUNK_SIZE, CaptureStore, capture_key, prompts_digest
from .attach import StopForward
from ..model.memory import MAX_CAPTURE_ROWS
from ..progress import progress_bar
from .sites import SITE_HOOKS, SiteSpec, resolve_layers, resolve_sites

if TYPE_CHECKING:  # pragma: no cover
    from ..model.handle import ModelHandle

CPU_TOKENS_PER_BATCH = 4096
MAX_BATCH = MAX_CAPTURE_ROWS  # prompts per pass, CPU and GPU


def capture(
    handle: "ModelHandle",
    prompts: Sequence[str],
    sites: str | Sequence[str],
    positions: str | int | Sequence[int] = "last",
    layers: int | Sequence[int] | None = None,
    batch_size: int | str = "auto",
    cache: bool = True,
    progress: bool = True,
    desc: str = "capture",
) -> dict[str, torch.Tensor]:
    """Capture activations of ``prompts`` (texts, e.g. from ``handle.format_chat``) at ``sites``.

    Args:
        handle: a loaded model.
        prompts: texts; they are encoded without adding special tokens.
        sites: one or more names of :data:`emowork.hooks.sites.SITE_HOOKS` (or the aliases ``attn``, ``mlp`` of docs/method.md section 3).
        positions: ``"last"`` (the last prompt token), a negative offset from the end (``-2``), or a list of them.
        layers: layer indices to read (``None`` = all; negative counts from the end).
        batch_size: prompts per forward pass, or ``"auto"`` (a token budget: 4096 tokens on CPU, from free
            memory on CUDA).
        cache: read and write the on-disk activation cache (keyed by model fingerprint, dtype, prompts,
            sites, layers, positions and extractor version).
        progress: show a progress bar.

    Returns:
        ``{site: tensor}`` keyed by the site names as given, float32 on CPU, shape ``[n_prompts, n_layers, width]``
        for a single position or ``[n_prompts, n_positions, n_layers, width]`` for a list; ``n_layers`` is the
        number of selected layers and ``width`` is d_model, d_mlp (``mlp_post``) or n_heads * d_head (``z``,
        head-major).
    """
    if isinstance(prompts, str):
        raise TypeError("capture() takes a list of prompts, not a single string")
    prompts = list(prompts)
    if not prompts:
        raise ValueError("capture() got no prompts")
    facts = handle.facts
    names = [sites] if isinstance(sites, str) else list(sites)
    specs = resolve_sites(names, facts.d_model, facts.d_mlp, facts.n_heads, facts.d_head)
    layer_list = resolve_layers(layers, facts.n_layers)
    offsets, squeeze = _resolve_positions(positions)
    n_pos = len(offsets)
    results = {spec.name: torch.empty(len(prompts), n_pos, len(layer_list), spec.width) for spec in specs}

    store = None
    if cache:
        fields = {
            "fingerprint": handle.fingerprint,
            "dtype": str(handle.dtype),
            "prompts_sha256": prompts_digest(prompts),
            "n_prompts": len(prompts),
            "sites": [s.name for s in specs],
            "layers": layer_list,
            "positions": offsets,
            "chunk_size": CHUNK_SIZE,
        }
        key = capture_key(fields)
        manifest = {**fields, "model": handle.name, "n_chunks": math.ceil(len(prompts) / CHUNK_SIZE)}
        store = CaptureStore(key, manifest)

    bar = progress_bar(len(prompts), desc, enabled=progress, unit="prompt")
    try:
        for chunk_index, start in enumerate(range(0, len(prompts), CHUNK_SIZE)):
            stop = min(start + CHUNK_SIZE, len(prompts))
            loaded = store.load_chunk(chunk_index) if store is not None else None
            if loaded is not None and all(loaded.get(s.name) is not None and loaded[s.name].shape[0] == stop - start for s in specs):
                for spec in specs:
                    results[spec.name][start:stop] = loaded[spec.name]
                bar.update(stop - start)
                continue
            chunk = {spec.name: results[spec.name][start:stop] for spec in specs}
            _capture_into(handle, prompts[start:stop], specs, layer_list, offsets, chunk, batch_size, bar.update)
            if store is not None:
                store.save_chunk(chunk_index, {name: tensor.clone() for name, tensor in chunk.items()})
    finally:
        bar.close()

    out: dict[str, torch.Tensor] = {}
    for raw, spec in zip(names, specs):
        tensor = results[spec.name]
        out[raw] = tensor[:, 0] if squeeze else tensor
    return out


def _resolve_positions(positions: str | int | Sequence[int]) -> tuple[list[int], bool]:
    """Return ``(negative offsets from the end, squeeze)`` for a positions argument."""
    if isinstance(positions, str):
        if positions != "last":
            raise ValueError(f"positions={positions!r}: use 'last', a negative offset like -2, or a list of them.")
        return [-1], True
    if isinstance(positions, int):
        offsets, squeeze = [positions], True
    else:
        offsets, squeeze = list(positions), False
    if not offsets or any(not isinstance(p, int) or p >= 0 for p in offsets):
        raise ValueError(f"positions={positions!r}: offsets count from the end of each prompt and must be negative (-1 = last).")
    return offsets, squeeze


def _capture_into(
    handle: "ModelHandle",
    prompts: list[str],
    specs: list[SiteSpec],
    layers: list[int],
    offsets: list[int],
    out: dict[str, torch.Tensor],
    batch_size: int | str,
    advance: Callable[[int], Any],
) -> None:
    """Fill ``out[site][i]`` (``[n_pos, n_layers, width]``) for each prompt ``i``, batch by batch."""
    lengths = handle.n_tokens(prompts)
    shortest = min(lengths)
    if -min(offsets) > shortest:
        raise ValueError(f"positions {offsets} reach before the start of a {shortest}-token prompt.")
    for batch in _plan_batches(lengths, batch_size, handle):
        acts = run_sites(handle, [prompts[i] for i in batch], specs, layers, offsets)
        index = torch.tensor(batch)
        for spec in specs:
            out[spec.name][index] = acts[spec.name]
        advance(len(batch))


def _plan_batches(lengths: list[int], batch_size: int | str, handle: "ModelHandle") -> list[list[int]]:
    """Group prompt indices into batches: longest first, under a token budget (or a fixed size)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    if batch_size != "auto":
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r}: use a positive integer or 'auto'.")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    budget = token_budget(handle, max(lengths))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and ((len(current) + 1) * width > budget or len(current) >= MAX_BATCH):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def token_budget(handle: "ModelHandle", max_len: int) -> int:
    """Tokens per forward pass for ``batch_size="auto"``: fixed on CPU/MPS, from free memory on CUDA."""
    if handle.device.type != "cuda":
        return max(CPU_TOKENS_PER_BATCH, max_len)
    from ..model.memory import capture_token_budget, model_free_bytes

    return capture_token_budget(handle.facts, handle.dtype, model_free_bytes(handle), max_len)


@torch.inference_mode()
def run_sites(
    handle: "ModelHandle",
    prompts: list[str],
    specs: list[SiteSpec],
    layers: list[int],
    offsets: list[int],
    extra_hooks: list[tuple[str, Callable]] | None = None,
) -> dict[str, torch.Tensor]:
    """One batched forward: return ``{site: float32 CPU [batch, n_pos, n_layers, width]}`` at ``offsets``.

    ``extra_hooks`` are added before the reading hooks (e.g. an intervention), so reads see their effect.
    """
    enc = handle.encode(prompts)
    n, n_pos = len(prompts), len(offsets)
    out = {spec.name: torch.empty(n, n_pos, len(layers), spec.width) for spec in specs}
    index = torch.tensor(offsets, device=handle.device)
    hooks: list[tuple[str, Callable]] = list(extra_hooks or [])
    for spec in specs:
        for j, layer in enumerate(layers):
            hooks.append((spec.hook_name(layer), _reader(out[spec.name], j, index)))
    last = max(layers)
    hooks.append((SITE_HOOKS["resid_post"].format(layer=last), _stop))
    try:
        handle.bridge.run_with_hooks(
            enc["input_ids"],
            fwd_hooks=hooks,
            attention_mask=enc["attention_mask"],
            position_ids=enc["position_ids"],
            return_type=None,
        )
    except StopForward:
        pass
    return out


def _reader(target: torch.Tensor, layer_slot: int, index: torch.Tensor) -> Callable:
    def hook(act: torch.Tensor, hook: Any) -> None:
        picked = act.index_select(1, index.to(act.device) + act.shape[1])  # [batch, n_pos, ...] (a split model: the layer's device)
        target[:, :, layer_slot] = picked.reshape(picked.shape[0], picked.shape[1], -1).to("cpu", torch.float32)

    return hook


def _stop(act: torch.Tensor, hook: Any) -> None:
    raise StopForward


def describe_batches(handle: "ModelHandle", prompts: Sequence[str], batch_size: int | str = "auto") -> list[int]:
    """Sizes of the batches :func:`capture` would run for ``prompts`` (for benchmarks and tests)."""
    return [len(b) for b in _plan_batches(handle.n_tokens(list(prompts)), batch_size, handle)]


__all__ = ["capture", "run_sites", "describe_batches", "token_budget", "token_activations"]


@torch.inference_mode()
def token_activations(handle: "ModelHandle", prompt: str, site: str, layers: Sequence[int] | None = None) -> tuple[list[str], torch.Tensor]:
    """Every token's activation of one prompt at ``site``.

    Returns ``(tokens, acts)``: the prompt's tokens as strings and a float32 CPU tensor
    ``[n_layers, seq, width]`` for the selected layers (all by default).
    """
    facts = handle.facts
    (spec,) = resolve_sites([site], facts.d_model, facts.d_mlp, facts.n_heads, facts.d_head)
    layer_list = resolve_layers(layers, facts.n_layers)
    ids = handle.encode([prompt])["input_ids"]
    n = ids.shape[1]
    acts = run_sites(handle, [prompt], [spec], layer_list, list(range(-n, 0)))[spec.name][0]  # [seq, n_layers, width]
    tokens = [handle.tokenizer.decode([t]) for t in ids[0].tolist()]
    return tokens, acts.transpose(0, 1).contiguous()
