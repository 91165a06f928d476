"""Circuits: which neurons and heads of which blocks carry an emotion, chosen by sublayer influence (docs/method.md
section 7), and the interventions that modulate them.

:func:`assemble` splits a budget of ``budget_per_sublayer * 2 * n_layers`` components into neurons
(``neuron_share``) and heads (when the model has fewer heads than that, the rest goes to neurons); every block first
gets a floor (``min_neurons``, ``min_heads``, lowered evenly when the budget cannot pay for them), the rest goes to blocks in proportion to ``max(I, 0)`` of their mlp (neurons) or attn
(heads) sublayer (:func:`allocate`: largest remainders, never more units than a block has). Inside a block the
neurons with the largest mean contribution and the heads with the largest importance (section 4) fill its share.

A :class:`Circuit` holds, per emotion, the chosen ``(layer, neuron)`` and ``(layer, head)`` with their scores and
their difference vectors ``dmu[e, L]`` (the emotion's mean activation minus the mean over the six emotions, on the
analysis split; only the chosen entries are kept), and modulates: :meth:`Circuit.modulate` adds ``scale * dmu`` on
exactly those units (the live panel's ``Circuit`` protocol).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from ..errors import EmoworkError
from ..hooks.intervention import Intervention
from ..storage import atomic_write_json, load_tensors_checked, save_tensors_checked

if TYPE_CHECKING:  # pragma: no cover
    from ..components.heads import HeadImportance
    from ..components.neurons import NeuronContributions
    from ..model.handle import ModelHandle

CIRCUIT_FORMAT = 1
KINDS = ("neuron", "head")


class CircuitError(EmoworkError):
    """A circuit that cannot be built, saved or loaded as asked."""


NEURON_SHARE = 0.7  # the share of a sublayer's budget spent on MLP neurons (the rest on heads)


def allocate(total: int, weights: Sequence[float], floor: int, cap: int) -> list[int]:
    """Counts per block summing to ``min(total, cap * n)``: each block ``min(floor, cap)`` first (the floor lowered to
    ``total // n`` when ``total`` cannot pay for it), the rest in proportion to ``max(weight, 0)`` by largest
    remainders, with no block above ``cap``; blocks with no positive weight share what is left evenly."""
    n = len(weights)
    if n == 0 or total <= 0:
        return [0] * n
    total = min(total, cap * n)
    base = min(floor, cap, total // n)
    counts = np.full(n, base, dtype=int)
    w = np.clip(np.nan_to_num(np.asarray(weights, float), nan=0.0), 0, None)
    left = total - int(counts.sum())
    while left > 0:  # largest remainders among blocks with room; what a cap cuts off goes round again
        room = counts < cap
        share = np.where(room, w, 0.0)
        if share.sum() <= 0:  # no positive influence where there is room: spread evenly
            share = room.astype(float)
        exact = left * share / share.sum()
        add = np.floor(exact).astype(int)
        order = np.argsort(-(exact - add), kind="stable")
        add[order[:left - int(add.sum())]] += 1
        counts += np.minimum(add, cap - counts)
        left = total - int(counts.sum())
    return counts.tolist()


@dataclass
class Circuit:
    """Per emotion: ``units[e][kind]`` ``LongTensor [n, 2]`` of (layer, index), ``scores[e][kind]`` ``[n]`` and
    ``deltas[e][kind]`` (``[n]`` for neurons, ``[n, d_head]`` for heads); ``provenance`` says how it was made."""

    emotions: list[str]
    n_layers: int
    d_mlp: int
    n_heads: int
    d_head: int
    units: dict[str, dict[str, torch.Tensor]]
    scores: dict[str, dict[str, torch.Tensor]]
    deltas: dict[str, dict[str, torch.Tensor]]
    provenance: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ reading
    def size(self, emotion: str | None = None) -> int:
        """Components of one emotion's circuit (the first emotion's when None; all emotions have the same budget)."""
        e = emotion or self.emotions[0]
        return sum(int(self.units[e][k].shape[0]) for k in KINDS)

    def counts(self, emotion: str) -> dict[str, list[int]]:
        """``{"neuron": [L], "head": [L]}``: components per block."""
        return {k: torch.bincount(self.units[emotion][k][:, 0], minlength=self.n_layers).tolist() if len(self.units[emotion][k])
                else [0] * self.n_layers for k in KINDS}

    def components(self, emotion: str, kind: str) -> set[tuple[int, int]]:
        return {(int(a), int(b)) for a, b in self.units[emotion][kind].tolist()}

    def overlap(self) -> dict[str, Any]:
        """Shared components and Jaccard index between every pair of emotions' circuits (neurons and heads together):
        ``{"emotions", "shared": [E, E], "jaccard": [E, E]}``."""
        sets = [{(k, *c) for k in KINDS for c in self.components(e, k)} for e in self.emotions]
        shared = [[len(a & b) for b in sets] for a in sets]
        jaccard = [[len(a & b) / max(len(a | b), 1) for b in sets] for a in sets]
        return {"emotions": list(self.emotions), "shared": shared, "jaccard": jaccard}

    def summary(self) -> dict[str, Any]:
        """JSON-ready: size, per-block counts per emotion, overlap, provenance."""
        return {"size": self.size(), "counts": {e: self.counts(e) for e in self.emotions}, "overlap": self.overlap(),
                "provenance": self.provenance}

    # ------------------------------------------------------------------ modulation
    def modulate(self, handle: "ModelHandle", emotion: str, scale: float, when: Any = "last_prompt") -> list[Intervention]:
        """Interventions adding ``scale * dmu[e, L]`` on the circuit's neurons (``mlp_post``) and heads' ``z`` slices,
        one per block and kind, at ``when`` (``last_prompt``, or ``from_last_prompt`` for every generated token too)."""
        if emotion not in self.emotions:
            raise CircuitError(f"this circuit has no {emotion!r} part; it has {', '.join(self.emotions)}.")
        f = handle.facts
        if (f.n_layers, f.d_mlp, f.n_heads, f.d_head) != (self.n_layers, self.d_mlp, self.n_heads, self.d_head):
            raise CircuitError(f"the circuit was built for a model with {self.n_layers} layers, d_mlp {self.d_mlp}, "
                               f"{self.n_heads} heads of {self.d_head}; this model has {f.n_layers}, {f.d_mlp}, "
                               f"{f.n_heads}, {f.d_head}.")
        if not np.isfinite(scale):
            raise ValueError(f"scale={scale!r}: give a finite number.")
        out: list[Intervention] = []
        for kind, site, width, unit in (("neuron", "mlp_post", self.d_mlp, 1), ("head", "z", self.n_heads * self.d_head, self.d_head)):
            units, deltas = self.units[emotion][kind], self.deltas[emotion][kind]
            for layer in sorted({int(x) for x in units[:, 0].tolist()}):
                rows = (units[:, 0] == layer).nonzero().flatten()
                chosen = units[rows, 1]
                value = torch.zeros(width // unit, unit)  # one row per neuron or head
                value[chosen] = scale * deltas[rows].reshape(len(rows), unit)
                out.append(Intervention(site, layer, "add", value.reshape(-1), units=tuple(chosen.tolist()), when=when))
        return out

    # ------------------------------------------------------------------ variants
    def only(self, kind: str) -> "Circuit":
        """The same circuit with only its neurons (``kind="neuron"``) or only its heads."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}: use 'neuron' or 'head'.")
        keep = lambda d: {e: {k: (v if k == kind else v[:0]) for k, v in d[e].items()} for e in self.emotions}  # noqa: E731
        return Circuit(self.emotions, self.n_layers, self.d_mlp, self.n_heads, self.d_head, keep(self.units),
                       keep(self.scores), keep(self.deltas), {**self.provenance, "only": kind})

    # ------------------------------------------------------------------ files
    @property
    def sha256(self) -> str:
        h = hashlib.sha256(json.dumps(self.provenance, sort_keys=True, default=str).encode())
        for e in self.emotions:
            for k in KINDS:
                h.update(f"|{e}|{k}|{tuple(self.units[e][k].shape)}|{tuple(self.deltas[e][k].shape)}|".encode())
                h.update(self.units[e][k].numpy().tobytes())
                h.update(self.deltas[e][k].float().numpy().tobytes())
        return h.hexdigest()

    def save(self, folder: str | Path) -> Path:
        """``circuit.json`` (emotions, shapes, provenance) and ``circuit.safetensors`` (units, scores, deltas), atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"{e}.{k}.{what}": getattr(self, what)[e][k].contiguous()
                   for e in self.emotions for k in KINDS for what in ("units", "scores", "deltas")}
        save_tensors_checked(folder / "circuit.safetensors", tensors)
        atomic_write_json(folder / "circuit.json", {
            "format": CIRCUIT_FORMAT, "emotions": self.emotions, "n_layers": self.n_layers, "d_mlp": self.d_mlp,
            "n_heads": self.n_heads, "d_head": self.d_head, "sha256": self.sha256, "provenance": self.provenance,
            "summary": {"size": self.size(), "counts": {e: self.counts(e) for e in self.emotions}}})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Circuit":
        folder = Path(folder)
        meta_path = folder / "circuit.json"
        if not meta_path.exists():
            raise CircuitError(f"{folder} holds no circuit.json: give a folder written by Circuit.save (e.g. runs/NAME/artifacts/circuits).")
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError as err:
            raise CircuitError(f"{meta_path} is not valid JSON ({err}); delete the folder and assemble the circuit again.") from None
        if meta.get("format") != CIRCUIT_FORMAT:
            raise CircuitError(f"{meta_path} has format {meta.get('format')!r}; this emowork reads format {CIRCUIT_FORMAT}.")
        tensors = load_tensors_checked(folder / "circuit.safetensors")
        try:
            parts = {what: {e: {k: tensors[f"{e}.{k}.{what}"] for k in KINDS} for e in meta["emotions"]}
                     for what in ("units", "scores", "deltas")}
        except KeyError as err:
            raise CircuitError(f"{folder / 'circuit.safetensors'} lacks {err}: the file is incomplete; assemble the circuit again.") from None
        circuit = cls(meta["emotions"], meta["n_layers"], meta["d_mlp"], meta["n_heads"], meta["d_head"],
                      parts["units"], parts["scores"], parts["deltas"], meta.get("provenance", {}))
        if circuit.sha256 != meta.get("sha256"):
            raise CircuitError(f"{folder}: the tensors do not match circuit.json (a partial copy?); assemble the circuit again.")
        return circuit


def assemble(influence: Any, neurons: "NeuronContributions", heads: "HeadImportance", dmu_neurons: torch.Tensor,
             dmu_heads: torch.Tensor, budget_per_sublayer: int = 10, neuron_share: float = NEURON_SHARE, min_neurons: int = 4,
             min_heads: int = 2) -> Circuit:
    """One circuit per emotion of ``influence`` (a :class:`~emowork.circuits.influence.SublayerInfluence` or a
    ``[E, L, 2]`` tensor in ``neurons.emotions`` order); see the module doc.

    ``dmu_neurons`` ``[E, L, d_mlp]`` and ``dmu_heads`` ``[E, L, n_heads, d_head]`` are the difference vectors
    (:func:`emowork.components.activation_samples.difference_vectors`) in ``neurons.emotions`` order.
    """
    values = influence if isinstance(influence, torch.Tensor) else influence.values
    emotions = list(getattr(influence, "emotions", neurons.emotions))
    E, L, d_mlp = neurons.mean.shape
    n_heads, d_head = dmu_heads.shape[-2:]
    if values.shape != (len(emotions), L, 2):
        raise CircuitError(f"influence has shape {tuple(values.shape)}; expected [emotions, {L} layers, 2 sublayers].")
    if budget_per_sublayer < 1 or not 0 <= neuron_share <= 1:
        raise CircuitError(f"budget_per_sublayer={budget_per_sublayer}, neuron_share={neuron_share}: give a budget of at "
                           "least 1 and a share between 0 and 1.")
    total = budget_per_sublayer * 2 * L
    n_head_units = min(total - int(round(neuron_share * total)), n_heads * L)  # a model with few heads: the rest
    n_neurons = min(total - n_head_units, d_mlp * L)                           # of the budget goes to neurons
    units: dict[str, dict[str, torch.Tensor]] = {}
    scores: dict[str, dict[str, torch.Tensor]] = {}
    deltas: dict[str, dict[str, torch.Tensor]] = {}
    for ei, emotion in enumerate(emotions):
        k = neurons.emotions.index(emotion)
        plan = {"neuron": allocate(n_neurons, values[ei, :, 1].tolist(), min_neurons, d_mlp),
                "head": allocate(n_head_units, values[ei, :, 0].tolist(), min_heads, n_heads)}
        units[emotion], scores[emotion], deltas[emotion] = {}, {}, {}
        for kind, ranking, dmu in (("neuron", neurons.mean[k], dmu_neurons[k]), ("head", heads.mean[heads.emotions.index(emotion)], dmu_heads[k])):
            rows, sc, dl = [], [], []
            for layer, count in enumerate(plan[kind]):
                if count == 0:
                    continue
                top = ranking[layer].topk(count)
                rows += [(layer, int(i)) for i in top.indices]
                sc.append(top.values)
                dl.append(dmu[layer][top.indices])
            width = () if kind == "neuron" else (d_head,)
            units[emotion][kind] = torch.tensor(rows, dtype=torch.long).reshape(-1, 2)
            scores[emotion][kind] = torch.cat(sc).float() if sc else torch.zeros(0)
            deltas[emotion][kind] = torch.cat(dl).float() if dl else torch.zeros(0, *width)
    provenance = {"budget_per_sublayer": budget_per_sublayer, "neuron_share": neuron_share, "min_neurons": min_neurons,
                  "min_heads": min_heads, "total": total, "neurons": n_neurons, "heads": n_head_units,
                  "stable_layers": getattr(influence, "stable_layers", None), "selection": "influence-weighted top-ranked"}
    return Circuit(emotions, L, d_mlp, n_heads, d_head, units, scores, deltas, provenance)


def random_circuit(circuit: Circuit, dmu_neurons: torch.Tensor, dmu_heads: torch.Tensor, seed: int,
                   emotions: Sequence[str] | None = None) -> Circuit:
    """A control: per emotion and block, as many neurons and heads as ``circuit`` has there, drawn at random (seeded),
    with their own difference vectors (``dmu_*`` in ``emotions`` order, default the circuit's)."""
    order = list(emotions or circuit.emotions)
    generator = torch.Generator().manual_seed(seed)
    units: dict[str, dict[str, torch.Tensor]] = {}
    scores: dict[str, dict[str, torch.Tensor]] = {}
    deltas: dict[str, dict[str, torch.Tensor]] = {}
    for emotion in circuit.emotions:
        k = order.index(emotion)
        counts = circuit.counts(emotion)
        units[emotion], scores[emotion], deltas[emotion] = {}, {}, {}
        for kind, width, dmu in (("neuron", circuit.d_mlp, dmu_neurons[k]), ("head", circuit.n_heads, dmu_heads[k])):
            rows, dl = [], []
            for layer, count in enumerate(counts[kind]):
                if count:
                    chosen = torch.randperm(width, generator=generator)[:count]
                    rows += [(layer, int(i)) for i in chosen]
                    dl.append(dmu[layer][chosen])
            units[emotion][kind] = torch.tensor(rows, dtype=torch.long).reshape(-1, 2)
            scores[emotion][kind] = torch.zeros(len(rows))
            deltas[emotion][kind] = torch.cat(dl).float() if dl else circuit.deltas[emotion][kind][:0]
    return Circuit(circuit.emotions, circuit.n_layers, circuit.d_mlp, circuit.n_heads, circuit.d_head, units, scores, deltas,
                   {**circuit.provenance, "selection": f"random, same per-block counts (seed {seed})"})
