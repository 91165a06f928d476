"""Neuron contributions to the emotion directions (docs/method.md section 4).

For MLP layer L and emotion e with unit direction v = v_mlp[e, L]: ``beta = W_out v`` gives each neuron's write onto
the direction per unit of activation; with H the neuron activations (``mlp.hook_post``: act(gate(x)) * up(x) for a
gated MLP, act(W_in x) otherwise) at the last prompt token of e's prompts, ``c = H * beta`` is each neuron's
contribution to the direction. Neurons are ranked per layer by their mean contribution over e's samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.directions import EmotionDirections
    from ..model.handle import ModelHandle
    from .activation_samples import ComponentSamples


@dataclass
class NeuronContributions:
    """Per emotion and layer: ``beta`` ``[E, L, d_mlp]``, mean and std of ``c = H * beta`` over the emotion's samples."""

    emotions: list[str]
    beta: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def top(self, emotion: str, layer: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(indices, mean contributions)`` of the ``k`` neurons of ``layer`` that write most onto ``emotion``."""
        values, indices = self.mean[self.emotions.index(emotion), layer].topk(k)
        return indices, values

    def share_of_top(self, emotion: str, layer: int, k: int) -> float:
        """Share of the layer's total positive contribution that its top ``k`` neurons carry (the long-tail check)."""
        row = self.mean[self.emotions.index(emotion), layer]
        positive = row.clamp(min=0)
        return float(positive.topk(k).values.sum() / positive.sum().clamp(min=1e-12))

    def table(self, k: int = 3, layers: list[int] | None = None) -> list[dict[str, Any]]:
        """Rows ``{emotion, layer, rank, neuron, mean_contribution, std, sign, beta}`` for the top ``k`` per cell."""
        rows = []
        for e in self.emotions:
            for layer in layers if layers is not None else range(self.mean.shape[1]):
                indices, values = self.top(e, layer, k)
                for rank, (i, v) in enumerate(zip(indices.tolist(), values.tolist()), 1):
                    ei = self.emotions.index(e)
                    rows.append({"emotion": e, "layer": layer, "rank": rank, "neuron": i, "mean_contribution": v,
                                 "std": float(self.std[ei, layer, i]), "sign": "+" if v >= 0 else "-",
                                 "beta": float(self.beta[ei, layer, i])})
        return rows


@torch.inference_mode()
def neuron_contributions(handle: "ModelHandle", directions: "EmotionDirections", samples: "ComponentSamples",
                         site: str = "mlp") -> NeuronContributions:
    """Contributions ``c = H * (W_out v)`` of every neuron of every layer, for every emotion; see the module doc."""
    H = samples.acts["mlp_post"]  # [G, E, L, d_mlp]
    V = directions.directions[site][[directions.emotions.index(e) for e in samples.emotions]]  # [E, L, D]
    # beta = W_out v, one layer at a time on the model's device (no full copy of every W_out on the CPU).
    beta = torch.stack([
        (V[:, layer].to(handle.layer_device(layer), torch.float32) @ handle.W_out(layer).detach().float().T).cpu()
        for layer in range(handle.facts.n_layers)
    ], dim=1)  # [E, L, d_mlp]
    c = H * beta.unsqueeze(0)  # [G, E, L, d_mlp]
    return NeuronContributions(list(samples.emotions), beta, c.mean(0), c.std(0) if c.shape[0] > 1 else torch.zeros_like(c[0]))
