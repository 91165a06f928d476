"""Steering with emotion directions: add ``alpha * rms(h) * v[e, L]`` to resid_post of a window of layers.

The paper's setting adds it once, at the last prompt token (prefill); the option ``"from_last_prompt"`` adds it at
that token and at every generated one. A steering is a list of :class:`~emowork.hooks.intervention.Intervention`
(``add`` at ``resid_post`` in RMS units, one per layer): :func:`steering_interventions`. It runs through
:func:`emowork.generation.generate.generate` (the same path as every other method, same decoding configuration) on the backend
:func:`emowork.hooks.executors.choose_backend` picks, so cached and uncached decoding agree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Sequence

from ..emotions import check_emotion
from ..errors import SiteError
from ..generation.generate import DecodingConfig, Generation, InterventionFactory
from ..generation.reply_cache import generate_cached
from ..depth import check_window, layer_window
from ..errors import check_finite
from ..hooks.intervention import Intervention

PositionMode = Literal["last_prompt", "from_last_prompt", "all"]
POSITION_MODES: tuple[str, ...] = ("last_prompt", "from_last_prompt", "all")

if TYPE_CHECKING:  # pragma: no cover
    from .directions import EmotionDirections
    from ..model.handle import ModelHandle


@dataclass(frozen=True)
class SteeringSetting:
    """Where and how hard to steer: a layer window (fractions of depth), a strength in RMS units, a position mode."""

    start: float
    stop: float
    alpha: float
    mode: PositionMode = "last_prompt"
    site: str = "mlp"  # which direction site's vectors are added (docs/method.md section 5: the mlp-site directions at resid_post)

    def __post_init__(self) -> None:
        check_window(self.start, self.stop)
        check_finite("alpha", self.alpha)
        if self.mode not in POSITION_MODES:
            raise ValueError(f"mode={self.mode!r}: use one of {', '.join(POSITION_MODES)}.")
        if self.site not in ("attn", "mlp"):
            raise SiteError(f"site={self.site!r}: steering adds the 'mlp' or 'attn' site's directions.")

    def layers(self, n_layers: int) -> list[int]:
        return layer_window(n_layers, self.start, self.stop)

    def label(self, n_layers: int | None = None) -> str:
        span = f"{self.start:.2f}-{self.stop:.2f}"
        if n_layers is not None:
            layers = self.layers(n_layers)
            span += f" (L{layers[0]}-{layers[-1]})"
        return f"layers {span}, alpha {self.alpha:g}, {self.mode}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def steering_interventions(handle: "ModelHandle", directions: "EmotionDirections", emotion: str | Sequence[str],
                           layers: Sequence[int], alpha: float, mode: PositionMode = "last_prompt",
                           site: str = "mlp") -> list[Intervention]:
    """Steering towards ``emotion`` as interventions: add ``alpha * rms(h) * v[emotion, L]`` at resid_post of each of
    ``layers``. ``emotion`` is one name, or one name per batch row (each row steered towards its own emotion)."""
    vectors = steering_vectors(handle, directions, emotion, layers, alpha, site)
    return [Intervention("resid_post", layer, "add", vector, when=mode, rms_units=True) for layer, vector in vectors.items()]


def steering_vectors(handle: "ModelHandle", directions: "EmotionDirections", emotion: str | Sequence[str],
                     layers: Sequence[int], alpha: float, site: str = "mlp") -> dict[int, Any]:
    """``{layer: alpha * v[emotion, layer]}``: ``[d_model]`` for one emotion, ``[n, d_model]`` for one per row.

    Raises :class:`~emowork.errors.SiteError` for layers the model does not have."""
    check_finite("alpha", alpha)
    if not len(layers):
        raise SiteError("no layers to steer: give at least one layer")
    n_layers = handle.facts.n_layers
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise SiteError(f"layers {bad} do not exist: the model has {n_layers} layers (0..{n_layers - 1})")
    if isinstance(emotion, str):
        rows = [directions.emotions.index(check_emotion(emotion))]
    else:
        rows = [directions.emotions.index(check_emotion(e)) for e in emotion]
    table = directions.directions[site][rows]  # [rows, L, D]
    return {layer: alpha * (table[0, layer] if isinstance(emotion, str) else table[:, layer]) for layer in layers}


def steering_factory(handle: "ModelHandle", directions: "EmotionDirections", emotions: Sequence[str],
                     setting: SteeringSetting) -> InterventionFactory:
    """The interventions for :func:`emowork.generation.generate.generate`: prompt i is steered towards ``emotions[i]``."""
    layers = setting.layers(handle.facts.n_layers)
    return lambda indices: steering_interventions(handle, directions, [emotions[i] for i in indices], layers,
                                                  setting.alpha, setting.mode, setting.site)


def steered_generate(handle: "ModelHandle", prompts: Sequence[str], directions: "EmotionDirections",
                     emotion: str | Sequence[str], setting: SteeringSetting, config: DecodingConfig = DecodingConfig(),
                     progress: bool = True) -> list[Generation]:
    """Replies to ``prompts`` steered towards ``emotion`` (one name, or one per prompt), in batches that mix
    emotions; cached per model, decoding config, directions and setting."""
    emotions = [check_emotion(emotion)] * len(prompts) if isinstance(emotion, str) else [check_emotion(e) for e in emotion]
    if len(emotions) != len(prompts):
        raise ValueError("one emotion per prompt")
    tag = f"steer:{setting.label()}:{setting.site}:{directions.sha256[:16]}"
    return generate_cached(handle, prompts, config, tag=tag, variants=emotions,
                           intervention=steering_factory(handle, directions, emotions, setting), progress=progress,
                           desc="steered generation")
