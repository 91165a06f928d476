import threading
import time

import pytest

from emowork.data import load_sev
from emowork.analysis.directions import extract
from emowork.errors import SiteError
from emowork.generation.generate import DecodingConfig, generate
from emowork.panels.live_steering import LiveSteering, SteeringRequest
from emowork.analysis.steering import SteeringSetting, steered_generate, steering_interventions
from emowork.generation.streaming import stream_generate
from widgets.steering import SteeringPanel, reply_html, scores_html


@pytest.fixture(scope="module")
def setup():
    from .conftest import load_tiny

    handle = load_tiny("tiny-llama")
    directions = extract(handle, load_sev("analysis").select(per_theme=1), groups="all", progress=False)
    return handle, directions


def test_streaming_equals_batched_generation_and_records_the_gauge(setup):
    handle, _ = setup
    prompt = handle.format_chat("Tell me about trains.")
    seen = []
    result = stream_generate(handle, prompt, DecodingConfig(max_new_tokens=12), on_token=lambda text, n: seen.append(n), record_layer=2)
    assert result.text == generate(handle, [prompt], DecodingConfig(max_new_tokens=12), progress=False)[0].text
    assert seen == list(range(1, len(result.token_ids) + 1)) and len(result.residuals) == len(result.token_ids)
    assert result.ttft_s > 0 and not result.cancelled


def test_cancel_stops_within_a_token(setup):
    handle, _ = setup
    cancel = threading.Event()
    counts = []

    def on_token(text, n):
        counts.append(n)
        if n == 1:
            cancel.set()

    prompt = next(p for p in (handle.format_chat(t) for t in ("Tell me about trains.", "Hi", "What is the time?", "Go on."))
                  if len(stream_generate(handle, p, DecodingConfig(max_new_tokens=20)).token_ids) == 20)
    result = stream_generate(handle, prompt, DecodingConfig(max_new_tokens=20), on_token=on_token, cancel=cancel)
    assert result.cancelled and len(result.token_ids) <= 2


def test_steered_reply_matches_the_sweep_path(setup):
    handle, directions = setup
    engine = LiveSteering(handle, directions, judge=None, gauge_layer=2)
    request = SteeringRequest("I went to the bank.", "anger", 6.0, (1, 2), max_new_tokens=10)
    live = engine.steered(request)
    n = handle.facts.n_layers
    batch = steered_generate(handle, [handle.format_chat(request.message, request.system)], directions, "anger",
                             SteeringSetting(1 / n, 3 / n, 6.0), DecodingConfig(max_new_tokens=10), progress=False)[0]
    assert live.text == batch.text and len(live.gauge) == len(live.tokens)
    base = engine.baseline(request)
    assert base.text != live.text
    again = engine.baseline(request)  # cached
    assert again.text == base.text and len(engine._baselines) == 1
    prompted = engine.steered(SteeringRequest("I went to the bank.", "fear", method="prompt", layers=(1, 2), max_new_tokens=10))
    assert "Always reply in fear." in prompted.prompt


def test_bad_requests(setup):
    handle, directions = setup
    engine = LiveSteering(handle, directions, judge=None)
    with pytest.raises(SiteError, match="impossible"):
        engine.validate(SteeringRequest("x", "anger", layers=(3, 99)))
    with pytest.raises(ValueError, match="Unknown emotion"):
        engine.validate(SteeringRequest("x", "boredom", layers=(0, 1)))
    with pytest.raises(ValueError, match="method"):
        engine.validate(SteeringRequest("x", "anger", layers=(0, 1), method="telepathy"))  # type: ignore[arg-type]


def test_panel_plain_api_compare_and_callbacks(setup):
    handle, directions = setup
    panel = SteeringPanel(handle, directions, judge=None, dataset=load_sev("test"))
    replies = panel.generate("I went to the bank.", "sadness", 6.0, (1, 2), max_new_tokens=8)
    assert set(replies) == {"baseline", "steered"} and replies["steered"].text != replies["baseline"].text
    grid = panel.compare("I went to the bank.", 6.0, (1, 2), max_new_tokens=6)
    assert list(grid) == ["anger", "sadness", "happiness", "fear", "surprise", "disgust"]
    panel._build()
    panel.scenario.value = load_sev("test").groups[3].group_id
    assert panel.prompt.value == load_sev("test").groups[3].message
    panel.max_tokens.value = 8
    panel.emotion.value = "disgust"  # a control change starts a request in a worker thread
    start = time.perf_counter()
    for value in (2.0, 4.0, 6.0, 8.0):  # a burst of changes: earlier requests are cancelled, not queued
        panel.strength.value = value
    assert time.perf_counter() - start < 2, "callbacks must return at once"
    panel.wait(60)
    assert panel.status.value.startswith("done"), panel.status.value
    assert "emowork-reply" in panel.steered_box.value and panel.gauge_box.value
    panel.layers.value = (2, 3)
    panel.wait(60)


def test_html_helpers():
    from emowork.panels.live_steering import LiveReply

    reply = LiveReply("hi <b>", ["hi"], [0.5], {"anger": 0.7, "fear": 0.1}, True)
    assert "&lt;b&gt;" in reply_html("t", reply.text) and "expresses anger" in scores_html(reply, "anger")


def test_circuit_method_appears_only_with_a_circuit(setup):
    handle, directions = setup
    used = []

    class FakeCircuit:
        def modulate(self, handle, emotion, scale, when="last_prompt"):
            used.append((emotion, scale))
            return steering_interventions(handle, directions, emotion, [1, 2], 10.0)

    plain = SteeringPanel(handle, directions, judge=None)
    plain._build()
    assert "circuit modulation" not in plain.method.options
    with pytest.raises(ValueError, match="needs a circuit"):
        plain.generate("Hi", "anger", method="circuit", layers=(1, 2), max_new_tokens=4)
    panel = SteeringPanel(handle, directions, judge=None, circuit=FakeCircuit())
    panel._build()
    assert "circuit modulation" in panel.method.options
    out = panel.generate("I went to the bank.", "fear", 2.0, (1, 2), method="circuit", max_new_tokens=8)
    assert used and used[0] == ("fear", 2.0)
    assert out["steered"].text != out["baseline"].text
