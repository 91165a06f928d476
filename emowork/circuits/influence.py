"""Sublayer influence (docs/method.md section 7): how much a push along an emotion's local direction at one sublayer
moves the last layer's state along that emotion's reference direction.

For emotion e, block L and sublayer p in (attn, mlp), on the neutral prompt (no instruction), ``alpha * sigma[L, p] *
v_local[e, L, p]`` is added to the sublayer's output (``attn_out`` / ``mlp_out``) at the last prompt token, and::

    I[e, L, p] = mean over alphas and samples of  (<h_final', v_ref[e]> - <h_final, v_ref[e]>) / (alpha * sigma[L, p])

where ``h_final`` is the last block's ``resid_post`` at the last token, ``sigma[L, p]`` the mean RMS of the residual
where the sublayer writes (``resid_mid`` for attn, ``resid_post`` for mlp) on these prompts, ``v_local`` the
direction of that site (``attn`` / ``mlp`` of section 3) and ``v_ref[e]`` the reference direction
(:func:`reference_directions`).

Every variant changes one position, so the prompts minus their last token are prefilled once and each variant runs
one token per sample (:class:`~emowork.components.editing.LastTokenRunner`), variants stacked into shared passes:
``E x L x 2 x len(alphas)`` variants cost about that many single-token rows, not that many full forwards.
:func:`sublayer_influence_loop` is the plain reference (one full forward per variant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..analysis.geometry import adjacent_layer_cosine
from ..components.editing import LastTokenRunner
from ..depth import STABLE_COSINE
from ..hooks.attach import StopForward, attach_hooks
from ..hooks.capture import capture
from ..hooks.executors import intervene
from ..hooks.intervention import Intervention
from ..hooks.sites import SITE_HOOKS
from ..intervals import bootstrap_ci

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.directions import EmotionDirections
    from ..model.handle import ModelHandle

SUBLAYERS = ("attn", "mlp")
WRITE_SITES = {"attn": "attn_out", "mlp": "mlp_out"}  # where each sublayer's output is pushed
RESIDUAL_SITES = {"attn": "resid_mid", "mlp": "resid_post"}  # the residual right after each sublayer writes
ALPHAS = (0.1, 0.3, 0.5, 0.7)


def stable_segment(directions: "EmotionDirections", threshold: float = STABLE_COSINE, site: str = "mlp") -> tuple[list[int], str]:
    """The layers where the directions are carried unchanged, and why those.

    With ``c[L]`` the mean over emotions of cos(v[e, L], v[e, L + 1]) (``site`` directions), the segment is the
    longest run of consecutive ``L`` with ``c[L] >= threshold`` (the later one on a tie), plus the layer after its
    last pair. No such pair: the last quarter of the layers (at least one), said so in the reason.
    """
    n = directions.n_layers
    if n < 2:
        return [0], "a one-layer model: its only layer"
    adjacent = adjacent_layer_cosine(directions, site).mean(0)  # [L - 1]
    best: tuple[int, int] | None = None  # (start, stop) of pair indices, stop exclusive
    start = None
    for i, c in enumerate([*adjacent.tolist(), -np.inf]):
        if c >= threshold and start is None:
            start = i
        elif c < threshold and start is not None:
            if best is None or i - start >= best[1] - best[0]:
                best = (start, i)
            start = None
    if best is None:
        first = n - max(1, n // 4)
        return list(range(first, n)), (f"no adjacent-layer cosine reaches {threshold} (at most {float(adjacent.max()):.2f}): "
                                        f"the last quarter of the layers")
    layers = list(range(best[0], best[1] + 1))
    return layers, f"the longest run of layers whose mean adjacent-layer cosine is at least {threshold}"


def reference_directions(directions: "EmotionDirections", layers: Sequence[int]) -> torch.Tensor:
    """``v_ref`` ``[E, D]``: per emotion, the ``attn`` and ``mlp`` directions of ``layers``, each sign-aligned with
    their plain mean, averaged and normalised."""
    stacked = torch.cat([directions.directions[s][:, list(layers)] for s in SUBLAYERS if s in directions.directions], 1)  # [E, n, D]
    mean = stacked.mean(1, keepdim=True)
    signs = torch.sign((stacked * mean).sum(-1, keepdim=True))
    signs[signs == 0] = 1
    aligned = (stacked * signs).mean(1)
    return aligned / aligned.norm(dim=-1, keepdim=True).clamp(min=1e-12)


@dataclass
class SublayerInfluence:
    """``per_sample`` ``[G, E, L, 2]`` (averaged over alphas; sublayers in the order of :data:`SUBLAYERS`), ``values``
    its mean over samples ``[E, L, 2]``, ``sigma`` ``[L, 2]``, ``v_ref`` ``[E, D]``, and what they came from."""

    emotions: list[str]
    per_sample: torch.Tensor
    sigma: torch.Tensor
    v_ref: torch.Tensor
    stable_layers: list[int]
    stable_reason: str
    alphas: tuple[float, ...]
    readout: int
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def values(self) -> torch.Tensor:
        return self.per_sample.mean(0)

    def of(self, emotion: str, sublayer: str) -> torch.Tensor:
        """``[L]``: the influence of every block's ``sublayer`` for ``emotion``."""
        return self.values[self.emotions.index(emotion), :, SUBLAYERS.index(sublayer)]

    def interval(self, emotion: str, layer: int, sublayer: str, seed: int = 0) -> dict[str, float]:
        """``{mean, low, high, n}``: 95% bootstrap interval over samples of one ``I[e, L, p]``."""
        values = self.per_sample[:, self.emotions.index(emotion), layer, SUBLAYERS.index(sublayer)].numpy()
        mean, low, high = bootstrap_ci(values, seed=seed)
        return {"mean": mean, "low": low, "high": high, "n": int(values.size)}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ``influence[e][site]`` per layer, sigma, stable layers and settings."""
        return {"influence": {e: {p: self.of(e, p).tolist() for p in SUBLAYERS} for e in self.emotions},
                "sigma": {p: self.sigma[:, i].tolist() for i, p in enumerate(SUBLAYERS)},
                "stable_layers": self.stable_layers, "stable_reason": self.stable_reason, "alphas": list(self.alphas),
                "readout_layer": self.readout, "n_samples": int(self.per_sample.shape[0]), **self.provenance}


def residual_scales(handle: "ModelHandle", prompts: Sequence[str], cache: bool = True) -> torch.Tensor:
    """``sigma`` ``[L, 2]``: the mean over ``prompts`` of the residual's RMS at the last token, right after each
    sublayer writes (``resid_mid`` for attn, ``resid_post`` for mlp)."""
    acts = capture(handle, list(prompts), [RESIDUAL_SITES[p] for p in SUBLAYERS], cache=cache, progress=False,
                   desc="residual scales")
    return torch.stack([acts[RESIDUAL_SITES[p]].pow(2).mean(-1).sqrt().mean(0) for p in SUBLAYERS], dim=-1)


def _variants(directions: "EmotionDirections", emotions: Sequence[str], sigma: torch.Tensor,
              alphas: Sequence[float]) -> list[tuple[int, int, int, int, Intervention]]:
    """``(emotion index, layer, sublayer index, alpha index, push)`` for every variant."""
    out = []
    for ei, emotion in enumerate(emotions):
        e = directions.emotions.index(emotion)
        for layer in range(directions.n_layers):
            for pi, p in enumerate(SUBLAYERS):
                v = directions.directions[p][e, layer]
                for ai, alpha in enumerate(alphas):
                    push = Intervention(WRITE_SITES[p], layer, "add", alpha * float(sigma[layer, pi]) * v, when="last_prompt")
                    out.append((ei, layer, pi, ai, push))
    return out


def _check(directions: "EmotionDirections", handle: "ModelHandle", alphas: Sequence[float]) -> None:
    missing = [p for p in SUBLAYERS if p not in directions.directions]
    if missing:
        raise ValueError(f"sublayer influence needs the {' and '.join(missing)} directions (extract with sites=('attn', 'mlp')).")
    if directions.n_layers != handle.facts.n_layers:
        raise ValueError(f"the directions have {directions.n_layers} layers but the model has {handle.facts.n_layers}: "
                         "use directions extracted from this model.")
    if not alphas or any(not np.isfinite(a) or a == 0 for a in alphas):
        raise ValueError(f"alphas={list(alphas)}: give finite, non-zero strengths, e.g. (0.1, 0.3, 0.5, 0.7).")


def sublayer_influence(handle: "ModelHandle", directions: "EmotionDirections", prompts: Sequence[str],
                       alphas: Sequence[float] = ALPHAS, emotions: Sequence[str] | None = None,
                       stable: tuple[list[int], str] | None = None, rows_per_pass: int | None = None,
                       progress: bool = True, cache: bool = True) -> SublayerInfluence:
    """``I[e, L, p]`` on ``prompts`` (neutral prompts, one per sample; see the module doc).

    ``stable`` overrides the segment :func:`stable_segment` finds (``(layers, reason)``). The readout is the last
    block's ``resid_post``. ``cache``: read and write the residual scales' capture in the on-disk cache.
    """
    from ..progress import progress_bar

    _check(directions, handle, alphas)
    chosen = list(emotions or directions.emotions)
    layers, reason = stable or stable_segment(directions)
    v_ref = reference_directions(directions, layers)[[directions.emotions.index(e) for e in chosen]]  # [E, D]
    sigma = residual_scales(handle, prompts, cache)
    readout = handle.facts.n_layers - 1
    read = SITE_HOOKS["resid_post"].format(layer=readout)
    runner = LastTokenRunner(handle, prompts)
    base = runner.run([], [read])[read] @ v_ref.T  # [G, E]
    variants = _variants(directions, chosen, sigma, alphas)
    bar = progress_bar(len(variants), "sublayer influence", enabled=progress, unit="variant")
    try:
        outputs = runner.run_many([[push] for *_, push in variants], [read], rows_per_pass, advance=bar.update)
    finally:
        bar.close()
    G = len(prompts)
    per = torch.zeros(G, len(chosen), directions.n_layers, len(SUBLAYERS), len(alphas))
    for (ei, layer, pi, ai, _), seen in zip(variants, outputs):
        moved = seen[read] @ v_ref[ei] - base[:, ei]  # [G]
        per[:, ei, layer, pi, ai] = moved / (alphas[ai] * float(sigma[layer, pi]))
    return SublayerInfluence(chosen, per.mean(-1), sigma, v_ref, layers, reason, tuple(float(a) for a in alphas), readout,
                             {"n_variants": len(variants)})


@torch.inference_mode()
def sublayer_influence_loop(handle: "ModelHandle", directions: "EmotionDirections", prompts: Sequence[str],
                            alphas: Sequence[float] = ALPHAS, emotions: Sequence[str] | None = None,
                            stable: tuple[list[int], str] | None = None, cache: bool = True) -> torch.Tensor:
    """Reference for :func:`sublayer_influence`: one full forward over ``prompts`` per variant, no cache, no stacking.
    Returns ``per_sample`` ``[G, E, L, 2]``."""
    _check(directions, handle, alphas)
    chosen = list(emotions or directions.emotions)
    layers, _ = stable or stable_segment(directions)
    v_ref = reference_directions(directions, layers)[[directions.emotions.index(e) for e in chosen]]
    sigma = residual_scales(handle, prompts, cache)
    read = SITE_HOOKS["resid_post"].format(layer=handle.facts.n_layers - 1)
    enc = handle.encode(list(prompts))
    seen: dict[str, torch.Tensor] = {}

    def reader(act: torch.Tensor, hook: Any) -> None:
        seen["x"] = act[:, -1].float().cpu()
        raise StopForward

    def final(edits: Sequence[Intervention]) -> torch.Tensor:
        with intervene(handle, edits, int(enc["input_ids"].shape[1]), backend="bridge"), attach_hooks(handle, [(read, reader)]):
            try:
                handle.hf_model(**enc, use_cache=False)
            except StopForward:
                pass
        return seen["x"]

    base = final([]) @ v_ref.T  # [G, E]
    per = torch.zeros(len(prompts), len(chosen), directions.n_layers, len(SUBLAYERS), len(alphas))
    for ei, layer, pi, ai, push in _variants(directions, chosen, sigma, alphas):
        per[:, ei, layer, pi, ai] = (final([push]) @ v_ref[ei] - base[:, ei]) / (alphas[ai] * float(sigma[layer, pi]))
    return per.mean(-1)
