import json

import pytest

from emowork.data import drafting, load_sev, parse_draft
from emowork.generation.generate import Generation

VALID = {"scenario": "I asked the bike shop to replace the chain on my commuter bicycle.",
         "positive": "The mechanic replaced it at no charge because it was under warranty.",
         "neutral": "The mechanic said the bike will be ready on Friday afternoon.",
         "negative": "The mechanic said the frame is cracked and the bike cannot be repaired."}


@pytest.mark.parametrize("reply", [
    json.dumps(VALID),
    "Sure! Here it is:\n```json\n" + json.dumps(VALID, indent=2) + "\n```\nHope this helps.",
    json.dumps({"scenario": VALID["scenario"], "event": {k: VALID[k] for k in ("positive", "neutral", "negative")}}),
    json.dumps(VALID).replace('"', "'"),
    json.dumps(VALID)[:-1] + ",}",
    "Scenario: {scenario}\nPositive outcome: {positive}\nNeutral: {neutral}\nA negative event - {negative}".format(**VALID),
])
def test_parse_draft_variants(reply):
    record = parse_draft(reply)
    assert record == {"scenario": VALID["scenario"], "event": {k: VALID[k] for k in ("positive", "neutral", "negative")}}


@pytest.mark.parametrize("reply", ["I cannot help with that.", '{"scenario": "only a scenario"}', "{not json"])
def test_unparseable_replies(reply):
    assert parse_draft(reply) is None


def fake_generate(texts):
    def fake(handle, prompts, config, **kw):
        return [Generation(p, t, 10, True) for p, t in zip(prompts, texts)]
    return fake


def test_draft_skeletons_validates_each_draft(monkeypatch, tiny_llama):
    existing = load_sev("analysis")
    copied = existing.skeletons[0]
    replies = [
        json.dumps(VALID),
        json.dumps({**VALID, "negative": "The mechanic said the frame is cracked and I was furious."}),
        json.dumps({"scenario": copied.scenario, **dict(copied.events)}),
        "I am a small model and I will write something else.",
    ]
    monkeypatch.setattr(drafting, "generate", fake_generate(replies))
    result = drafting.draft_skeletons(tiny_llama, "Travel", n=4, existing=existing)
    assert result.n_passed == 1 and result.passed[0].record["skeleton_id"] == "travel_draft0"
    assert "1 of 4 drafts" in result.summary()
    assert any("furious" in r for r in result.drafts[1].reasons())
    assert any("already in the dataset" in r for r in result.drafts[2].reasons())
    assert result.drafts[3].reasons() == ["no record could be parsed from the reply"]
    with pytest.raises(ValueError, match="Unknown theme"):
        drafting.draft_skeletons(tiny_llama, "Space", n=1, existing=existing)


def test_draft_with_a_real_model_reports_counts(tiny_llama):
    result = drafting.draft_skeletons(tiny_llama, "Health", n=2,
                                      config=drafting.DecodingConfig(max_new_tokens=16, do_sample=True, seed=1))
    assert len(result.drafts) == 2 and 0 <= result.n_passed <= 2
    assert f"of 2 drafts for 'Health'" in result.summary()
