"""``SteeringPanel``: move a slider, watch the reply change emotion, live, next to the unsteered reply.

All logic lives in :class:`emowork.panels.live_steering.LiveSteering`; the panel wires ipywidgets controls to it.
``panel.generate(...)`` gives the same replies without a browser. Generation runs in a worker thread: the kernel
stays responsive, sliders act on release, and a new request cancels the one in flight (it stops at the next token).
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any, Sequence

from emowork.components.viewers import colored_tokens
from emowork.palette import EMOTION_COLORS, GREY, STATUS_COLORS
from emowork.emotions import EMOTIONS
from emowork.model.handle import ModelHandle
from emowork.panels.live_steering import METHODS, LiveReply, LiveSteering, SteeringRequest

NONE = "(none)"
MODES = {"last prompt token": "last_prompt", "all generated positions": "from_last_prompt"}


def scores_html(reply: LiveReply, target: str | None) -> str:
    """The judge's six scores as small bars, the target highlighted, with the verdict."""
    if not reply.scores:
        return ""
    rows = []
    for emotion, score in reply.scores.items():
        weight = "bold" if emotion == target else "normal"
        rows.append(f"<div style='display:flex;align-items:center;gap:6px;font-weight:{weight}'><span style='width:80px'>{emotion}</span>"
                    f"<span style='display:inline-block;height:10px;width:{int(160 * score)}px;background:{EMOTION_COLORS.get(emotion, GREY)}'></span>"
                    f"<span>{score:.2f}</span></div>")
    verdict = "" if reply.accepted is None else (f"<div>judge: <b style='color:{STATUS_COLORS['ok'] if reply.accepted else STATUS_COLORS['fail']}'>"
                                                 f"{'expresses' if reply.accepted else 'does not express'} {target}</b></div>")
    return "<div class='emowork-scores'>" + "".join(rows) + verdict + "</div>"


def reply_html(title: str, text: str, status: str = "") -> str:
    """A titled box holding a reply (class ``emowork-reply`` so browser tests can find it)."""
    return (f"<div style='border:1px solid #ddd;border-radius:6px;padding:8px;min-height:80px'><b>{html.escape(title)}</b>"
            f" <span style='color:#888'>{html.escape(status)}</span><div class='emowork-reply' style='white-space:pre-wrap'>"
            f"{html.escape(text)}</div></div>")


class SteeringPanel:
    """A live steering panel for ``handle`` and its emotion ``directions`` (display it in a notebook)."""

    def __init__(self, handle: ModelHandle, directions: Any, judge: Any = "default", dataset: Any = None,
                 circuit: Any = None) -> None:
        self.engine = LiveSteering(handle, directions, judge, circuit=circuit)
        self.handle = handle
        self.dataset = dataset
        self.circuit = circuit
        self._worker: threading.Thread | None = None
        self._cancel = threading.Event()
        self._ui: Any = None
        self.last: dict[str, LiveReply] = {}

    @classmethod
    def from_run(cls, run_dir: Any, handle: ModelHandle, judge: Any = "default", dataset: Any = None) -> "SteeringPanel":
        """A panel for a finished run folder (``runs/NAME``): its directions, and its circuit when the run has the
        circuits stage (then "circuit modulation" is one of the methods). ``handle`` must be the run's model."""
        from pathlib import Path

        from emowork.analysis.directions import EmotionDirections
        from emowork.circuits import Circuit

        artifacts = Path(run_dir) / "artifacts"
        directions = EmotionDirections.load(artifacts / "directions")
        if directions.provenance.get("fingerprint") not in (None, handle.fingerprint):
            raise ValueError(f"{run_dir} was made with another model (fingerprint {directions.provenance['fingerprint']}); "
                             f"load that model, or run `emowork run --model {handle.name}` first.")
        circuit = Circuit.load(artifacts / "circuits") if (artifacts / "circuits" / "circuit.json").exists() else None
        return cls(handle, directions, judge, dataset, circuit)

    # ------------------------------------------------------------------ plain API
    def generate(self, prompt: str, emotion: str | None, strength: float = 4.0, layers: Sequence[int] | None = None,
                 method: str = "direction", mode: str = "last_prompt", max_new_tokens: int = 48, seed: int = 0) -> dict[str, LiveReply]:
        """``{"baseline": LiveReply, "steered": LiveReply}`` for a user message ``prompt`` (no browser needed)."""
        request = self._request(prompt, emotion, strength, layers, method, mode, max_new_tokens, seed)
        return {"baseline": self.engine.baseline(request), "steered": self.engine.steered(request)}

    def compare(self, prompt: str, strength: float = 4.0, layers: Sequence[int] | None = None, method: str = "direction",
                mode: str = "last_prompt", max_new_tokens: int = 48, seed: int = 0) -> dict[str, LiveReply]:
        """The six emotions at one strength for one prompt: ``{emotion: LiveReply}``."""
        return self.engine.compare(self._request(prompt, EMOTIONS[0], strength, layers, method, mode, max_new_tokens, seed))

    def _request(self, prompt: str, emotion: str | None, strength: float, layers: Sequence[int] | None, method: str,
                 mode: str, max_new_tokens: int, seed: int) -> SteeringRequest:
        window = tuple(layers) if layers is not None else self.engine.default_layers()
        return self.engine.validate(SteeringRequest(prompt, emotion, float(strength), (int(window[0]), int(window[-1])), method,  # type: ignore[arg-type]
                                                    mode, int(max_new_tokens), int(seed)))

    # ------------------------------------------------------------------ widget
    def _build(self) -> Any:
        import ipywidgets as w

        n = self.handle.facts.n_layers
        first, last = self.engine.default_layers()
        self.emotion = w.Dropdown(options=[NONE, *EMOTIONS], value="anger", description="emotion")
        self.strength = w.FloatSlider(value=4.0, min=0.0, max=16.0, step=0.5, description="strength", continuous_update=False,
                                      tooltip="alpha: the added vector is alpha x rms(h) x direction")
        self.layers = w.IntRangeSlider(value=(first, last), min=0, max=n - 1, description="layers", continuous_update=False)
        methods = [METHODS[m] for m in self.engine.methods]  # circuit modulation only when a circuit was given
        self.method = w.ToggleButtons(options=methods, description="method")
        self.mode = w.ToggleButtons(options=list(MODES), description="positions")
        scenarios = [NONE] + ([g.group_id for g in self.dataset.groups] if self.dataset is not None else [])
        self.scenario = w.Dropdown(options=scenarios, description="scenario")
        self.prompt = w.Textarea(value="I asked my landlord to fix the heating last week.\nHe said a technician will come on Monday.",
                                 layout=w.Layout(width="100%", height="70px"), description="message")
        self.max_tokens = w.IntSlider(value=48, min=8, max=200, step=8, description="max tokens", continuous_update=False)
        self.seed = w.IntText(value=0, description="seed", layout=w.Layout(width="160px"))
        self.go = w.Button(description="Generate", button_style="primary")
        self.compare_button = w.Button(description="Compare six emotions")
        self.status = w.HTML()
        self.baseline_box = w.HTML(reply_html("unsteered", ""))
        self.steered_box = w.HTML(reply_html("steered", ""))
        self.gauge_box = w.HTML()
        self.scores_box = w.HTML()
        self.grid = w.HTML()
        for control in (self.emotion, self.strength, self.layers, self.method, self.mode, self.max_tokens):
            control.observe(lambda _: self.request(), names="value")
        self.scenario.observe(lambda change: self._pick_scenario(change["new"]), names="value")
        self.go.on_click(lambda _: self.request())
        self.compare_button.on_click(lambda _: self.request_compare())
        controls = w.VBox([w.HBox([self.emotion, self.strength]), self.layers, self.method, self.mode,
                           w.HBox([self.scenario, self.max_tokens, self.seed]), self.prompt,
                           w.HBox([self.go, self.compare_button]), self.status])
        replies = w.HBox([w.VBox([self.baseline_box], layout=w.Layout(width="50%")),
                          w.VBox([self.steered_box, self.gauge_box, self.scores_box], layout=w.Layout(width="50%"))])
        self._ui = w.VBox([controls, replies, self.grid])
        return self._ui

    def _pick_scenario(self, group_id: str) -> None:
        if group_id != NONE and self.dataset is not None:
            self.prompt.value = self.dataset.group(group_id).message

    def _control_request(self) -> SteeringRequest:
        emotion = None if self.emotion.value == NONE else self.emotion.value
        method = next((k for k, v in METHODS.items() if v == self.method.value), "direction")
        return self._request(self.prompt.value, emotion, self.strength.value, self.layers.value, method,
                             MODES[self.mode.value], self.max_tokens.value, self.seed.value)

    def _start(self, target: Any) -> None:
        """Cancel the request in flight (it stops at its next token), then run ``target`` in a fresh worker."""
        self._cancel.set()
        previous = self._worker
        cancel = threading.Event()
        self._cancel = cancel

        def run() -> None:
            if previous is not None:
                previous.join()
            if not cancel.is_set():
                target(cancel)

        self._worker = threading.Thread(target=run, daemon=True)
        self._worker.start()

    def request(self) -> None:
        """Generate for the current controls (baseline first if not cached, then the steered reply), streaming."""
        if self._ui is None:
            self._build()
        try:
            request = self._control_request()
        except Exception as exc:  # noqa: BLE001 - shown in the panel instead of raised in a callback
            self.status.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            return
        self._start(lambda cancel: self._run(request, cancel))

    def _run(self, request: SteeringRequest, cancel: threading.Event) -> None:
        started = time.perf_counter()
        self.status.value = "generating..."
        label = "steered" if request.emotion is None else f"{request.emotion}, {METHODS[request.method]}" + (
            f", strength {request.strength:g}, layers {request.layers[0]}-{request.layers[1]}" if request.method == "direction" else "")

        def stream_into(box: Any, title: str) -> Any:
            last = [0.0]

            def on_token(text: str, count: int) -> None:
                now = time.perf_counter()
                if now - last[0] > 0.05:
                    box.value = reply_html(title, text, f"{count} tokens...")
                    last[0] = now
            return on_token

        try:
            baseline = self.engine.baseline(request, stream_into(self.baseline_box, "unsteered"), cancel)
            self.baseline_box.value = reply_html("unsteered", baseline.text)
            if cancel.is_set():
                return
            steered = self.engine.steered(request, stream_into(self.steered_box, label), cancel)
            if cancel.is_set():
                return
            self.steered_box.value = reply_html(label, steered.text, f"{steered.tokens_per_s:.1f} tokens/s")
            if request.emotion is not None:
                gauge = colored_tokens(steered.tokens, steered.gauge,
                                       f"projection onto {request.emotion} (layer {self.engine.gauge_layer}) per token")
                self.gauge_box.value = gauge.html
            self.scores_box.value = scores_html(steered, request.emotion)
            self.last = {"baseline": baseline, "steered": steered}
            self.status.value = f"done in {time.perf_counter() - started:.1f} s"
        except Exception as exc:  # noqa: BLE001
            self.status.value = f"<span style='color:#b00'>{html.escape(type(exc).__name__ + ': ' + str(exc))}</span>"

    def request_compare(self) -> None:
        """Fill the grid with the six emotions at the current strength."""
        if self._ui is None:
            self._build()
        request = self._control_request()
        self._start(lambda cancel: self._run_compare(request))

    def _run_compare(self, request: SteeringRequest) -> None:
        self.status.value = "generating six replies..."
        replies = self.engine.compare(request)
        cells = "".join(f"<div style='border:1px solid #ddd;border-top:4px solid {EMOTION_COLORS.get(e, GREY)};padding:6px'><b>{e}</b> "
                        f"{'(accepted)' if r.accepted else ''}<div class='emowork-reply'>{html.escape(r.text)}</div></div>"
                        for e, r in replies.items())
        self.grid.value = f"<div style='display:grid;grid-template-columns:repeat(3,1fr);gap:6px'>{cells}</div>"
        self.status.value = "compare view done"

    def wait(self, timeout: float | None = None) -> None:
        """Block until the request in flight (if any) has finished (for scripts and tests)."""
        if self._worker is not None:
            self._worker.join(timeout)

    def _ipython_display_(self) -> None:
        from .static import show

        show(self._ui or self._build(), "Live steering panel")

    def __repr__(self) -> str:
        return f"SteeringPanel({self.handle.name}, gauge at layer {self.engine.gauge_layer})"
