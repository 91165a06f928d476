"""The logic of the live steering panel, as plain objects: requests in, streamed replies with a per-token gauge and
the judge's scores out. The widget (``widgets.steering.SteeringPanel``) only wires controls to these calls."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Literal, Protocol, Sequence


import torch

from ..components.dose_response import readout_layer
from ..depth import layer_window
from ..emotions import EMOTIONS, check_emotion
from ..generation.generate import DecodingConfig
from ..prompts import EMOTION_SYSTEM, NEUTRAL_SYSTEM, system_instruction
from ..analysis.steering import steering_interventions
from ..generation.streaming import StreamResult, stream_generate

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.directions import EmotionDirections
    from ..model.handle import ModelHandle
    from ..hooks.intervention import Intervention
    from ..judge import Judge

Method = Literal["direction", "prompt", "circuit"]
METHODS: dict[str, str] = {"direction": "direction steering", "prompt": "prompt instruction", "circuit": "circuit modulation"}


class Circuit(Protocol):
    """What the panel needs from an emotion circuit: the interventions that modulate it towards an emotion.

    ``modulate(handle, emotion, scale, when)`` returns a list of :class:`~emowork.hooks.intervention.Intervention`
    (like :func:`emowork.analysis.steering.steering_interventions`); ``scale`` is the panel's strength slider and
    ``when`` its position mode (``last_prompt`` or ``from_last_prompt``). :class:`emowork.circuits.Circuit` is one.
    """

    def modulate(self, handle: "ModelHandle", emotion: str, scale: float, when: Any = "last_prompt") -> Sequence["Intervention"]: ...


@dataclass(frozen=True)
class SteeringRequest:
    """One thing to generate: a user message, a target emotion (None = no steering), how, and decoding limits.

    ``layers`` is an inclusive layer range; ``strength`` is alpha in RMS units (direction method only).
    """

    message: str
    emotion: str | None = None
    strength: float = 4.0
    layers: tuple[int, int] = (0, 0)
    method: Method = "direction"
    mode: Literal["last_prompt", "from_last_prompt"] = "last_prompt"
    max_new_tokens: int = 48
    seed: int = 0
    system: str = NEUTRAL_SYSTEM


@dataclass
class LiveReply:
    """A finished (or cancelled) reply with its per-token gauge and the judge's six scores."""

    text: str
    tokens: list[str]
    gauge: list[float]
    scores: dict[str, float] = field(default_factory=dict)
    accepted: bool | None = None
    ttft_s: float = float("nan")
    tokens_per_s: float = float("nan")
    cancelled: bool = False
    prompt: str = ""


class LiveSteering:
    """Generates baseline and steered replies for requests; the baseline is cached per (message, system, limits)."""

    def __init__(self, handle: "ModelHandle", directions: "EmotionDirections", judge: "Judge | str | None" = "default",
                 gauge_layer: int | None = None, circuit: Circuit | None = None) -> None:
        self.handle = handle
        self.directions = directions
        self.circuit = circuit
        self._judge = judge
        self.gauge_layer = readout_layer(handle.facts.n_layers) if gauge_layer is None else gauge_layer
        self._baselines: dict[tuple[str, str, int, int], StreamResult] = {}
        self.lock = threading.Lock()  # one generation at a time on the model

    @property
    def judge(self) -> "Judge | None":
        if isinstance(self._judge, str):
            from ..judge import load_judge

            self._judge = load_judge(self._judge)
        return self._judge

    @property
    def methods(self) -> list[str]:
        """The methods available: circuit modulation only when a circuit was given."""
        return ["direction", "prompt"] + (["circuit"] if self.circuit is not None else [])

    def default_layers(self, start: float = 0.4, stop: float = 0.7) -> tuple[int, int]:
        """A mid-depth window, 40%-70% of depth, as an inclusive range (11-19 on 28 layers; the paper steered 11-20 of 28)."""
        window = layer_window(self.handle.facts.n_layers, start, stop)
        return window[0], window[-1]

    def validate(self, request: SteeringRequest) -> SteeringRequest:
        """Check the request (emotion name, layer range, method); returns it with the emotion canonicalised."""
        n = self.handle.facts.n_layers
        first, last = request.layers
        if not 0 <= first <= last < n:
            from ..errors import SiteError

            raise SiteError(f"layer range {request.layers} is impossible: the model has layers 0..{n - 1}")
        if request.method not in self.methods:
            raise ValueError(f"method must be one of {', '.join(self.methods)}"
                             + ("" if self.circuit is not None else " ('circuit' needs a circuit)"))
        emotion = check_emotion(request.emotion) if request.emotion is not None else None
        return replace(request, emotion=emotion)

    def _config(self, request: SteeringRequest) -> DecodingConfig:
        return DecodingConfig(max_new_tokens=request.max_new_tokens, seed=request.seed)

    def prompts(self, request: SteeringRequest) -> tuple[str, str]:
        """``(baseline prompt, steered prompt)``: the prompt method puts the emotion in the system turn."""
        base = self.handle.format_chat(request.message, request.system)
        if request.method == "prompt" and request.emotion is not None:
            instructed = system_instruction(EMOTION_SYSTEM, request.emotion)
            return base, self.handle.format_chat(request.message, instructed)
        return base, base

    def _gauge(self, result: StreamResult, emotion: str | None) -> list[float]:
        """Per generated token: the projection of the state that produced it onto the emotion's direction, minus its
        mean projection onto all six directions (the shared part), so positive means "leans to this emotion"."""
        if emotion is None or not result.residuals:
            return [0.0] * len(result.tokens)
        V = self.directions.directions["mlp"][:, self.gauge_layer]  # [E, D]
        index = self.directions.emotions.index(emotion)
        projections = torch.stack(result.residuals) @ V.T  # [tokens, E]
        return (projections[:, index] - projections.mean(1)).tolist()

    def _reply(self, result: StreamResult, emotion: str | None, prompt: str, judge: bool) -> LiveReply:
        reply = LiveReply(result.text, result.tokens, self._gauge(result, emotion), ttft_s=result.ttft_s,
                          tokens_per_s=result.tokens_per_s, cancelled=result.cancelled, prompt=prompt)
        if judge and self.judge is not None and not result.cancelled:
            scores = self.judge.scores([result.text])[0]
            reply.scores = {e: float(s) for e, s in zip(EMOTIONS, scores)}
            if emotion is not None:
                reply.accepted = bool(self.judge.accept([result.text], [emotion])[0])
        return reply

    def baseline(self, request: SteeringRequest, on_token: Callable[[str, int], None] | None = None,
                 cancel: threading.Event | None = None, judge: bool = True) -> LiveReply:
        """The unsteered reply to the neutral prompt (cached per message, system prompt and limits)."""
        request = self.validate(request)
        prompt = self.prompts(request)[0]
        key = (request.message, request.system, request.max_new_tokens, request.seed)
        cached = self._baselines.get(key)
        if cached is None:
            with self.lock:
                cached = stream_generate(self.handle, prompt, self._config(request), on_token=on_token, cancel=cancel,
                                         record_layer=self.gauge_layer)
            if not cached.cancelled:
                self._baselines[key] = cached
        elif on_token is not None:
            on_token(cached.text, len(cached.tokens))
        return self._reply(cached, request.emotion, prompt, judge)

    def steered(self, request: SteeringRequest, on_token: Callable[[str, int], None] | None = None,
                cancel: threading.Event | None = None, judge: bool = True) -> LiveReply:
        """The reply steered as ``request`` says (no emotion: the unsteered reply)."""
        request = self.validate(request)
        if request.emotion is None:
            return self.baseline(request, on_token, cancel, judge)
        prompt = self.prompts(request)[1]
        interventions: Sequence["Intervention"] = ()
        if request.method == "direction":
            layers = list(range(request.layers[0], request.layers[1] + 1))
            interventions = steering_interventions(self.handle, self.directions, request.emotion, layers, request.strength,
                                                   request.mode)
        elif request.method == "circuit":
            circuit = self.circuit
            assert circuit is not None
            interventions = list(circuit.modulate(self.handle, request.emotion, request.strength, request.mode))
        with self.lock:
            result = stream_generate(self.handle, prompt, self._config(request), interventions, on_token=on_token,
                                     cancel=cancel, record_layer=self.gauge_layer)
        return self._reply(result, request.emotion, prompt, judge)

    def compare(self, request: SteeringRequest) -> dict[str, LiveReply]:
        """The same request for each of the six emotions (one batched generation)."""
        from ..generation.generate import generate

        request = self.validate(replace(request, emotion=request.emotion or EMOTIONS[0]))
        config = self._config(request)
        if request.method == "prompt":
            prompts = [self.handle.format_chat(request.message, system_instruction(EMOTION_SYSTEM, e)) for e in EMOTIONS]
            factory = None
        elif request.method == "circuit":
            from ..circuits.modulation import circuit_edits

            prompts = [self.handle.format_chat(request.message, request.system)] * len(EMOTIONS)
            circuit = self.circuit
            factory = lambda idx: circuit_edits(self.handle, circuit, [EMOTIONS[i] for i in idx], request.strength,  # noqa: E731
                                                request.mode)
        else:
            prompts = [self.handle.format_chat(request.message, request.system)] * len(EMOTIONS)
            layers = list(range(request.layers[0], request.layers[1] + 1))
            factory = lambda idx: steering_interventions(self.handle, self.directions, [EMOTIONS[i] for i in idx],  # noqa: E731
                                                         layers, request.strength, request.mode)
        with self.lock:
            replies = generate(self.handle, prompts, config, intervention=factory, progress=False)
        texts = [r.text for r in replies]
        out = {}
        scores = self.judge.scores(texts) if self.judge is not None else None
        accepted = self.judge.accept(texts, list(EMOTIONS)) if self.judge is not None else None
        for i, (e, r) in enumerate(zip(EMOTIONS, replies)):
            out[e] = LiveReply(r.text, [], [], {k: float(v) for k, v in zip(EMOTIONS, scores[i])} if scores is not None else {},
                               bool(accepted[i]) if accepted is not None else None, prompt=prompts[i])
        return out


__all__ = ["LiveSteering", "SteeringRequest", "LiveReply", "METHODS", "Circuit"]
