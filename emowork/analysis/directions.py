"""Context-agnostic emotion directions (docs/method.md section 3).

For every group g (a scenario with one outcome) and emotion e, the emotion-elicited prompt is run and the last
prompt token is read at two sites per layer: ``attn`` = resid_mid (after attention), ``mlp`` = resid_post (after the
block; the raw residual, not HF's post-norm last hidden state). Then, per layer and site::

    x[g, e] - mean_e' x[g, e']     remove the group's content (what its six prompts share)
    c[e]    = mean over groups      the emotion's centroid
    v[e]    = normalise(c[e] - mean_e' c[e'])   unit direction (centroids keep their norms)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..hooks.capture import capture
from ..emotions import EMOTIONS, check_emotions
from ..errors import EmoworkError
from ..prompts import EMOTION_SYSTEM, build_prompts
from ..storage import atomic_write_json, load_tensors_checked, save_tensors_checked

if TYPE_CHECKING:  # pragma: no cover
    from ..data.sev import Group, SEVDataset
    from .elicitation import ElicitationResult
    from ..model.handle import ModelHandle

METHOD_SITES = {"attn": "resid_mid", "mlp": "resid_post"}
MIN_COMPLETE_GROUPS = 24
DIRECTIONS_FORMAT = 1


def remove_group_means(acts: torch.Tensor) -> torch.Tensor:
    """``acts`` ``[G, E, L, D]`` minus each group's mean over emotions (the content the six prompts share)."""
    return acts - acts.mean(dim=1, keepdim=True)


def directions_from_activations(acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(unit directions, centroids, norms)`` from ``acts`` ``[G, E, L, D]``.

    Returns directions and centroids ``[E, L, D]`` and centroid norms ``[E, L]``; centroids are the group-averaged
    context-removed activations with the mean over emotions subtracted.
    """
    centroids = remove_group_means(acts).mean(0)
    centroids = centroids - centroids.mean(0, keepdim=True)
    norms = centroids.norm(dim=-1)
    return centroids / norms.clamp(min=1e-12).unsqueeze(-1), centroids, norms


@dataclass
class EmotionDirections:
    """Unit emotion directions per site (``[n_emotions, n_layers, d_model]``), centroids, norms and provenance."""

    emotions: list[str]
    directions: dict[str, torch.Tensor]
    centroids: dict[str, torch.Tensor]
    norms: dict[str, torch.Tensor]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def sites(self) -> list[str]:
        return list(self.directions)

    @property
    def n_layers(self) -> int:
        return int(next(iter(self.directions.values())).shape[1])

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the unit directions (sites, shapes and values): identifies them in cache keys."""
        import hashlib

        digest = hashlib.sha256()
        for site in sorted(self.directions):
            tensor = self.directions[site].contiguous().float()
            digest.update(f"{site}|{tuple(tensor.shape)}|{','.join(self.emotions)}|".encode())
            digest.update(tensor.numpy().tobytes())
        return digest.hexdigest()

    def vector(self, emotion: str, layer: int, site: str = "mlp") -> torch.Tensor:
        """The unit direction ``[d_model]`` of ``emotion`` at ``layer`` and ``site``."""
        return self.directions[site][self.emotions.index(emotion), layer]

    def __repr__(self) -> str:
        p = self.provenance
        return (f"EmotionDirections({len(self.emotions)} emotions x {self.n_layers} layers, sites {self.sites}, "
                f"{p.get('n_groups', '?')} groups ({p.get('group_policy', '?')}), model {p.get('fingerprint', '?')})")

    def save(self, folder: str | Path) -> Path:
        """Write ``directions.safetensors`` (checksummed) and ``directions.json`` into ``folder``."""
        folder = Path(folder)
        tensors = {}
        for site in self.sites:
            tensors[f"{site}.directions"] = self.directions[site]
            tensors[f"{site}.centroids"] = self.centroids[site]
            tensors[f"{site}.norms"] = self.norms[site]
        save_tensors_checked(folder / "directions.safetensors", tensors)
        atomic_write_json(folder / "directions.json", {"format": DIRECTIONS_FORMAT, "emotions": self.emotions,
                                                       "sites": self.sites, "provenance": self.provenance})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "EmotionDirections":
        """Read what :meth:`save` wrote; raises a clear error for a missing or corrupt file."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / "directions.json").read_text())
            tensors = load_tensors_checked(folder / "directions.safetensors")
        except (FileNotFoundError, ValueError, json.JSONDecodeError) as exc:
            raise EmoworkError(f"Cannot load emotion directions from {folder}: {exc}. Re-run the extraction.") from exc
        sites = meta["sites"]
        return cls(meta["emotions"], {s: tensors[f"{s}.directions"] for s in sites}, {s: tensors[f"{s}.centroids"] for s in sites},
                   {s: tensors[f"{s}.norms"] for s in sites}, meta["provenance"])


def choose_groups(groups: Sequence["Group"], policy: str | Sequence[str] = "auto", elicitation: "ElicitationResult | None" = None,
                  min_complete: int = MIN_COMPLETE_GROUPS) -> tuple[list["Group"], str, str]:
    """Pick the groups directions are averaged over; returns ``(groups, policy used, reason)``.

    ``"complete"``: only groups whose six elicited replies were all accepted (docs/method.md section 3); ``"all"``: every group;
    ``"auto"``: complete groups when at least ``min_complete`` exist, else all (small models rarely complete a group);
    a list of group ids: exactly those.
    """
    groups = list(groups)
    if not isinstance(policy, str):
        wanted = set(policy)
        chosen = [g for g in groups if g.group_id in wanted]
        if len(chosen) != len(wanted):
            missing = sorted(wanted - {g.group_id for g in chosen})[:5]
            raise ValueError(f"group ids not in the dataset: {missing}")
        return chosen, "list", f"{len(chosen)} groups given by id"
    if policy == "all":
        return groups, "all", f"all {len(groups)} groups (chosen explicitly)"
    if policy not in ("complete", "auto"):
        raise ValueError(f"groups={policy!r}: use 'auto', 'complete', 'all' or a list of group ids")
    if elicitation is None:
        if policy == "complete":
            raise ValueError("groups='complete' needs the elicitation result (which groups had all six replies accepted)")
        return groups, "all", f"all {len(groups)} groups (no elicitation result given)"
    complete = set(elicitation.complete_groups())
    chosen = [g for g in groups if g.group_id in complete]
    if policy == "complete":
        if not chosen:
            raise ValueError("no group had all six replies accepted; use groups='all' (and report it)")
        return chosen, "complete", f"{len(chosen)} complete groups of {len(groups)}"
    if len(chosen) >= min_complete:
        return chosen, "complete", f"{len(chosen)} complete groups of {len(groups)} (at least {min_complete})"
    return groups, "all", (f"all {len(groups)} groups: only {len(chosen)} had all six replies accepted "
                           f"(fewer than {min_complete}), so directions average over every group")


def capture_emotion_activations(handle: "ModelHandle", groups: Sequence["Group"], sites: Sequence[str] = ("attn", "mlp"),
                                template: str = EMOTION_SYSTEM, emotions: Sequence[str] | None = None,
                                cache: bool = True, progress: bool = True) -> dict[str, torch.Tensor]:
    """Last-prompt-token activations of every (group, emotion) prompt: ``{site: [G, E, L, D]}`` float32."""
    chosen = check_emotions(emotions)
    batch = build_prompts(handle, list(groups), chosen, template)
    unknown = [s for s in sites if s not in METHOD_SITES]
    if unknown:
        raise ValueError(f"direction sites are {', '.join(METHOD_SITES)} (docs/method.md section 3), not {unknown}")
    acts = capture(handle, batch.texts, [METHOD_SITES[s] for s in sites], cache=cache, progress=progress, desc="directions")
    G, E = len(groups), len(chosen)
    return {s: acts[METHOD_SITES[s]].reshape(G, E, *acts[METHOD_SITES[s]].shape[1:]) for s in sites}


def extract(handle: "ModelHandle", dataset: "SEVDataset | Sequence[Group]", groups: str | Sequence[str] = "auto",
            elicitation: "ElicitationResult | None" = None, sites: Sequence[str] = ("attn", "mlp"),
            template: str = EMOTION_SYSTEM, emotions: Sequence[str] | None = None, min_complete: int = MIN_COMPLETE_GROUPS,
            cache: bool = True, progress: bool = True, return_activations: bool = False) -> Any:
    """Extract emotion directions; returns :class:`EmotionDirections` (and ``{site: [G, E, L, D]}`` when asked).

    ``groups``: see :func:`choose_groups`; the policy used and its reason are recorded in ``provenance``.
    """
    all_groups = list(dataset.groups) if hasattr(dataset, "groups") else list(dataset)
    chosen, policy, reason = choose_groups(all_groups, groups, elicitation, min_complete)
    emotion_list = check_emotions(emotions)
    start = time.perf_counter()
    acts = capture_emotion_activations(handle, chosen, sites, template, emotion_list, cache, progress)
    dirs, cents, norms = {}, {}, {}
    for site, a in acts.items():
        dirs[site], cents[site], norms[site] = directions_from_activations(a)
    provenance = {
        "fingerprint": handle.fingerprint, "model": handle.name, "dtype": str(handle.dtype).replace("torch.", ""),
        "dataset": getattr(dataset, "name", "groups"), "dataset_sha256": getattr(dataset, "sha256", None),
        "group_policy": policy, "group_policy_requested": groups if isinstance(groups, str) else "list",
        "group_reason": reason, "n_groups": len(chosen), "groups": [g.group_id for g in chosen], "template": template,
        "sites": {s: METHOD_SITES[s] for s in sites}, "position": "last prompt token",
        "seconds": round(time.perf_counter() - start, 2), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    result = EmotionDirections(emotion_list, dirs, cents, norms, provenance)
    return (result, acts) if return_activations else result


__all__ = ["EmotionDirections", "extract", "choose_groups", "directions_from_activations", "remove_group_means",
           "capture_emotion_activations", "METHOD_SITES", "EMOTIONS"]
