"""Dose-response of ablating / enhancing the top-k neurons or heads against random-k controls.

Score: for the samples of emotion e, the change of the last token's projection onto v_mlp[e, R] at a read-out layer R
(resid_post), relative to e's own signal there (the centroid norm ||c[e, R]||): -1 means the edit removed as much
projection as separates e from the average emotion. R defaults to 85% of depth (late: whether it lies in the model's stable
segment, docs/method.md section 3, is measured and said by the components stage), so the score measures what of an
edit reaches the layers that drive the reply rather than the tautological direct write at the edited layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..depth import layer_at
from ..hooks.intervention import Intervention
from ..hooks.sites import SITE_HOOKS
from .editing import LastTokenRunner, component_edit
from .activation_samples import difference_vectors

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.directions import EmotionDirections
    from ..model.handle import ModelHandle
    from .heads import HeadImportance
    from .neurons import NeuronContributions
    from .activation_samples import ComponentSamples

NEURON_KS = (1, 2, 4, 8, 16, 32, 64)
N_SEEDS = 5


def readout_layer(n_layers: int) -> int:
    """The default read-out layer: 85% of depth."""
    return layer_at(n_layers, 0.85)


def target_layers(n_layers: int, readout: int) -> list[int]:
    """Layers whose components are edited: about 25%, 50% and 70% of depth, all below the read-out layer."""
    layers = sorted({min(readout - 1, layer_at(n_layers, f)) for f in (0.25, 0.5, 0.7)})
    return [layer for layer in layers if 0 <= layer < readout]


def doubling(limit: int, series: Sequence[int]) -> list[int]:
    """The k values of ``series`` up to ``limit`` (plus ``limit`` itself when the series stops short of it)."""
    ks = [k for k in series if k <= limit]
    return ks if ks and ks[-1] == limit else ks + [limit]


@dataclass
class DoseResponse:
    """Rows ``{emotion, layer, kind, operation, k, selection ("top" | "random"), seed, effect}``; effects relative."""

    readout: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def curve(self, kind: str, operation: str, selection: str, layer: int | None = None) -> dict[int, dict[str, float]]:
        """``{k: {mean, low, high, n}}`` over emotions (and seeds), optionally for one layer (95% percentile interval
        of a bootstrap over emotions x seeds)."""
        out = {}
        sel = [r for r in self.rows if r["kind"] == kind and r["operation"] == operation and r["selection"] == selection
               and (layer is None or r["layer"] == layer)]
        rng = np.random.default_rng(0)
        for k in sorted({r["k"] for r in sel}):
            values = np.array([r["effect"] for r in sel if r["k"] == k], dtype=float)
            boots = values[rng.integers(0, len(values), size=(2000, len(values)))].mean(1)
            out[k] = {"mean": float(values.mean()), "low": float(np.quantile(boots, 0.025)),
                      "high": float(np.quantile(boots, 0.975)), "n": len(values)}
        return out

    def saturation_k(self, kind: str, operation: str, fraction: float = 0.8) -> int | None:
        """The smallest k whose top-k effect reaches ``fraction`` of the largest-k effect (the long-tail check)."""
        curve = self.curve(kind, operation, "top")
        if not curve:
            return None
        final = curve[max(curve)]["mean"]
        if final == 0:
            return None
        return next(k for k, v in curve.items() if v["mean"] / final >= fraction)


def _cache_path(handle: "ModelHandle", directions: "EmotionDirections", samples: "ComponentSamples", **fields: Any) -> Any:
    import hashlib
    import json

    from ..paths import cache_dir

    blob = json.dumps({"v": 2, "fingerprint": handle.fingerprint, "dtype": str(handle.dtype), "directions": directions.sha256,
                       "prompts": hashlib.sha256("\x00".join(p for row in samples.prompts for p in row).encode()).hexdigest(),
                       **fields}, sort_keys=True, default=str)
    folder = cache_dir() / "dose-response"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{hashlib.sha256(blob.encode()).hexdigest()[:24]}.json"


def run_dose_response(handle: "ModelHandle", directions: "EmotionDirections", samples: "ComponentSamples",
                      neurons: "NeuronContributions", heads: "HeadImportance", layers: Sequence[int] | None = None,
                      readout: int | None = None, neuron_ks: Sequence[int] = NEURON_KS, seeds: int = N_SEEDS,
                      operations: Sequence[str] = ("ablate", "enhance"), progress: bool = True, cache: bool = True) -> DoseResponse:
    """Every (emotion, layer, kind, operation, k) with the top-k components and ``seeds`` random-k draws.

    Results are cached on disk (keyed by model, directions, prompts and every setting), so a notebook that repeats a
    run's analysis reads it back.
    """
    import json

    from ..progress import progress_bar
    from ..storage import atomic_write_json

    f = handle.facts
    readout = readout_layer(f.n_layers) if readout is None else readout
    layers = target_layers(f.n_layers, readout) if layers is None else list(layers)
    path = _cache_path(handle, directions, samples, layers=layers, readout=readout, neuron_ks=list(neuron_ks), seeds=seeds,
                       operations=list(operations)) if cache else None
    if path is not None and path.exists():
        try:
            return DoseResponse(readout, json.loads(path.read_text())["rows"])
        except (OSError, ValueError, KeyError):
            pass
    dmu_neurons = difference_vectors(samples.acts["mlp_post"])  # [E, L, d_mlp]
    dmu_heads = difference_vectors(samples.z_heads(f.n_heads))  # [E, L, H, dh]
    head_ks = doubling(f.n_heads, (1, 2, 4, 8, 16, 32))
    neuron_ks = doubling(min(max(neuron_ks), f.d_mlp), neuron_ks)
    read = SITE_HOOKS["resid_post"].format(layer=readout)
    result = DoseResponse(readout)
    total = len(samples.emotions) * len(layers) * len(operations) * (len(neuron_ks) + len(head_ks)) * (1 + seeds)
    bar = progress_bar(total, "ablation / enhancement", enabled=progress, unit="variant")
    try:
        for ei, emotion in enumerate(samples.emotions):
            runner = LastTokenRunner(handle, samples.prompts_of(emotion))
            v = directions.directions["mlp"][directions.emotions.index(emotion), readout]
            signal = float(directions.norms["mlp"][directions.emotions.index(emotion), readout])
            base = runner.run([], [read])[read] @ v  # [G]
            plan: list[tuple[dict[str, Any], Intervention]] = []  # (row fields, edit) of every variant of this emotion
            for layer in layers:
                for kind, ks, width in (("neuron", neuron_ks, f.d_mlp), ("head", head_ks, f.n_heads)):
                    ranking = (neurons.mean[ei, layer] if kind == "neuron" else heads.mean[ei, layer]).argsort(descending=True)
                    delta = dmu_neurons[ei, layer] if kind == "neuron" else dmu_heads[ei, layer]
                    for operation in operations:
                        for k in ks:
                            draws = [("top", 0, ranking[:k])]
                            generator = torch.Generator().manual_seed(1000 * k + layer)
                            draws += [("random", s, torch.randperm(width, generator=generator)[:k]) for s in range(seeds)]
                            for selection, seed, chosen in draws:
                                edit = component_edit(kind, layer, chosen.tolist(), operation, delta)  # type: ignore[arg-type]
                                plan.append(({"emotion": emotion, "layer": layer, "kind": kind, "operation": operation,
                                              "k": k, "selection": selection, "seed": seed}, edit))
            outputs = runner.run_many([[edit] for _, edit in plan], [read], advance=bar.update)
            for (fields, _), seen in zip(plan, outputs):
                after = seen[read] @ v  # [G]
                result.rows.append({**fields, "effect": float((after - base).mean()) / max(signal, 1e-12)})
    finally:
        bar.close()
    if path is not None:
        atomic_write_json(path, {"readout": readout, "rows": result.rows})
    return result
